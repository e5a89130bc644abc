//! The configuration file: where it is found, what it may say, and the
//! resolved settings every command works from.
//!
//! One TOML file, looked for at `--config`, then `$VIVID_CONFIG`, then
//! `/etc/vivid/vivid.toml`; without any of them the built-in defaults apply.
//! Unknown keys and bad values are errors that name the file, the key, the
//! line and what is allowed: a typo in a kiosk's config should stop the
//! technician at install time, not be silently ignored for years.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The system-wide config file the service uses.
pub const SYSTEM_CONFIG: &str = "/etc/vivid/vivid.toml";
/// Environment variable naming a config file.
pub const CONFIG_ENV: &str = "VIVID_CONFIG";

/// Largest config file accepted; a config is a few KB, anything bigger is a
/// wrong path (a model file, a log) and reading it whole would be foolish.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "config file {path} is {size} bytes; a vivid config is a small text file (check the path)"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("config file {path} is not valid UTF-8 text (byte {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}", invalid_message(.path, .line, .key, .reason))]
    Invalid {
        path: PathBuf,
        /// 1-based line, where the parser can tell.
        line: Option<usize>,
        /// Dotted key path, e.g. `playback.device`, where known.
        key: Option<String>,
        reason: String,
    },
}

fn invalid_message(
    path: &Path,
    line: &Option<usize>,
    key: &Option<String>,
    reason: &str,
) -> String {
    let mut msg = format!("invalid config {}", path.display());
    if let Some(line) = line {
        msg.push_str(&format!(", line {line}"));
    }
    if let Some(key) = key {
        msg.push_str(&format!(", key `{key}`"));
    }
    msg.push_str(": ");
    msg.push_str(reason);
    msg
}

/// The file as written: every key optional, unknown keys rejected.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub paths: PathsSection,
    pub speech: SpeechSection,
    pub describe: DescribeSection,
    pub background: BackgroundSection,
    pub mix: MixSection,
    pub playback: PlaybackSection,
    pub service: ServiceSection,
    pub system: SystemSection,
    pub log: LogSection,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PathsSection {
    /// Where `vivid models fetch` installs models and every stage loads them.
    pub models_dir: Option<PathBuf>,
    /// Root of the job folders: inbox/, processing/, done/, failed/.
    pub spool_dir: Option<PathBuf>,
    /// Where `vivid render` writes when no output is named.
    pub output_dir: Option<PathBuf>,
}

/// The default voice, below the models folder (see models/models.toml).
pub const DEFAULT_VOICE_FILE: &str = "voices/en_US-joe-medium.onnx";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechSection {
    /// Piper voice model (`.onnx`, with its `.onnx.json` beside it).
    /// Default: the default voice in the models folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<PathBuf>,
    /// Speaking rate: 1.0 as trained, 1.2 is 20% faster (0.25 to 4).
    pub rate: f32,
    /// Speaker of a multi-speaker voice.
    pub speaker: i64,
    /// Silence between sentences, in seconds (0 to 5).
    pub sentence_silence: f32,
}

impl Default for SpeechSection {
    fn default() -> Self {
        Self {
            voice: None,
            rate: 1.0,
            speaker: 0,
            sentence_silence: 0.2,
        }
    }
}

/// The default describer model, below the models folder.
pub const DEFAULT_DESCRIBER_FILE: &str = "llm/gemma-3-270m-q4_k_m.gguf";
/// The AudioLDM2 bundle, relative to the models folder. No default bundle
/// is fetched: real AudioLDM2 weights are made into one with
/// quantize/export.py.
pub const DEFAULT_BACKGROUND_BUNDLE: &str = "audioldm2";

/// How the prompt for the describer model is built.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PromptChoice {
    /// Chat template when the model has one, else few-shot completion.
    #[default]
    Auto,
    Chat,
    Completion,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DescribeSection {
    /// llm (language model, the default), text (the narration itself) or
    /// fixed (`caption` below).
    pub method: crate::describe::Method,
    /// GGUF language model; default: the default describer in the models
    /// folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    pub prompt: PromptChoice,
    /// The caption of method `fixed`.
    pub caption: String,
    /// Seed of the model's sampling: the same seed, text and model give the
    /// same caption.
    pub seed: u32,
    /// Sampling temperature (0 to 2); 0 always takes the likeliest word.
    pub temperature: f32,
    /// Seconds one caption may take before the scene falls back to `text`.
    pub timeout_s: f32,
    /// Scenes: paragraphs shorter than this many bytes join the next one...
    pub min_scene_chars: usize,
    /// ...and longer ones are cut at sentence ends.
    pub max_scene_chars: usize,
}

impl Default for DescribeSection {
    fn default() -> Self {
        Self {
            method: crate::describe::Method::Llm,
            model: None,
            prompt: PromptChoice::Auto,
            caption: String::new(),
            seed: 42,
            temperature: 0.5,
            timeout_s: 30.0,
            min_scene_chars: 200,
            max_scene_chars: 1200,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackgroundSection {
    /// auto (AudioLDM2 when a bundle of real weights is installed, else
    /// the soundscape), soundscape or audioldm2.
    pub engine: crate::background::EngineChoice,
    /// Seed of the background (the soundscape's plan and events, or
    /// AudioLDM2's initial noise).
    pub seed: u64,
    /// Longest background accepted, in seconds.
    pub max_seconds: f64,
    /// Folder of finished backgrounds; default: `cache/background` in the
    /// data folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Size limit of that folder in MiB; 0 turns the cache off.
    pub cache_max_mb: u64,
    /// The AudioLDM2 engine's own settings.
    pub audioldm2: Audioldm2Section,
    // Keys that moved to [background.audioldm2]: rejected, saying where
    // they went (see `validate`).
    #[serde(skip_serializing)]
    pub bundle: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub steps: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub scheduler: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub guidance: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub negative: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub variations: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub low_memory: Option<toml::Value>,
    #[serde(skip_serializing)]
    pub device: Option<toml::Value>,
}

impl Default for BackgroundSection {
    fn default() -> Self {
        Self {
            engine: crate::background::EngineChoice::Auto,
            seed: 0,
            max_seconds: 1800.0,
            cache_dir: None,
            cache_max_mb: 1024,
            audioldm2: Audioldm2Section::default(),
            bundle: None,
            steps: None,
            scheduler: None,
            guidance: None,
            negative: None,
            variations: None,
            low_memory: None,
            device: None,
        }
    }
}

impl BackgroundSection {
    /// The keys that moved under [background.audioldm2] and are set here.
    fn moved_keys(&self) -> Vec<&'static str> {
        [
            ("bundle", self.bundle.is_some()),
            ("steps", self.steps.is_some()),
            ("scheduler", self.scheduler.is_some()),
            ("guidance", self.guidance.is_some()),
            ("negative", self.negative.is_some()),
            ("variations", self.variations.is_some()),
            ("low_memory", self.low_memory.is_some()),
            ("device", self.device.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .collect()
    }
}

/// `[background.audioldm2]`: the AudioLDM2 engine.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Audioldm2Section {
    /// AudioLDM2 bundle folder (made by quantize/export.py); default:
    /// `audioldm2` in the models folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    /// Denoising steps.
    pub steps: usize,
    pub scheduler: crate::background::audioldm2::SchedulerKind,
    /// Classifier-free guidance scale (used above 1).
    pub guidance: f32,
    /// What the background should not sound like.
    pub negative: String,
    /// Clips (different seeds) a background longer than one clip is made
    /// from.
    pub variations: usize,
    /// Load each group of graphs only while its stage runs.
    pub low_memory: bool,
    /// Where the graphs run: cpu, or cuda (a build with the
    /// `cuda-background` feature).
    pub device: crate::background::audioldm2::graph::ComputeDevice,
}

impl Default for Audioldm2Section {
    fn default() -> Self {
        Self {
            bundle: None,
            steps: 25,
            scheduler: crate::background::audioldm2::SchedulerKind::Dpm,
            guidance: 3.5,
            negative: "Low quality.".to_owned(),
            variations: 2,
            low_memory: false,
            device: crate::background::audioldm2::graph::ComputeDevice::Cpu,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MixSection {
    /// Sample rate of the rendered WAV.
    pub output_rate: u32,
    /// 2: stereo, the speech in the centre; 1: mono.
    pub channels: u16,
    /// Background before the first word, in seconds.
    pub pre_roll_s: f64,
    /// Background after the last word, in seconds.
    pub tail_s: f64,
    /// Crossfade between the backgrounds of two scenes, in seconds.
    pub scene_crossfade_s: f64,
    pub ducking: crate::mix::Ducking,
    /// Speech loudness above the background's while speech plays, in LU.
    pub speech_over_background_lu: f64,
    /// How far the background rises in pauses (sidechain), in dB.
    pub pause_rise_db: f64,
    /// Integrated loudness of the finished narration, in LUFS.
    pub target_lufs: f64,
    /// Highest true peak, in dBTP.
    pub true_peak_dbtp: f64,
}

impl Default for MixSection {
    /// The mixer's own defaults.
    fn default() -> Self {
        let m = crate::mix::MixSettings::default();
        Self {
            output_rate: m.output_rate,
            channels: m.channels,
            pre_roll_s: m.pre_roll_s,
            tail_s: m.tail_s,
            scene_crossfade_s: m.scene_crossfade_s,
            ducking: m.ducking.mode,
            speech_over_background_lu: m.ducking.speech_over_background_lu,
            pause_rise_db: m.ducking.pause_rise_db,
            target_lufs: m.target_lufs,
            true_peak_dbtp: m.true_peak_dbtp,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackSection {
    /// Play rendered narrations through ALSA at all.
    pub enabled: bool,
    /// ALSA PCM name, as `aplay -L` lists it.
    pub device: String,
    /// Output volume, 0 to 1 (linear gain on the rendered file).
    pub volume: f32,
    /// Seconds to keep trying to reopen a sound device that disappeared.
    pub reopen_s: u64,
}

impl Default for PlaybackSection {
    fn default() -> Self {
        Self {
            enabled: true,
            device: "default".to_owned(),
            volume: 1.0,
            reopen_s: 30,
        }
    }
}

impl PlaybackSection {
    pub fn settings(&self) -> crate::output::play::PlaybackSettings {
        crate::output::play::PlaybackSettings {
            device: self.device.clone(),
            volume: self.volume,
            reopen_for: std::time::Duration::from_secs(self.reopen_s),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSection {
    /// Largest input (text or job file) the service takes, in bytes.
    pub max_input_bytes: u64,
    /// Kiosk mode: play the finished narrations in a loop while no new
    /// text is waiting. 0 turns it off; otherwise the seconds from the
    /// start of one round to the start of the next (a round plays every
    /// WAV in done/, oldest first; 1 plays them back to back).
    pub kiosk_interval_s: u64,
    /// A job still running after this many seconds is failed at its next
    /// step (0: no bound; systemd's watchdog still restarts a stuck one).
    pub job_timeout_s: u64,
}

impl Default for ServiceSection {
    fn default() -> Self {
        Self {
            max_input_bytes: crate::text::DEFAULT_MAX_TEXT_BYTES,
            kiosk_interval_s: 0,
            job_timeout_s: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SystemSection {
    /// Free space (MiB) below which `vivid doctor` fails for the model,
    /// spool and output file systems.
    pub min_free_disk_mb: u64,
    /// Threads for the neural network kernels; 0 uses every core.
    pub threads: usize,
}

impl Default for SystemSection {
    fn default() -> Self {
        Self {
            min_free_disk_mb: 512,
            threads: 0,
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Log level when neither -v/-q nor `VIVID_LOG` say otherwise.
    pub level: LogLevel,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    const ORDER: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// This level moved `steps` towards more (positive) or less (negative)
    /// output, saturating at the ends.
    pub fn shifted(self, steps: i32) -> LogLevel {
        let index = Self::ORDER.iter().position(|l| *l == self).unwrap_or(2) as i32;
        let shifted = (index + steps).clamp(0, Self::ORDER.len() as i32 - 1);
        Self::ORDER[shifted as usize]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Where the settings came from; printed by `vivid doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`
    Flag(PathBuf),
    /// `$VIVID_CONFIG`
    Env(PathBuf),
    /// `/etc/vivid/vivid.toml`
    System(PathBuf),
    /// No file: built-in defaults.
    Defaults,
}

impl ConfigSource {
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::System(p) => Some(p),
            ConfigSource::Defaults => None,
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Flag(p) => write!(f, "{} (from --config)", p.display()),
            ConfigSource::Env(p) => write!(f, "{} (from ${CONFIG_ENV})", p.display()),
            ConfigSource::System(p) => write!(f, "{}", p.display()),
            ConfigSource::Defaults => write!(f, "built-in defaults (no config file found)"),
        }
    }
}

/// The job folders below the spool directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolDirs {
    pub inbox: PathBuf,
    pub processing: PathBuf,
    pub done: PathBuf,
    pub failed: PathBuf,
}

impl SpoolDirs {
    pub fn under(root: &Path) -> Self {
        Self {
            inbox: root.join("inbox"),
            processing: root.join("processing"),
            done: root.join("done"),
            failed: root.join("failed"),
        }
    }

    pub fn all(&self) -> [(&'static str, &Path); 4] {
        [
            ("inbox", &self.inbox),
            ("processing", &self.processing),
            ("done", &self.done),
            ("failed", &self.failed),
        ]
    }
}

/// Settings with every default filled in and every path absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: ConfigSource,
    pub models_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub spool: SpoolDirs,
    pub output_dir: PathBuf,
    /// The voice model to speak with.
    pub voice: PathBuf,
    pub speech: SpeechSection,
    /// The describer's language model.
    pub describer_model: PathBuf,
    pub describe: DescribeSection,
    /// The AudioLDM2 bundle folder.
    pub background_bundle: PathBuf,
    /// The background cache folder.
    pub background_cache_dir: PathBuf,
    pub background: BackgroundSection,
    pub mix: MixSection,
    pub playback: PlaybackSection,
    pub service: ServiceSection,
    pub system: SystemSection,
    pub log: LogSection,
}

impl Config {
    /// Finds and loads the config: `flag`, then `$VIVID_CONFIG`, then the
    /// system file, else defaults. A file named by the flag or the
    /// environment must exist; the system file is optional.
    pub fn discover(flag: Option<&Path>) -> Result<Config, ConfigError> {
        let env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty());
        let source = if let Some(path) = flag {
            ConfigSource::Flag(path.to_path_buf())
        } else if let Some(path) = env {
            ConfigSource::Env(PathBuf::from(path))
        } else if Path::new(SYSTEM_CONFIG).exists() {
            ConfigSource::System(PathBuf::from(SYSTEM_CONFIG))
        } else {
            ConfigSource::Defaults
        };
        Self::load(source)
    }

    /// The describer's settings.
    pub fn describe_settings(&self) -> crate::describe::DescribeSettings {
        use crate::describe::{DescribeSettings, PromptStyle, SceneBounds};
        let d = &self.describe;
        DescribeSettings {
            method: d.method,
            model: self.describer_model.clone(),
            prompt: match d.prompt {
                PromptChoice::Auto => None,
                PromptChoice::Chat => Some(PromptStyle::Chat),
                PromptChoice::Completion => Some(PromptStyle::Completion),
            },
            caption: Some(d.caption.clone()).filter(|c| !c.trim().is_empty()),
            seed: d.seed,
            temperature: d.temperature,
            timeout: std::time::Duration::from_secs_f32(d.timeout_s),
            scenes: SceneBounds {
                min_chars: d.min_scene_chars,
                max_chars: d.max_scene_chars,
            },
            threads: if self.system.threads == 0 {
                crate::compute::available_cores()
            } else {
                self.system.threads
            },
        }
    }

    /// The background engines' settings.
    pub fn background_settings(&self) -> crate::background::BackgroundSettings {
        use crate::background::audioldm2::{Audioldm2Settings, MemoryMode};
        let b = &self.background;
        let a = &b.audioldm2;
        crate::background::BackgroundSettings {
            engine: b.engine,
            seed: b.seed,
            limits: crate::background::LengthLimits {
                max_seconds: b.max_seconds,
            },
            cache_dir: self.background_cache_dir.clone(),
            cache_max_bytes: b.cache_max_mb * 1024 * 1024,
            audioldm2: Audioldm2Settings {
                bundle: self.background_bundle.clone(),
                negative: a.negative.clone(),
                steps: a.steps,
                scheduler: a.scheduler,
                guidance: a.guidance,
                variations: a.variations,
                memory: if a.low_memory {
                    MemoryMode::Low
                } else {
                    MemoryMode::Resident
                },
                device: a.device,
            },
        }
    }

    /// Loads the config from `source`.
    pub fn load(source: ConfigSource) -> Result<Config, ConfigError> {
        let file = match source.path() {
            Some(path) => read_config_file(path)?,
            None => ConfigFile::default(),
        };
        Ok(Self::resolve(source, file, &DefaultDirs::from_env()))
    }

    /// Fills in defaults. Relative paths in a file are taken relative to the
    /// file's folder, so a config and its folders can move together.
    pub fn resolve(source: ConfigSource, file: ConfigFile, defaults: &DefaultDirs) -> Config {
        let base = source
            .path()
            .and_then(Path::parent)
            .map(absolute)
            .unwrap_or_else(|| absolute(Path::new(".")));
        let pick = |given: Option<PathBuf>, default: PathBuf| match given {
            Some(p) if p.is_absolute() => p,
            Some(p) => base.join(p),
            None => default,
        };
        let models_dir = pick(file.paths.models_dir, defaults.data.join("models"));
        let spool_dir = pick(file.paths.spool_dir, defaults.data.join("spool"));
        let output_dir = pick(file.paths.output_dir, defaults.data.join("output"));
        let voice = pick(
            file.speech.voice.clone(),
            models_dir.join(DEFAULT_VOICE_FILE),
        );
        let describer_model = pick(
            file.describe.model.clone(),
            models_dir.join(DEFAULT_DESCRIBER_FILE),
        );
        let background_bundle = pick(
            file.background.audioldm2.bundle.clone(),
            models_dir.join(DEFAULT_BACKGROUND_BUNDLE),
        );
        let background_cache_dir = pick(
            file.background.cache_dir.clone(),
            defaults.data.join("cache/background"),
        );
        Config {
            background_bundle,
            background_cache_dir,
            background: file.background,
            mix: file.mix,
            voice,
            speech: file.speech,
            describer_model,
            describe: file.describe,
            source,
            spool: SpoolDirs::under(&spool_dir),
            models_dir,
            spool_dir,
            output_dir,
            playback: file.playback,
            service: file.service,
            system: file.system,
            log: file.log,
        }
    }

    /// The resolved settings written back as a complete config file.
    pub fn to_toml(&self) -> String {
        let file = ConfigFile {
            paths: PathsSection {
                models_dir: Some(self.models_dir.clone()),
                spool_dir: Some(self.spool_dir.clone()),
                output_dir: Some(self.output_dir.clone()),
            },
            speech: SpeechSection {
                voice: Some(self.voice.clone()),
                ..self.speech.clone()
            },
            describe: DescribeSection {
                model: Some(self.describer_model.clone()),
                ..self.describe.clone()
            },
            background: BackgroundSection {
                cache_dir: Some(self.background_cache_dir.clone()),
                audioldm2: Audioldm2Section {
                    bundle: Some(self.background_bundle.clone()),
                    ..self.background.audioldm2.clone()
                },
                ..self.background.clone()
            },
            mix: self.mix.clone(),
            playback: self.playback.clone(),
            service: self.service.clone(),
            system: self.system.clone(),
            log: self.log.clone(),
        };
        // Serializing plain structs of strings, bools and integers cannot fail.
        toml::to_string(&file).unwrap_or_else(|e| format!("# cannot show config: {e}\n"))
    }
}

/// Reads and parses one config file.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let read_err = |cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    parse_config(path, &text)
}

/// Parses config text; `path` only names the file in errors.
pub fn parse_config(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let invalid = |line, key, reason| ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        reason,
    };
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
        invalid(
            e.span().map(|s| line_of(text, s.start)),
            None,
            e.message().to_owned(),
        )
    })?;
    let file = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        invalid(
            inner.span().map(|s| line_of(text, s.start)),
            (key != ".").then_some(key),
            inner.message().to_owned(),
        )
    })?;
    validate(path, text, &file)?;
    Ok(file)
}

/// Range checks serde cannot express; `text` is the file's text, to name
/// the line.
fn validate(path: &Path, text: &str, file: &ConfigFile) -> Result<(), ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: line_of_key(text, key),
        key: Some(key.to_owned()),
        reason,
    };
    let speech = &file.speech;
    if !(0.25..=4.0).contains(&speech.rate) {
        return Err(invalid(
            "speech.rate",
            format!("{} is outside the allowed 0.25 to 4", speech.rate),
        ));
    }
    if !(0.0..=5.0).contains(&speech.sentence_silence) {
        return Err(invalid(
            "speech.sentence_silence",
            format!(
                "{} s is outside the allowed 0 to 5 s",
                speech.sentence_silence
            ),
        ));
    }
    let describe = &file.describe;
    if !(0.0..=2.0).contains(&describe.temperature) {
        return Err(invalid(
            "describe.temperature",
            format!("{} is outside the allowed 0 to 2", describe.temperature),
        ));
    }
    if !(describe.timeout_s > 0.0 && describe.timeout_s <= 600.0) {
        return Err(invalid(
            "describe.timeout_s",
            format!(
                "{} s is outside the allowed range (more than 0, at most 600)",
                describe.timeout_s
            ),
        ));
    }
    if describe.method == crate::describe::Method::Fixed && describe.caption.trim().is_empty() {
        return Err(invalid(
            "describe.method",
            "method \"fixed\" needs describe.caption, the caption to use".to_owned(),
        ));
    }
    if describe.min_scene_chars > describe.max_scene_chars || describe.max_scene_chars < 100 {
        return Err(invalid(
            "describe.max_scene_chars",
            format!(
                "{} must be at least 100 and at least describe.min_scene_chars ({})",
                describe.max_scene_chars, describe.min_scene_chars
            ),
        ));
    }
    let background = &file.background;
    if let Some(key) = background.moved_keys().first() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of_key(text, &format!("background.{key}")),
            key: Some(format!("background.{key}")),
            reason: format!(
                "`{key}` is an AudioLDM2 setting and moved to its own table: write it under [background.audioldm2] (background.engine chooses the engine)"
            ),
        });
    }
    let audioldm2 = &background.audioldm2;
    if audioldm2.steps == 0 || audioldm2.steps > 999 {
        return Err(invalid(
            "background.audioldm2.steps",
            format!("{} is outside the allowed 1 to 999", audioldm2.steps),
        ));
    }
    if !(0.0..=50.0).contains(&audioldm2.guidance) {
        return Err(invalid(
            "background.audioldm2.guidance",
            format!("{} is outside the allowed 0 to 50", audioldm2.guidance),
        ));
    }
    if !(1..=8).contains(&audioldm2.variations) {
        return Err(invalid(
            "background.audioldm2.variations",
            format!("{} is outside the allowed 1 to 8", audioldm2.variations),
        ));
    }
    if !(background.max_seconds > 0.0 && background.max_seconds <= 86_400.0) {
        return Err(invalid(
            "background.max_seconds",
            format!(
                "{} s is outside the allowed range (more than 0, at most 86400)",
                background.max_seconds
            ),
        ));
    }
    if !(1..=2).contains(&file.mix.channels) {
        return Err(invalid(
            "mix.channels",
            format!(
                "{} is not allowed: 1 (mono) or 2 (stereo)",
                file.mix.channels
            ),
        ));
    }
    if !(0.0..=1.0).contains(&file.playback.volume) {
        return Err(invalid(
            "playback.volume",
            format!("{} is outside the allowed 0 to 1", file.playback.volume),
        ));
    }
    let mix = &file.mix;
    if !(8_000..=192_000).contains(&mix.output_rate) {
        return Err(invalid(
            "mix.output_rate",
            format!(
                "{} Hz is outside the allowed 8000 to 192000",
                mix.output_rate
            ),
        ));
    }
    for (key, value, low, high) in [
        ("mix.pre_roll_s", mix.pre_roll_s, 0.0, 30.0),
        ("mix.tail_s", mix.tail_s, 0.0, 30.0),
        ("mix.scene_crossfade_s", mix.scene_crossfade_s, 0.0, 10.0),
        (
            "mix.speech_over_background_lu",
            mix.speech_over_background_lu,
            0.0,
            40.0,
        ),
        ("mix.pause_rise_db", mix.pause_rise_db, 0.0, 20.0),
        ("mix.target_lufs", mix.target_lufs, -40.0, -5.0),
        ("mix.true_peak_dbtp", mix.true_peak_dbtp, -12.0, 0.0),
    ] {
        if !(low..=high).contains(&value) {
            return Err(invalid(
                key,
                format!("{value} is outside the allowed {low} to {high}"),
            ));
        }
    }
    if speech.speaker < 0 {
        return Err(invalid(
            "speech.speaker",
            format!(
                "{} is negative; speakers are numbered from 0",
                speech.speaker
            ),
        ));
    }
    Ok(())
}

/// The line that sets `section.key` (the section may itself be dotted,
/// `background.audioldm2.steps`) in a plain TOML file, if one does.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.rsplit_once('.')?;
    let mut in_section = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            in_section = header.trim_end_matches(']').trim() == section;
        } else if in_section && line.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            return Some(index + 1);
        }
    }
    None
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Base folders for the built-in defaults.
#[derive(Debug, Clone)]
pub struct DefaultDirs {
    /// `$XDG_DATA_HOME/vivid`, `~/.local/share/vivid`, or `/var/lib/vivid`
    /// for a process without a home.
    pub data: PathBuf,
}

impl DefaultDirs {
    pub fn from_env() -> Self {
        let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let data = if let Some(xdg) = non_empty("XDG_DATA_HOME") {
            PathBuf::from(xdg).join("vivid")
        } else if let Some(home) = non_empty("HOME") {
            PathBuf::from(home).join(".local/share/vivid")
        } else {
            PathBuf::from("/var/lib/vivid")
        };
        Self { data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        parse_config(Path::new("/etc/vivid/test.toml"), text)
    }

    #[test]
    fn empty_file_gives_defaults() {
        let file = parse("").expect("empty config is valid");
        assert_eq!(file, ConfigFile::default());
        assert!(file.playback.enabled);
        assert_eq!(file.playback.device, "default");
    }

    #[test]
    fn good_file_is_read() {
        let file = parse(
            "[paths]\nmodels_dir = \"/srv/models\"\n[playback]\ndevice = \"hw:1,0\"\nenabled = false\n[log]\nlevel = \"debug\"\n",
        )
        .expect("valid config");
        assert_eq!(
            file.paths.models_dir.as_deref(),
            Some(Path::new("/srv/models"))
        );
        assert_eq!(file.playback.device, "hw:1,0");
        assert!(!file.playback.enabled);
        assert_eq!(file.log.level, LogLevel::Debug);
    }

    #[test]
    fn unknown_key_names_file_key_line_and_choices() {
        let err = parse("[playback]\nenabled = true\ndevise = \"hw:0\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/vivid/test.toml"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("devise"), "{msg}");
        assert!(msg.contains("device"), "allowed keys listed: {msg}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let msg = parse("[playbak]\ndevice = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("playbak") && msg.contains("line 1"), "{msg}");
        assert!(msg.contains("playback"), "allowed sections listed: {msg}");
    }

    #[test]
    fn bad_value_names_key_and_what_is_allowed() {
        let msg = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
        assert!(msg.contains("key `log.level`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("info") && msg.contains("debug"), "{msg}");

        let msg = parse("[playback]\nenabled = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("playback.enabled") && msg.contains("line 2"),
            "{msg}"
        );

        let msg = parse("[system]\nmin_free_disk_mb = -5\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("system.min_free_disk_mb"), "{msg}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vivid.toml");
        std::fs::write(&path, "[speech]\nrate = 9.0\n").unwrap();
        let msg = Config::load(ConfigSource::Flag(path.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("speech.rate") && msg.contains("0.25 to 4"),
            "{msg}"
        );
        std::fs::write(&path, "[speech]\nsentence_silence = -1.0\n").unwrap();
        let msg = Config::load(ConfigSource::Flag(path))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("speech.sentence_silence"), "{msg}");
    }

    #[test]
    fn audioldm2_keys_moved_to_their_table_and_say_so() {
        let msg = parse("[background]\nseed = 3\nsteps = 30\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 3") && msg.contains("background.steps"),
            "{msg}"
        );
        assert!(msg.contains("[background.audioldm2]"), "{msg}");
        let file =
            parse("[background]\nengine = \"soundscape\"\n[background.audioldm2]\nsteps = 30\n")
                .unwrap();
        assert_eq!(file.background.audioldm2.steps, 30);
        assert_eq!(
            file.background.engine,
            crate::background::EngineChoice::Soundscape
        );
        let msg = parse("[background.audioldm2]\nsteps = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("background.audioldm2.steps") && msg.contains("line 2"),
            "{msg}"
        );
        let msg = parse("[background]\nengine = \"magic\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("soundscape") && msg.contains("audioldm2"),
            "{msg}"
        );
        let msg = parse("[mix]\nchannels = 6\n").unwrap_err().to_string();
        assert!(msg.contains("mix.channels"), "{msg}");
    }

    #[test]
    fn default_voice_is_in_the_manifest() {
        let manifest = crate::models::Manifest::builtin().unwrap();
        assert!(
            manifest
                .files()
                .any(|f| f.install_as == Path::new(DEFAULT_VOICE_FILE))
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let msg = parse("[paths]\nmodels_dir = /no/quotes\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let file = parse("[paths]\nmodels_dir = \"models\"\n").unwrap();
        let defaults = DefaultDirs {
            data: PathBuf::from("/data/vivid"),
        };
        let cfg = Config::resolve(
            ConfigSource::Flag(PathBuf::from("/opt/kiosk/vivid.toml")),
            file,
            &defaults,
        );
        assert_eq!(cfg.models_dir, Path::new("/opt/kiosk/models"));
        assert_eq!(cfg.spool.inbox, Path::new("/data/vivid/spool/inbox"));
        assert_eq!(cfg.output_dir, Path::new("/data/vivid/output"));
    }

    #[test]
    fn resolved_config_round_trips() {
        let defaults = DefaultDirs {
            data: PathBuf::from("/data/vivid"),
        };
        let cfg = Config::resolve(ConfigSource::Defaults, ConfigFile::default(), &defaults);
        let text = cfg.to_toml();
        let again = parse(&text).expect("resolved config parses");
        assert_eq!(
            again.paths.models_dir.as_deref(),
            Some(Path::new("/data/vivid/models"))
        );
    }

    #[test]
    fn log_level_shifts_saturate() {
        assert_eq!(LogLevel::Info.shifted(1), LogLevel::Debug);
        assert_eq!(LogLevel::Info.shifted(5), LogLevel::Trace);
        assert_eq!(LogLevel::Info.shifted(-1), LogLevel::Warn);
        assert_eq!(LogLevel::Info.shifted(-9), LogLevel::Error);
    }
}
