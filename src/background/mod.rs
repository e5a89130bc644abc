//! Background: AudioLDM2 on tract, from a caption to a background waveform.
//!
//! - [`bundle`]: the bundle `quantize/export.py` writes (bundle.toml, seven
//!   ONNX graphs, tokenizers, scheduler config), verified before use;
//! - [`tokens`]: the CLAP and T5 token ids, exactly as diffusers makes them;
//! - [`graph`]: one graph on tract at its fixed shapes;
//! - [`conditioning`]: caption → CLAP, T5, projection, GPT-2 → what the UNet
//!   attends to;
//! - [`scheduler`]: DDIM and DPM-Solver++ behind one trait;
//! - [`noise`]: the documented seeded initial latents;
//! - [`engine`]: the pipeline as plain functions over the loaded graphs
//!   (conditioning, denoising loop with classifier-free guidance, VAE,
//!   vocoder), one native-length clip at a time;
//! - [`long`]: backgrounds longer than one clip, without seams or an
//!   audible loop;
//! - [`cache`]: finished backgrounds stored by everything that made them.
//!
//! `quantize/runner.py` is the executable spec of the engine; the
//! integration tests check every intermediate against diffusers' own run.

pub mod bundle;
pub mod cache;
pub mod conditioning;
pub mod engine;
pub mod graph;
pub mod long;
pub mod noise;
pub mod scheduler;
pub mod tokens;

use std::path::PathBuf;

use thiserror::Error;

pub use engine::{Engine, MemoryMode, Request, SchedulerKind};

#[derive(Debug, Error)]
pub enum BackgroundError {
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error("{path}: {reason} (make the bundle again with quantize/export.py)")]
    Graph { path: PathBuf, reason: String },
    #[error("running the {component} graph failed: {reason}")]
    Inference { component: String, reason: String },
    #[error(transparent)]
    Scheduler(#[from] scheduler::SchedulerError),
    #[error("initial latents {path}: {reason}")]
    InitLatents { path: PathBuf, reason: String },
    #[error("{0}")]
    Request(String),
    #[error("background cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("internal error in the background engine: {0}")]
    Internal(String),
}

/// What the engine is doing, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Loading (and optimizing) graphs.
    Loading,
    /// Text encoders and GPT-2.
    Conditioning,
    /// The UNet loop.
    Denoising,
    /// VAE and vocoder.
    Decoding,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Loading => "loading",
            Stage::Conditioning => "conditioning",
            Stage::Denoising => "denoising",
            Stage::Decoding => "decoding",
        }
    }
}

/// An intermediate value, for parity checks.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    F32(&'a [usize], &'a [f32]),
    I64(&'a [usize], &'a [i64]),
}

/// Watches a generation: stages, denoising steps and, when asked for,
/// every intermediate (named as in diffusers' reference recordings).
/// Every method does nothing by default.
pub trait Observer {
    fn stage(&mut self, _clip: usize, _stage: Stage) {}
    /// `done` of `total` denoising steps of clip `clip` are finished.
    fn step(&mut self, _clip: usize, _done: usize, _total: usize) {}
    fn wants_records(&self) -> bool {
        false
    }
    fn record(&mut self, _name: &str, _value: Record<'_>) {}
}

/// Watches nothing.
pub struct Unobserved;

impl Observer for Unobserved {}
