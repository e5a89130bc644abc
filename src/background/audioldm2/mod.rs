//! AudioLDM2 on tract: from a caption to a background waveform, for
//! devices where a bundle of real weights is installed.
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
//!   audible loop.
//!
//! [`Audioldm2`] puts it behind the background engines' seam.
//! `quantize/runner.py` is the executable spec of the engine; the
//! integration tests check every intermediate against diffusers' own run.

pub mod bundle;
pub mod conditioning;
pub mod engine;
pub mod graph;
pub mod long;
pub mod noise;
pub mod scheduler;
pub mod tokens;

use std::path::PathBuf;

use serde::Serialize;

pub(crate) use super::{
    BackgroundEngine, BackgroundError, EngineKind, EngineRecord, LengthLimits, Observer, Record,
    SceneRequest, Stage, Unobserved,
};
pub use engine::{Engine, MemoryMode, Request, SchedulerKind};

/// The fix for a bundle whose files are damaged or do not fit together.
pub(crate) const REMAKE_BUNDLE: &str = "make the bundle again with quantize/export.py";

/// The command that makes a bundle from real AudioLDM2 weights.
pub const MAKE_BUNDLE: &str = "make one from real weights with `python quantize/export.py \
     cvssp/audioldm2 BUNDLE_DIR --seconds 10.24` (see quantize/README.md), then set \
     background.audioldm2.bundle = \"BUNDLE_DIR\" (or pass --bundle BUNDLE_DIR)";

/// The AudioLDM2 settings (`[background.audioldm2]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Audioldm2Settings {
    pub bundle: PathBuf,
    pub negative: String,
    pub steps: usize,
    pub scheduler: SchedulerKind,
    pub guidance: f32,
    /// Clips (different seeds) a background longer than one clip is made
    /// from.
    pub variations: usize,
    pub memory: MemoryMode,
    pub device: graph::ComputeDevice,
}

/// One scene's AudioLDM2 generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipRecipe {
    #[serde(flatten)]
    pub request: Request,
    pub variations: usize,
}

/// The AudioLDM2 engine behind the seam.
pub struct Audioldm2 {
    engine: Engine,
    settings: Audioldm2Settings,
    limits: LengthLimits,
    /// Initial latents for the first clip (`vivid background
    /// --init-latents`, parity checks).
    init_latents: Option<Vec<f32>>,
}

impl Audioldm2 {
    /// Opens the bundle (its graphs load on first use or on preload).
    pub fn open(
        settings: &Audioldm2Settings,
        limits: LengthLimits,
    ) -> Result<Audioldm2, BackgroundError> {
        let mut engine = Engine::open(&settings.bundle, settings.memory)?;
        engine.set_device(settings.device)?;
        Ok(Audioldm2 {
            engine,
            settings: settings.clone(),
            limits,
            init_latents: None,
        })
    }

    pub fn is_random_weights(&self) -> bool {
        self.engine.is_random_weights()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts the next generation from these latents instead of seeded
    /// noise (read with [`noise::read_latents`] against
    /// [`Engine::latent_shape`]).
    pub fn set_init_latents(&mut self, latents: Option<Vec<f32>>) {
        self.init_latents = latents;
    }
}

impl BackgroundEngine for Audioldm2 {
    type Recipe = ClipRecipe;
    const KIND: EngineKind = EngineKind::Audioldm2;

    fn id(&self) -> &str {
        self.engine.id()
    }

    fn sample_rate(&self) -> u32 {
        self.engine.sample_rate()
    }

    fn channels(&self) -> u16 {
        1
    }

    fn prepare(&self, request: &SceneRequest) -> Result<ClipRecipe, BackgroundError> {
        let s = &self.settings;
        Ok(ClipRecipe {
            request: Request {
                caption: request.caption.clone(),
                negative: s.negative.clone(),
                steps: s.steps,
                scheduler: s.scheduler,
                guidance: s.guidance,
                seed: request.seed,
                init_latents: self.init_latents.clone(),
            },
            variations: s.variations,
        })
    }

    fn generate(
        &mut self,
        clip: &ClipRecipe,
        seconds: f64,
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError> {
        long::generate(
            &mut self.engine,
            &clip.request,
            seconds,
            clip.variations,
            self.limits,
            observer,
        )
    }

    fn preload(&mut self, observer: &mut dyn Observer) -> Result<(), BackgroundError> {
        self.engine.preload(observer)
    }

    /// A clip takes a minute of UNet work on a CPU: always worth keeping,
    /// but for runs from given initial latents (the key does not hold
    /// them).
    fn worth_caching(&self, clip: &ClipRecipe) -> bool {
        clip.request.init_latents.is_none()
    }

    fn record(&self, seed: u64) -> EngineRecord {
        let s = &self.settings;
        EngineRecord {
            engine: EngineKind::Audioldm2,
            id: self.engine.id().to_owned(),
            seed,
            details: serde_json::json!({
                "bundle": s.bundle,
                "bundle_id": self.engine.id(),
                "precision": self.engine.meta().precision,
                "steps": s.steps,
                "scheduler": s.scheduler.as_str(),
                "guidance": s.guidance,
                "negative": s.negative,
                "variations": s.variations,
                "random_weights": self.engine.is_random_weights(),
            }),
        }
    }
}
