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
    #[error("{path}: {reason} ({})", super::REMAKE_BUNDLE)]
    Tokenizer { path: PathBuf, reason: String },
    #[error(
        "{path}: {reason} (copy the bundle again, or {})",
        super::REMAKE_BUNDLE
    )]
    Component { path: PathBuf, reason: String },
}

/// One tensor a graph takes or gives.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

impl TensorMeta {
    /// The shape with every free axis (-1: the UNet's batch, the sequence
    /// of T5 and GPT-2, which export.py leaves free) set to `free`.
    pub(crate) fn dims(&self, free: usize) -> Vec<usize> {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(free))
            .collect()
    }

    /// This tensor with a free first axis (the batch) set to `batch`, and
    /// the other free axes (the sequence) set to `sequence` or left free.
    pub fn resolved(&self, batch: usize, sequence: Option<usize>) -> TensorMeta {
        let shape = self
            .shape
            .iter()
            .enumerate()
            .map(|(axis, &d)| match (d, axis, sequence) {
                (d, _, _) if d >= 0 => d,
                (_, 0, _) => batch as i64,
                (_, _, Some(length)) => length as i64,
                (_, _, None) => -1,
            })
            .collect();
        TensorMeta {
            shape,
            ..self.clone()
        }
    }

    /// Whether a tensor of `shape` fits: the same rank and the same size
    /// on every fixed axis.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        shape.len() == self.shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&d, &n)| d < 0 || d as usize == n)
    }
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
    pub(crate) mel_frames: usize,
    pub(crate) mel_bins: usize,
    pub(crate) hop_length: usize,
    pub vae_scaling_factor: f64,
    pub(crate) vae_scale: usize,
    pub latent_shape: Vec<usize>,
    pub clap_max_tokens: usize,
    pub(crate) t5_max_tokens: usize,
    pub(crate) gpt2_new_tokens: usize,
    pub(crate) clap_pad_id: u32,
    pub(crate) t5_pad_id: u32,
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
        for (name, component) in &meta.component {
            if component.file.contains('/') || component.file.starts_with('.') {
                return Err(BundleError::Invalid {
                    path,
                    reason: format!(
                        "component {name}: file \"{}\" is not a plain file name",
                        component.file
                    ),
                });
            }
        }
        if meta.schema != 1 {
            return Err(BundleError::Invalid {
                path,
                reason: format!("schema {} (this vivid reads schema 1)", meta.schema),
            });
        }
        Ok(meta)
    }
}

/// The names of the seven graphs, in the order the pipeline runs them.
pub(crate) const COMPONENTS: [&str; 7] = [
    "clap_text",
    "t5_encoder",
    "projection",
    "gpt2",
    "unet",
    "vae_decoder",
    "vocoder",
];

impl BundleMeta {
    /// A component's entry, or an error naming what is missing.
    pub fn component(&self, dir: &Path, name: &str) -> Result<&ComponentMeta, BundleError> {
        self.component
            .get(name)
            .ok_or_else(|| BundleError::Invalid {
                path: dir.join("bundle.toml"),
                reason: format!("it lists no `{name}` component"),
            })
    }

    /// The declared shape of input `input` of `component`.
    pub(crate) fn input_shape(&self, component: &str, input: &str) -> Option<&[i64]> {
        let entry = self.component.get(component)?;
        let meta = entry.inputs.iter().find(|t| t.name == input)?;
        Some(&meta.shape)
    }
}

/// Checks a component's file against its size and sha256 in bundle.toml
/// and returns its path. A damaged graph would otherwise load as garbage
/// weights and make noise, or fail deep inside tract.
pub(crate) fn verify_component(dir: &Path, entry: &ComponentMeta) -> Result<PathBuf, BundleError> {
    let path = dir.join(&entry.file);
    let bad = |reason: String| BundleError::Component {
        path: path.clone(),
        reason,
    };
    let size = std::fs::metadata(&path)
        .map_err(|e| bad(format!("cannot open it: {e}")))?
        .len();
    if size != entry.bytes {
        return Err(bad(format!(
            "it is {size} bytes, bundle.toml says {} (truncated or replaced)",
            entry.bytes
        )));
    }
    let sha = crate::models::sha256_file(&path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !sha.eq_ignore_ascii_case(&entry.sha256) {
        return Err(bad(format!(
            "its sha256 is {sha}, bundle.toml says {} (damaged or replaced)",
            entry.sha256
        )));
    }
    Ok(path)
}

/// The bundle's identity for the background cache: the sha256 of its
/// bundle.toml, which holds every graph's sha256, and of its tokenizers and
/// scheduler config.
pub(crate) fn bundle_id(dir: &Path, meta: &BundleMeta) -> Result<String, BundleError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for name in [
        "bundle.toml",
        meta.clap_tokenizer.as_str(),
        meta.t5_tokenizer.as_str(),
        meta.scheduler.as_str(),
    ] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|cause| BundleError::Read { path, cause })?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::TensorMeta;

    fn meta(shape: &[i64]) -> TensorMeta {
        TensorMeta {
            name: "x".into(),
            dtype: "f32".into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn the_batch_is_fixed_and_a_sequence_stays_free_unless_given() {
        let unet = meta(&[-1, 8, 16, 4]);
        assert_eq!(unet.resolved(2, None).shape, [2, 8, 16, 4]);
        let gpt2 = meta(&[1, -1, 768]);
        assert_eq!(gpt2.resolved(2, None).shape, [1, -1, 768]);
        assert_eq!(gpt2.resolved(2, Some(140)).shape, [1, 140, 768]);
        assert_eq!(meta(&[-1, -1]).resolved(1, Some(7)).shape, [1, 7]);
    }

    #[test]
    fn a_free_axis_accepts_any_size_and_a_fixed_one_only_its_own() {
        let gpt2 = meta(&[1, -1, 768]);
        assert!(gpt2.accepts(&[1, 5, 768]));
        assert!(gpt2.accepts(&[1, 140, 768]));
        assert!(!gpt2.accepts(&[2, 5, 768]));
        assert!(!gpt2.accepts(&[1, 5, 767]));
        assert!(!gpt2.accepts(&[1, 5]));
    }
}
