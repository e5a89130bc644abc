//! Speak: text to speech with a Piper VITS voice (`.onnx` + `.onnx.json`),
//! phonemes from the system's espeak-ng, the graph run on tract.
//!
//! The output matches piper-tts 1.8: the same phonemes and ids, the same
//! graph, and each sentence peak-normalized as piper does. A text is
//! phonemized whole (cheap) and synthesized sentence by sentence, so a long
//! text starts producing audio after its first sentence and never needs one
//! giant graph run.

pub mod espeak;
pub mod phonemes;
pub mod split;
pub(crate) mod vits;
pub(crate) mod voice_config;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use phonemes::Sentence;
pub use vits::{DEFAULT_BUCKETS, VitsModel};
pub use voice_config::{VoiceConfig, config_path_for};

/// The hint for a voice that cannot be loaded.
pub const VOICE_HINT: &str = "hint: `vivid models verify` checks the default voice, \
     `vivid models fetch` installs it";

#[derive(Debug, Error)]
pub enum SpeechError {
    #[error("espeak-ng: {0}")]
    Espeak(String),
    #[error("voice model {path}: {reason}")]
    VoiceModel { path: PathBuf, reason: String },
    #[error("voice config {path}: {reason}")]
    VoiceConfig { path: PathBuf, reason: String },
    #[error("the text has nothing to speak (it is empty or has no pronounceable words)")]
    NothingToSay,
    #[error("speech synthesis failed: {reason}")]
    Inference { reason: String },
    #[error("{0}")]
    BadOption(String),
}

/// Per-call settings; `None` takes the voice config's value.
#[derive(Debug, Clone, Default)]
pub struct SpeakOptions {
    /// Speaker of a multi-speaker voice (id, as in `speaker_id_map`).
    pub speaker: Option<i64>,
    /// Speaking rate: 1.0 as the voice was trained, 1.2 is 20% faster.
    pub rate: Option<f32>,
    pub noise_scale: Option<f32>,
    pub noise_w: Option<f32>,
}

/// One sentence of speech.
#[derive(Debug, Clone)]
pub struct SentenceAudio {
    /// Its phonemes, as piper writes them.
    pub phonemes: String,
    /// Mono samples in [-1, 1] at the voice's sample rate.
    pub samples: Vec<f32>,
}

/// A loaded voice: the fixed graph plus its config.
#[derive(Debug)]
pub struct Voice {
    pub config: VoiceConfig,
    pub model: VitsModel,
    pub model_path: PathBuf,
    /// The seed of the voice's noise.
    pub seed: u64,
}

impl Voice {
    /// Loads `voice.onnx` and `voice.onnx.json` beside it, its noise
    /// seeded with `seed` (the same text and seed give the same speech).
    pub fn load(model_path: &Path, seed: u64) -> Result<Voice, SpeechError> {
        Self::load_with(
            model_path,
            &config_path_for(model_path),
            DEFAULT_BUCKETS,
            seed,
        )
    }

    pub(crate) fn load_with(
        model_path: &Path,
        config_path: &Path,
        buckets: &[usize],
        seed: u64,
    ) -> Result<Voice, SpeechError> {
        let config = VoiceConfig::load(config_path)?;
        let model = VitsModel::load(model_path, buckets, seed)?;
        if let Some(rows) = model.embedding_symbols
            && rows != config.num_symbols
        {
            return Err(SpeechError::VoiceConfig {
                path: config_path.to_path_buf(),
                reason: format!(
                    "num_symbols is {} but the model {} has {rows} phoneme symbols: the config belongs to another voice",
                    config.num_symbols,
                    model_path.display()
                ),
            });
        }
        if config.num_speakers > 1 && !model.has_speaker_input() {
            return Err(SpeechError::VoiceConfig {
                path: config_path.to_path_buf(),
                reason: format!(
                    "num_speakers is {} but the model has no speaker input",
                    config.num_speakers
                ),
            });
        }
        tracing::info!(
            voice = %model_path.display(),
            rate = config.audio.sample_rate,
            clamped = model.fixes.clamped_constants,
            ranges = model.fixes.rewritten_ranges,
            seeded = model.fixes.seeded_noise_ops,
            seed,
            "voice loaded"
        );
        Ok(Voice {
            config,
            model,
            model_path: model_path.to_path_buf(),
            seed,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.config.audio.sample_rate
    }

    /// Text to sentences of phonemes.
    pub fn phonemize(&self, text: &str) -> Result<Vec<Sentence>, SpeechError> {
        let clauses = espeak::clauses(self.config.espeak_voice(), text)?;
        Ok(phonemes::sentences(&clauses))
    }

    /// Phoneme ids of a string of phonemes.
    pub fn ids(&self, phonemes: &str) -> Vec<i64> {
        phonemes::phoneme_ids(phonemes, &self.config)
    }

    /// The `scales` input: noise, length, noise_w.
    pub(crate) fn scales(&self, opts: &SpeakOptions) -> Result<[f32; 3], SpeechError> {
        let inference = self.config.inference;
        let rate = opts.rate.unwrap_or(1.0);
        if !(0.25..=4.0).contains(&rate) {
            return Err(SpeechError::BadOption(format!(
                "speaking rate {rate} is outside 0.25 to 4"
            )));
        }
        Ok([
            opts.noise_scale.unwrap_or(inference.noise_scale),
            inference.length_scale / rate,
            opts.noise_w.unwrap_or(inference.noise_w),
        ])
    }

    fn speaker(&self, opts: &SpeakOptions) -> Result<Option<i64>, SpeechError> {
        if self.config.num_speakers <= 1 {
            return Ok(None);
        }
        let speaker = opts.speaker.unwrap_or(0);
        if speaker < 0 || speaker as usize >= self.config.num_speakers {
            return Err(SpeechError::BadOption(format!(
                "speaker {speaker} does not exist: the voice has {} (0 to {})",
                self.config.num_speakers,
                self.config.num_speakers - 1
            )));
        }
        Ok(Some(speaker))
    }

    /// Raw model output for ids (no normalization); at most `max_ids` ids.
    pub fn infer_ids(&self, ids: &[i64], opts: &SpeakOptions) -> Result<Vec<f32>, SpeechError> {
        self.model
            .infer(ids, self.pad_id(), self.scales(opts)?, self.speaker(opts)?)
    }

    /// Time per kind of op for one run of `ids` (see `VitsModel::profile`).
    pub(crate) fn profile_ids(
        &self,
        ids: &[i64],
        opts: &SpeakOptions,
    ) -> Result<Vec<(String, f64)>, SpeechError> {
        self.model
            .profile(ids, self.pad_id(), self.scales(opts)?, self.speaker(opts)?)
    }

    fn pad_id(&self) -> i64 {
        self.config
            .ids_of(voice_config::PAD)
            .first()
            .copied()
            .unwrap_or(0)
    }

    /// Speaks one sentence, splitting it at clause (then word) boundaries
    /// when it is longer than the largest bucket, and peak-normalizes it as
    /// piper does.
    pub fn speak_sentence(
        &self,
        sentence: &Sentence,
        opts: &SpeakOptions,
    ) -> Result<SentenceAudio, SpeechError> {
        let max_phonemes = (self.model.max_ids().saturating_sub(3)) / 2;
        let mut samples = Vec::new();
        for piece in split_to_fit(sentence, max_phonemes) {
            let ids = self.ids(&piece);
            if ids.len() <= 3 {
                continue;
            }
            samples.extend(self.infer_ids(&ids, opts)?);
        }
        normalize_peak(&mut samples);
        Ok(SentenceAudio {
            phonemes: sentence.phonemes(),
            samples,
        })
    }

    /// Phonemizes `text` and returns the sentences to speak; an error when
    /// there is nothing pronounceable.
    pub(crate) fn prepare(&self, text: &str) -> Result<Vec<Sentence>, SpeechError> {
        let sentences = self.phonemize(text)?;
        let speakable: Vec<Sentence> = sentences
            .into_iter()
            .filter(|s| self.ids(&s.phonemes()).len() > 3)
            .collect();
        if speakable.is_empty() {
            return Err(SpeechError::NothingToSay);
        }
        Ok(speakable)
    }

    /// Speaks `text` sentence by sentence: the iterator synthesizes each
    /// sentence when it is asked for the next.
    pub fn speak<'v>(
        &'v self,
        text: &str,
        opts: &'v SpeakOptions,
    ) -> Result<impl Iterator<Item = Result<SentenceAudio, SpeechError>> + 'v, SpeechError> {
        let sentences = self.prepare(text)?;
        // Check the options once, before any work.
        self.scales(opts)?;
        self.speaker(opts)?;
        Ok(sentences
            .into_iter()
            .map(move |s| self.speak_sentence(&s, opts)))
    }
}

/// Splits a sentence into pieces of at most `max_phonemes` phonemes: whole
/// clauses where they fit, a too-long clause at spaces, a too-long word by
/// length.
pub(crate) fn split_to_fit(sentence: &Sentence, max_phonemes: usize) -> Vec<String> {
    let max = max_phonemes.max(1);
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    let mut push = |piece: &str, current: &mut String, current_len: &mut usize| {
        let len = piece.chars().count();
        if *current_len + len > max && !current.is_empty() {
            pieces.push(std::mem::take(current));
            *current_len = 0;
        }
        current.push_str(piece);
        *current_len += len;
    };
    for clause in &sentence.clauses {
        if clause.chars().count() <= max {
            push(clause, &mut current, &mut current_len);
            continue;
        }
        for word in clause.split_inclusive(' ') {
            let chars: Vec<char> = word.chars().collect();
            for part in chars.chunks(max) {
                let part: String = part.iter().collect();
                push(&part, &mut current, &mut current_len);
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Scales to a peak of 1.0 (silence stays silence) and clips, as piper-tts
/// does for each sentence.
pub fn normalize_peak(samples: &mut [f32]) {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak < 1e-8 {
        samples.iter_mut().for_each(|s| *s = 0.0);
        return;
    }
    for s in samples.iter_mut() {
        *s = (*s / peak).clamp(-1.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_clauses_whole_when_they_fit() {
        let s = Sentence {
            clauses: vec!["aaaa, ".into(), "bbbb, ".into(), "cc.".into()],
        };
        assert_eq!(split_to_fit(&s, 100), vec!["aaaa, bbbb, cc."]);
        assert_eq!(split_to_fit(&s, 12), vec!["aaaa, bbbb, ", "cc."]);
        let pieces = split_to_fit(&s, 4);
        assert!(pieces.iter().all(|p| p.chars().count() <= 4), "{pieces:?}");
        assert_eq!(pieces.concat(), s.phonemes());
    }

    #[test]
    fn normalize_matches_piper() {
        let mut a = vec![0.1, -0.5, 0.25];
        normalize_peak(&mut a);
        assert_eq!(a, vec![0.2, -1.0, 0.5]);
        let mut silent = vec![0.0, 1e-9];
        normalize_peak(&mut silent);
        assert_eq!(silent, vec![0.0, 0.0]);
    }
}
