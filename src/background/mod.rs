//! Background: a soundscape under the narration, from one of two engines
//! behind one seam ([`Generator`]):
//!
//! - [`soundscape`] (the default): the scene's sources synthesized from a
//!   catalog of recipes; no weights, any board, hundreds of times faster
//!   than real time;
//! - [`audioldm2`]: AudioLDM2 on tract from a bundle that `quantize/`
//!   makes of real (non-commercial) weights.
//!
//! A scene asks for a background with a [`SceneRequest`] (caption, and
//! the describer's place, sounds and level when it has them); the engine
//! turns it into a [`SceneRecipe`] (what will play, everything that
//! decides the samples: the report shows it, the cache key covers it),
//! then into samples at the engine's rate and channel count.
//! [`make_background`] adds the cache; [`open`] picks the engine from the
//! settings (`auto`: AudioLDM2 when a bundle of real weights is
//! installed, else the soundscape).

pub mod audioldm2;
pub mod cache;
pub mod soundscape;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use soundscape::Level;

#[derive(Debug, Error)]
pub enum BackgroundError {
    #[error(transparent)]
    Bundle(#[from] audioldm2::bundle::BundleError),
    #[error("{path}: {reason} ({})", audioldm2::REMAKE_BUNDLE)]
    Graph { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Device { path: PathBuf, reason: String },
    #[error("running the {component} graph failed: {reason}")]
    Inference { component: String, reason: String },
    #[error(transparent)]
    Scheduler(#[from] audioldm2::scheduler::SchedulerError),
    #[error("initial latents {path}: {reason}")]
    InitLatents { path: PathBuf, reason: String },
    #[error("{0}")]
    Request(String),
    #[error("background cache {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The observer stopped the job (a time bound, a stop): the one
    /// error every engine gives for it.
    #[error("{0}")]
    Cancelled(String),
    #[error("internal error in the background engine: {0}")]
    Internal(String),
}

/// Which engine makes backgrounds (`background.engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// AudioLDM2 when a bundle of real weights is installed, else the
    /// soundscape.
    #[default]
    Auto,
    Soundscape,
    Audioldm2,
}

impl std::str::FromStr for EngineChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<EngineChoice, String> {
        match s.trim().to_lowercase().as_str() {
            "auto" => Ok(EngineChoice::Auto),
            "soundscape" => Ok(EngineChoice::Soundscape),
            "audioldm2" => Ok(EngineChoice::Audioldm2),
            other => Err(format!(
                "unknown engine `{other}`: use auto, soundscape or audioldm2"
            )),
        }
    }
}

/// The engine that made a background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Soundscape,
    Audioldm2,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Soundscape => "soundscape",
            EngineKind::Audioldm2 => "audioldm2",
        }
    }
}

/// What a scene asks of a background engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneRequest {
    /// The scene's caption (AudioLDM2's prompt; the soundscape reads it
    /// when there is no structured answer).
    pub caption: String,
    /// The describer's place, sounds and level, when it gave them.
    pub place: Option<String>,
    pub sounds: Vec<String>,
    pub level: Option<Level>,
    /// The describer chose no source (catalog mode): the soundscape plays
    /// the place's bed alone instead of reading the caption for sources.
    pub bed_only: bool,
    /// The narration the scene accompanies: the soundscape reads its
    /// words for the chosen sources' variants (a horse's gait, the
    /// ground); AudioLDM2 takes only the caption.
    pub text: String,
    pub seed: u64,
}

/// What an engine will play for a scene: everything that decides the
/// samples besides the length. The report records it; the cache key
/// covers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "engine", rename_all = "lowercase")]
pub enum SceneRecipe {
    Soundscape(soundscape::ScenePlan),
    Audioldm2(audioldm2::ClipRecipe),
}

impl From<soundscape::ScenePlan> for SceneRecipe {
    fn from(plan: soundscape::ScenePlan) -> Self {
        SceneRecipe::Soundscape(plan)
    }
}

impl From<audioldm2::ClipRecipe> for SceneRecipe {
    fn from(clip: audioldm2::ClipRecipe) -> Self {
        SceneRecipe::Audioldm2(clip)
    }
}

/// The engine's settings, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct EngineRecord {
    pub engine: EngineKind,
    /// The engine's identity (the bundle's, or the soundscape's version).
    pub id: String,
    pub seed: u64,
    #[serde(flatten)]
    pub(crate) details: serde_json::Value,
}

/// A background engine, typed by its recipe: what its `prepare` makes is
/// what its `generate` takes, so no engine can be handed another's recipe.
pub(crate) trait BackgroundEngine: Send {
    /// What the engine plays for a scene: everything that decides the
    /// samples besides the length (the report's and the cache key's
    /// [`SceneRecipe`]).
    type Recipe: Clone + Into<SceneRecipe>;
    const KIND: EngineKind;
    /// Identity for the cache: the same id and recipe give the same
    /// samples.
    fn id(&self) -> &str;
    fn sample_rate(&self) -> u32;
    fn channels(&self) -> u16;
    /// What this engine will play for `request`.
    fn prepare(&self, request: &SceneRequest) -> Result<Self::Recipe, BackgroundError>;
    /// `seconds` of background for `recipe`, interleaved when there is
    /// more than one channel; the observer hears how many clips it takes,
    /// each one's stages, and is asked whether to stop.
    fn generate(
        &mut self,
        recipe: &Self::Recipe,
        seconds: f64,
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError>;
    /// Loads what the engine needs now, so a service fails at start.
    fn preload(&mut self, _observer: &mut dyn Observer) -> Result<(), BackgroundError> {
        Ok(())
    }
    /// Whether keeping the background of `recipe` pays: reading one back
    /// must be cheaper than making it again, and the key must hold all
    /// that decides it.
    fn worth_caching(&self, recipe: &Self::Recipe) -> bool;
    /// The engine's settings, for the report.
    fn record(&self, seed: u64) -> EngineRecord;
}

/// Any engine, as the renderer and the commands hold it: from a scene's
/// request to a finished background. Every [`BackgroundEngine`] is one.
pub trait Generator: Send {
    fn kind(&self) -> EngineKind;
    /// Loads what the engine needs now, so a service fails at start.
    fn load(&mut self, observer: &mut dyn Observer) -> Result<(), BackgroundError>;
    /// The engine's settings, for the report.
    fn report(&self, seed: u64) -> EngineRecord;
    /// A background of `seconds` for `request`: from the cache when it
    /// holds one made by the same engine from the same recipe (and the
    /// engine's backgrounds are worth keeping), else generated and stored.
    fn make(
        &mut self,
        request: &SceneRequest,
        seconds: f64,
        cache: &cache::BackgroundCache,
        observer: &mut dyn Observer,
    ) -> Result<Background, BackgroundError>;
}

impl<E: BackgroundEngine> Generator for E {
    fn kind(&self) -> EngineKind {
        E::KIND
    }

    fn load(&mut self, observer: &mut dyn Observer) -> Result<(), BackgroundError> {
        self.preload(observer)
    }

    fn report(&self, seed: u64) -> EngineRecord {
        self.record(seed)
    }

    fn make(
        &mut self,
        request: &SceneRequest,
        seconds: f64,
        cache: &cache::BackgroundCache,
        observer: &mut dyn Observer,
    ) -> Result<Background, BackgroundError> {
        let recipe = self.prepare(request)?;
        let scene: SceneRecipe = recipe.clone().into();
        // The key (the recipe serialized) only where the cache is used.
        let key = (self.worth_caching(&recipe) && cache.enabled()).then(|| cache::CacheKey {
            engine: self.id().to_owned(),
            recipe: serde_json::to_value(&scene).unwrap_or_default(),
            seconds,
            engine_version: cache::ENGINE_VERSION,
        });
        if let Some(key) = &key
            && let Some((samples, sample_rate, channels)) = cache.get(key)
        {
            return Ok(Background {
                samples,
                sample_rate,
                channels,
                cached: Some(true),
                recipe: scene,
            });
        }
        let samples = self.generate(&recipe, seconds, observer)?;
        if let Some(key) = &key {
            // A full disk must not lose the background just made: it is
            // returned, and only the cache misses out.
            if let Err(e) = cache.put(key, &samples, self.sample_rate(), self.channels()) {
                tracing::warn!("{}", crate::error_chain(&e));
            }
        }
        Ok(Background {
            samples,
            sample_rate: self.sample_rate(),
            channels: self.channels(),
            cached: key.map(|_| false),
            recipe: scene,
        })
    }
}

/// Limits on a background's length.
#[derive(Debug, Clone, Copy)]
pub struct LengthLimits {
    /// Longest background accepted, in seconds.
    pub max_seconds: f64,
}

/// Checks a requested length and returns it in frames at `rate`.
pub(crate) fn checked_frames(
    seconds: f64,
    rate: u32,
    channels: u16,
    limits: LengthLimits,
) -> Result<usize, BackgroundError> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(BackgroundError::Request(format!(
            "{seconds} seconds: a background needs a length above 0"
        )));
    }
    if seconds > limits.max_seconds {
        return Err(BackgroundError::Request(format!(
            "{seconds} seconds is longer than the {} s allowed (background.max_seconds)",
            limits.max_seconds
        )));
    }
    let frames = (seconds * f64::from(rate)).round().max(1.0) as usize;
    // The engine's work, the finished background and a copy on the way out.
    let needed_bytes = frames as u64 * u64::from(channels.max(1)) * 4 * 3;
    if let Some(available) = available_memory_bytes()
        && needed_bytes > available
    {
        return Err(BackgroundError::Request(format!(
            "{seconds} seconds of background needs about {} MiB, and only {} MiB of memory is available",
            needed_bytes >> 20,
            available >> 20
        )));
    }
    Ok(frames)
}

fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Everything that chooses and runs the background engine.
#[derive(Debug, Clone)]
pub struct BackgroundSettings {
    pub engine: EngineChoice,
    pub seed: u64,
    pub limits: LengthLimits,
    pub cache_dir: PathBuf,
    /// 0 turns the cache off.
    pub(crate) cache_max_bytes: u64,
    pub audioldm2: audioldm2::Audioldm2Settings,
    /// The soundscape's library of recordings.
    pub library: soundscape::library::LibrarySettings,
}

impl BackgroundSettings {
    pub fn cache(&self) -> cache::BackgroundCache {
        cache::BackgroundCache::new(&self.cache_dir, self.cache_max_bytes)
    }
}

/// An engine, opened, and why `auto` chose it when that is worth saying.
pub struct Opened {
    pub generator: Box<dyn Generator>,
    pub note: Option<String>,
}

/// The engine [`open`] picks for these settings, told from the bundle's
/// description alone (no graphs loaded): for `auto`, AudioLDM2 when a
/// bundle of real weights is installed.
pub(crate) fn engine_for(settings: &BackgroundSettings) -> EngineKind {
    match settings.engine {
        EngineChoice::Soundscape => EngineKind::Soundscape,
        EngineChoice::Audioldm2 => EngineKind::Audioldm2,
        EngineChoice::Auto => {
            let real = audioldm2::bundle::BundleMeta::load(&settings.audioldm2.bundle)
                .is_ok_and(|meta| !meta.source.contains("random weights"));
            if real {
                EngineKind::Audioldm2
            } else {
                EngineKind::Soundscape
            }
        }
    }
}

/// Opens the engine the settings ask for. `auto` takes AudioLDM2 when a
/// bundle of real weights is installed, else the soundscape (a bundle of
/// random weights, or one that cannot be opened, is noted and passed
/// over); an explicit `audioldm2` without a usable bundle is an error.
pub fn open(settings: &BackgroundSettings) -> Result<Opened, BackgroundError> {
    let a = &settings.audioldm2;
    match settings.engine {
        EngineChoice::Soundscape => Ok(Opened {
            generator: Box::new(soundscape::Soundscape::new(
                settings.limits,
                &settings.library,
            )),
            note: None,
        }),
        EngineChoice::Audioldm2 => {
            if !a.bundle.join("bundle.toml").is_file() {
                return Err(BackgroundError::Request(format!(
                    "background.engine is audioldm2 but there is no AudioLDM2 bundle at {}: {}",
                    a.bundle.display(),
                    audioldm2::MAKE_BUNDLE
                )));
            }
            let engine = audioldm2::Audioldm2::open(a, settings.limits)?;
            if engine.is_random_weights() {
                tracing::warn!(
                    bundle = %a.bundle.display(),
                    "the background bundle holds random weights (a test or benchmark bundle): the background is noise"
                );
            }
            Ok(Opened {
                generator: Box::new(engine),
                note: None,
            })
        }
        EngineChoice::Auto => {
            let soundscape = |note: String| {
                tracing::info!("{note}");
                Opened {
                    generator: Box::new(soundscape::Soundscape::new(
                        settings.limits,
                        &settings.library,
                    )),
                    note: Some(note),
                }
            };
            if !a.bundle.join("bundle.toml").is_file() {
                return Ok(soundscape(format!(
                    "soundscape engine (no AudioLDM2 bundle at {})",
                    a.bundle.display()
                )));
            }
            match audioldm2::Audioldm2::open(a, settings.limits) {
                Ok(engine) if engine.is_random_weights() => Ok(soundscape(format!(
                    "soundscape engine (the AudioLDM2 bundle at {} holds random weights, for tests only)",
                    a.bundle.display()
                ))),
                Ok(engine) => Ok(Opened {
                    generator: Box::new(engine),
                    note: None,
                }),
                Err(e) => {
                    tracing::warn!(
                        "the AudioLDM2 bundle cannot be used ({e}); using the soundscape"
                    );
                    Ok(soundscape(format!(
                        "soundscape engine (the AudioLDM2 bundle at {} cannot be used: {e})",
                        a.bundle.display()
                    )))
                }
            }
        }
    }
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
    /// The soundscape's synthesis.
    Synthesizing,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Loading => "loading",
            Stage::Conditioning => "conditioning",
            Stage::Denoising => "denoising",
            Stage::Decoding => "decoding",
            Stage::Synthesizing => "synthesizing",
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
            Record::F32(shape, values) => audioldm2::noise::write_npy(&path, shape, values),
            Record::I64(shape, values) => audioldm2::noise::write_npy(&path, shape, values),
        });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot record an intermediate: {e}");
        }
        self.inner.record(name, value);
    }
}

/// Watches nothing.
pub(crate) struct Unobserved;

impl Observer for Unobserved {}

/// A finished background.
#[derive(Debug, Clone)]
pub struct Background {
    /// Interleaved when there is more than one channel.
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u16,
    /// Taken from the cache (true) or generated and stored (false); None
    /// when the cache was not consulted (an engine too quick to be worth
    /// caching, or the cache off).
    pub cached: Option<bool>,
    /// What was played.
    pub recipe: SceneRecipe,
}

impl Background {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.channels.max(1)) / f64::from(self.sample_rate)
    }
}

/// Progress of a background as periodic log lines and a one-line status
/// for `vivid status`.
pub(crate) struct ProgressLog {
    clips: usize,
    started: std::time::Instant,
    last_log: Option<std::time::Instant>,
    status: String,
}

/// Seconds between progress log lines.
const PROGRESS_LOG_EVERY_S: f32 = 10.0;

impl ProgressLog {
    /// Progress; the clip count comes from the engine
    /// ([`Observer::clips`]).
    pub fn new() -> Self {
        Self {
            clips: 1,
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

impl Default for ProgressLog {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer for ProgressLog {
    fn clips(&mut self, count: usize) {
        self.clips = count.max(1);
    }

    fn stage(&mut self, clip: usize, stage: Stage) {
        self.status = format!("clip {}/{}: {}", clip + 1, self.clips, stage.label());
        tracing::info!("background {}", self.status);
    }

    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.status = format!(
            "clip {}/{}: denoising step {done}/{total}",
            clip + 1,
            self.clips
        );
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed().as_secs_f32() >= PROGRESS_LOG_EVERY_S);
        if due || done == total {
            self.last_log = Some(std::time::Instant::now());
            tracing::info!(
                elapsed_s = format!("{:.1}", self.started.elapsed().as_secs_f32()),
                "background {}",
                self.status
            );
        }
    }
}
