//! A Piper voice's `.onnx.json`: sample rate, espeak-ng voice, inference
//! defaults, the phoneme-to-id map and speakers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SpeechError;

pub(crate) const PAD: &str = "_";
pub(crate) const BOS: &str = "^";
pub(crate) const EOS: &str = "$";

#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioSection,
    #[serde(default)]
    pub espeak: Option<EspeakSection>,
    pub inference: InferenceSection,
    #[serde(default = "default_phoneme_type")]
    pub(crate) phoneme_type: String,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    pub num_symbols: usize,
    #[serde(default = "one")]
    pub(crate) num_speakers: usize,
    #[serde(default)]
    pub speaker_id_map: HashMap<String, i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioSection {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakSection {
    pub voice: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InferenceSection {
    pub noise_scale: f32,
    pub(crate) length_scale: f32,
    pub noise_w: f32,
}

fn default_phoneme_type() -> String {
    "espeak".to_owned()
}

fn one() -> usize {
    1
}

impl VoiceConfig {
    /// Reads and checks a voice config.
    pub fn load(path: &Path) -> Result<VoiceConfig, SpeechError> {
        let bad = |reason: String| SpeechError::VoiceConfig {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let config: VoiceConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), SpeechError> {
        let bad = |reason: String| SpeechError::VoiceConfig {
            path: path.to_path_buf(),
            reason,
        };
        if !(8000..=96000).contains(&self.audio.sample_rate) {
            return Err(bad(format!(
                "audio.sample_rate {} is not a plausible rate",
                self.audio.sample_rate
            )));
        }
        if self.phoneme_type != "espeak" {
            return Err(bad(format!(
                "phoneme_type {:?} is not supported (vivid speaks espeak-ng voices)",
                self.phoneme_type
            )));
        }
        if self.espeak.is_none() {
            return Err(bad("no espeak.voice: an espeak voice needs one".to_owned()));
        }
        for key in [PAD, BOS, EOS] {
            if self
                .phoneme_id_map
                .get(key)
                .is_none_or(|ids| ids.is_empty())
            {
                return Err(bad(format!("phoneme_id_map has no id for {key:?}")));
            }
        }
        for (phoneme, ids) in &self.phoneme_id_map {
            if let Some(id) = ids
                .iter()
                .find(|id| **id < 0 || **id as usize >= self.num_symbols)
            {
                return Err(bad(format!(
                    "phoneme {phoneme:?} maps to id {id}, outside num_symbols {}",
                    self.num_symbols
                )));
            }
        }
        if self.num_speakers == 0 {
            return Err(bad("num_speakers is 0".to_owned()));
        }
        Ok(())
    }

    pub(crate) fn espeak_voice(&self) -> &str {
        self.espeak.as_ref().map_or("en-us", |e| e.voice.as_str())
    }

    /// The single id of the pad, BOS or EOS symbol lists.
    pub(crate) fn ids_of(&self, symbol: &str) -> &[i64] {
        self.phoneme_id_map.get(symbol).map_or(&[], Vec::as_slice)
    }
}

/// `voice.onnx` → `voice.onnx.json`.
pub fn config_path_for(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}
