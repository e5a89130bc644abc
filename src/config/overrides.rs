//! What a command's flags or a job file ask differently from the config.
//! Every such request is an [`Overrides`], and the config's settings
//! methods ([`super::Config::render_settings`] and the per-stage ones)
//! are the one place it is applied: the code that does the work sees
//! resolved settings, never flags.

use std::path::PathBuf;

use crate::background::EngineChoice;
use crate::background::audioldm2::SchedulerKind;
use crate::describe::{Method, VocabularyChoice};

/// Requests on top of the config; `None` (or `false`) keeps the config's.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Overrides {
    /// A voice model by its path (`vivid speak --voice`).
    pub voice: Option<PathBuf>,
    /// A voice in the models folder's `voices/`, by file name (a job
    /// file's `voice`).
    pub voice_name: Option<String>,
    /// Speaking rate: 1.0 as trained.
    pub rate: Option<f32>,
    /// Speaker of a multi-speaker voice.
    pub speaker: Option<i64>,
    /// Seed of the voice's noise.
    pub speech_seed: Option<u64>,

    pub method: Option<Method>,
    /// The caption of method `fixed`.
    pub caption: Option<String>,
    /// The describer's language model.
    pub describer_model: Option<PathBuf>,
    /// The describer's sentence-embedding model.
    pub embedder_model: Option<PathBuf>,
    pub vocabulary: Option<VocabularyChoice>,
    /// Seed of the description.
    pub describe_seed: Option<u32>,
    /// The soundscape's sources, by id or phrase, instead of the
    /// describer's choice.
    pub sounds: Option<Vec<String>>,
    /// The soundscape's place, by id or phrase.
    pub place: Option<String>,

    pub engine: Option<EngineChoice>,
    /// An AudioLDM2 bundle folder; without `engine`, a request for
    /// AudioLDM2.
    pub bundle: Option<PathBuf>,
    /// Seed of the background.
    pub background_seed: Option<u64>,
    /// Neither use nor fill the background cache.
    pub no_cache: bool,
    /// AudioLDM2: what it should not sound like.
    pub negative: Option<String>,
    /// AudioLDM2: denoising steps.
    pub steps: Option<usize>,
    pub scheduler: Option<SchedulerKind>,
    /// AudioLDM2: classifier-free guidance scale.
    pub guidance: Option<f32>,
    /// AudioLDM2: load each part of the model only while it runs.
    pub low_memory: bool,
    /// Folders of the sound library, instead of the config's.
    pub library_dirs: Option<Vec<PathBuf>>,

    /// The sound device (ALSA name).
    pub device: Option<String>,
    /// Playback volume, 0 to 1.
    pub volume: Option<f32>,
}
