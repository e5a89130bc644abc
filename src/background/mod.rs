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
    #[error("{path}: {reason}")]
    Device { path: PathBuf, reason: String },
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
    /// A background will be made from `count` clips (said before the
    /// first).
    fn clips(&mut self, _count: usize) {}
    fn stage(&mut self, _clip: usize, _stage: Stage) {}
    /// `done` of `total` denoising steps of clip `clip` are finished.
    fn step(&mut self, _clip: usize, _done: usize, _total: usize) {}
    fn wants_records(&self) -> bool {
        false
    }
    /// Why the work should stop now (a job past its time bound), checked
    /// after every denoising step.
    fn cancelled(&self) -> Option<String> {
        None
    }
    fn record(&mut self, _name: &str, _value: Record<'_>) {}
}

/// Passes everything on to `inner` and writes every intermediate as
/// `NAME.npy` into `dir` (clips after the first into `dir/clip-N/`):
/// `vivid background --record DIR`, for parity checks against diffusers'
/// recordings or between two devices. A write that fails is logged and
/// the generation goes on.
pub struct RecordToDir<'a> {
    inner: &'a mut dyn Observer,
    dir: std::path::PathBuf,
    clip: usize,
}

impl<'a> RecordToDir<'a> {
    pub fn new(inner: &'a mut dyn Observer, dir: &std::path::Path) -> RecordToDir<'a> {
        RecordToDir {
            inner,
            dir: dir.to_path_buf(),
            clip: 0,
        }
    }
}

impl Observer for RecordToDir<'_> {
    fn clips(&mut self, count: usize) {
        self.inner.clips(count);
    }
    fn stage(&mut self, clip: usize, stage: Stage) {
        self.clip = clip;
        self.inner.stage(clip, stage);
    }
    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.inner.step(clip, done, total);
    }
    fn wants_records(&self) -> bool {
        true
    }
    fn cancelled(&self) -> Option<String> {
        self.inner.cancelled()
    }
    fn record(&mut self, name: &str, value: Record<'_>) {
        let dir = match self.clip {
            0 => self.dir.clone(),
            clip => self.dir.join(format!("clip-{clip}")),
        };
        let path = dir.join(format!("{name}.npy"));
        let written = std::fs::create_dir_all(&dir).and_then(|()| match value {
            Record::F32(shape, values) => noise::write_npy(&path, shape, values),
            Record::I64(shape, values) => noise::write_npy(&path, shape, values),
        });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot record an intermediate: {e}");
        }
        self.inner.record(name, value);
    }
}

/// Watches nothing.
pub struct Unobserved;

impl Observer for Unobserved {}

/// A finished background.
#[derive(Debug, Clone)]
pub struct Background {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Taken from the cache rather than generated.
    pub cached: bool,
    /// What made it (also the cache key).
    pub key: cache::CacheKey,
}

/// A background of `seconds` for `request`: from the cache when it holds
/// one made with the same bundle and settings, else generated (see
/// [`long::generate`]) and stored. Runs with given initial latents are
/// never cached (the key does not hold them).
pub fn make_background(
    engine: &mut Engine,
    request: &Request,
    seconds: f64,
    variations: usize,
    limits: long::LengthLimits,
    cache: &cache::BackgroundCache,
    observer: &mut dyn Observer,
) -> Result<Background, BackgroundError> {
    long::checked_samples(seconds, engine.sample_rate(), limits)?;
    let key = cache::CacheKey {
        bundle: engine.id().to_owned(),
        caption: request.caption.clone(),
        negative: request.negative.clone(),
        seed: request.seed,
        steps: request.steps,
        scheduler: request.scheduler.as_str().to_owned(),
        guidance: request.guidance,
        seconds,
        variations,
        engine_version: cache::ENGINE_VERSION,
    };
    let cacheable = request.init_latents.is_none();
    if cacheable && let Some((samples, sample_rate)) = cache.get(&key) {
        return Ok(Background {
            samples,
            sample_rate,
            cached: true,
            key,
        });
    }
    let samples = long::generate(engine, request, seconds, variations, limits, observer)?;
    if cacheable && cache.enabled() {
        // A full disk must not lose the background just made: it is
        // returned, and only the cache misses out.
        if let Err(e) = cache.put(&key, &samples, engine.sample_rate()) {
            tracing::warn!("{e}");
        }
    }
    Ok(Background {
        samples,
        sample_rate: engine.sample_rate(),
        cached: false,
        key,
    })
}

/// Progress of a background as periodic log lines, an optional progress
/// bar, and a one-line status for `vivid status`.
pub struct ProgressLog {
    clips: usize,
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    last_log: Option<std::time::Instant>,
    status: String,
}

/// Seconds between progress log lines.
const PROGRESS_LOG_EVERY_S: f32 = 10.0;

impl ProgressLog {
    /// Progress, drawn on `bar` when given; the clip count comes from the
    /// engine ([`Observer::clips`]).
    pub fn new(bar: Option<indicatif::ProgressBar>) -> Self {
        Self {
            clips: 1,
            bar,
            started: std::time::Instant::now(),
            last_log: None,
            status: "starting".to_owned(),
        }
    }

    /// What the engine is doing now, e.g. "clip 1/2: denoising step 10/25".
    pub fn status(&self) -> &str {
        &self.status
    }
}

impl Observer for ProgressLog {
    fn clips(&mut self, count: usize) {
        self.clips = count.max(1);
    }

    fn stage(&mut self, clip: usize, stage: Stage) {
        self.status = format!("clip {}/{}: {}", clip + 1, self.clips, stage.label());
        tracing::info!("background {}", self.status);
        if let Some(bar) = &self.bar {
            bar.set_message(self.status.clone());
        }
    }

    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.status = format!(
            "clip {}/{}: denoising step {done}/{total}",
            clip + 1,
            self.clips
        );
        if let Some(bar) = &self.bar {
            bar.set_length((total * self.clips) as u64);
            bar.set_position((clip * total + done) as u64);
            bar.set_message(self.status.clone());
        }
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed().as_secs_f32() >= PROGRESS_LOG_EVERY_S);
        // With a bar on screen the bar shows this; log lines would tear it.
        if self.bar.is_none() && (due || done == total) {
            self.last_log = Some(std::time::Instant::now());
            tracing::info!(
                elapsed_s = format!("{:.1}", self.started.elapsed().as_secs_f32()),
                "background {}",
                self.status
            );
        }
    }
}
