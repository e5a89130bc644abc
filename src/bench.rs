//! `vivid bench`: speed and memory of each stage, measured against the
//! reference implementation in the same run, so the printed ratios compare
//! like with like on whatever machine runs them.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::compute::{peak_rss_kb, set_compute_threads};
use crate::speech::{SpeakOptions, Voice};

/// The benchmark's sentences: the speech parity set (numbers, dates,
/// names, one very long sentence).
pub const TTS_SENTENCES: &str = include_str!("../tests/fixtures/speech/sentences.txt");
/// A 60-word paragraph for time-to-first-audio.
pub const TTS_PARAGRAPH: &str = "The harbour was quiet that morning. Fog lay over the water \
    and the fishing boats waited at their moorings, ropes creaking as the tide turned. Somewhere \
    beyond the breakwater a bell rang twice. The keeper climbed the stairs of the lighthouse, \
    trimmed the wick, and watched the grey light spread slowly across the bay while gulls \
    circled above the empty quay.";
const PIPER_SCRIPT: &str = include_str!("../tests/bench/piper_tts.py");

/// One configuration's measurements.
#[derive(Debug, Clone, Deserialize)]
pub struct TtsRun {
    pub load_s: f64,
    pub audio_s: f64,
    pub compute_s: f64,
    pub first_audio_s: Option<f64>,
    pub peak_rss_kb: u64,
}

impl TtsRun {
    /// Real-time factor: compute seconds per second of audio.
    pub fn rtf(&self) -> f64 {
        self.compute_s / self.audio_s.max(1e-9)
    }
}

pub fn sentences() -> Vec<&'static str> {
    TTS_SENTENCES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// A voice with its load time and each bucket's optimize time.
pub struct LoadedVoice {
    pub voice: Voice,
    pub load_s: f64,
    /// (bucket, seconds) for every default bucket.
    pub optimize: Vec<(usize, f64)>,
}

/// Loads the voice and builds every bucket's plan, timing both.
pub fn load_voice(model: &Path) -> Result<LoadedVoice> {
    let t0 = Instant::now();
    let voice = Voice::load(model)?;
    let load_s = t0.elapsed().as_secs_f64();
    let mut optimize = Vec::new();
    tracing::info!(rss_mib = peak_rss_kb() / 1024, "voice loaded");
    for bucket in crate::speech::DEFAULT_BUCKETS {
        let t0 = Instant::now();
        voice.model.plan(*bucket)?;
        optimize.push((*bucket, t0.elapsed().as_secs_f64()));
        tracing::info!(bucket, rss_mib = peak_rss_kb() / 1024, "plan built");
    }
    Ok(LoadedVoice {
        voice,
        load_s,
        optimize,
    })
}

/// Times vivid on the benchmark texts with `threads` kernel threads.
pub fn run_vivid_tts(voice: &Voice, threads: usize, load_s: f64) -> Result<TtsRun> {
    set_compute_threads(threads);
    let opts = SpeakOptions {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..SpeakOptions::default()
    };
    let texts = sentences();
    // Warm-up, as the reference does.
    for audio in voice.speak(texts[0], &opts)? {
        audio?;
    }
    let mut audio_s = 0.0;
    let t0 = Instant::now();
    for text in &texts {
        for audio in voice.speak(text, &opts)? {
            audio_s += audio?.samples.len() as f64 / f64::from(voice.sample_rate());
        }
    }
    let compute_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let first_audio_s = match voice.speak(TTS_PARAGRAPH, &opts)?.next() {
        Some(first) => {
            first?;
            Some(t0.elapsed().as_secs_f64())
        }
        None => None,
    };
    Ok(TtsRun {
        load_s,
        audio_s,
        compute_s,
        first_audio_s,
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Times piper-tts (onnxruntime) in a Python subprocess.
pub fn run_piper_tts(python: &str, model: &Path, threads: usize) -> Result<TtsRun> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("piper_tts.py");
    std::fs::write(&script, PIPER_SCRIPT)?;
    let texts = dir.path().join("texts.json");
    std::fs::write(&texts, serde_json::to_string(&sentences())?)?;
    let output = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(threads.to_string())
        .arg(&texts)
        .arg(TTS_PARAGRAPH)
        .output()
        .with_context(|| format!("running {python}"))?;
    if !output.status.success() {
        bail!(
            "the piper-tts reference failed (is `pip install piper-tts==1.8.0` done?): {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("reading the reference's report {line:?}"))
}
