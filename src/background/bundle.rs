//! A bundle made by `quantize/export.py`: `bundle.toml`, the ONNX graphs,
//! the two tokenizers and the scheduler config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not a valid AudioLDM2 bundle description: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {reason} (make the bundle again with quantize/export.py)")]
    Tokenizer { path: PathBuf, reason: String },
}

/// One tensor a graph takes or gives.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ComponentMeta {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    #[serde(default)]
    pub inputs: Vec<TensorMeta>,
    #[serde(default)]
    pub outputs: Vec<TensorMeta>,
}

/// `bundle.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BundleMeta {
    pub schema: u32,
    pub source: String,
    pub license: String,
    pub precision: String,
    pub sample_rate: u32,
    pub seconds: f64,
    pub mel_frames: usize,
    pub mel_bins: usize,
    pub hop_length: usize,
    pub vae_scaling_factor: f64,
    pub vae_scale: usize,
    pub latent_shape: Vec<usize>,
    pub clap_max_tokens: usize,
    pub t5_max_tokens: usize,
    pub gpt2_new_tokens: usize,
    pub clap_pad_id: u32,
    pub t5_pad_id: u32,
    pub clap_tokenizer: String,
    pub t5_tokenizer: String,
    pub scheduler: String,
    pub component: BTreeMap<String, ComponentMeta>,
}

impl BundleMeta {
    /// Reads `DIR/bundle.toml`.
    pub fn load(dir: &Path) -> Result<BundleMeta, BundleError> {
        let path = dir.join("bundle.toml");
        let text = std::fs::read_to_string(&path).map_err(|cause| BundleError::Read {
            path: path.clone(),
            cause,
        })?;
        let meta: BundleMeta = toml::from_str(&text).map_err(|e| BundleError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if meta.schema != 1 {
            return Err(BundleError::Invalid {
                path,
                reason: format!("schema {} (this vivid reads schema 1)", meta.schema),
            });
        }
        Ok(meta)
    }
}
