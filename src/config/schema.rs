//! The schema: every section and key of the config file, with its default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    pub control: ControlSection,
    /// `[[trigger]]` tables: buttons and sensors.
    #[serde(rename = "trigger", skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerSection>,
    pub system: SystemSection,
    pub log: LogSection,
    /// The line of each `[[trigger]]` header, for errors found later (a
    /// GPIO line beyond its chip).
    #[serde(skip)]
    pub(crate) trigger_lines: Vec<Option<usize>>,
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
pub(crate) const DEFAULT_VOICE_FILE: &str = "voices/en_US-joe-medium.onnx";

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
    /// Seed of the voice's sampling noise: the same text, seed and voice
    /// give the same narration, sample for sample.
    pub seed: u64,
}

impl Default for SpeechSection {
    fn default() -> Self {
        Self {
            voice: None,
            rate: 1.0,
            speaker: 0,
            sentence_silence: 0.2,
            seed: 0,
        }
    }
}

/// The default describer model, below the models folder.
pub const DEFAULT_DESCRIBER_FILE: &str = "llm/gemma-3-270m-q4_k_m.gguf";
/// The default sentence-embedding model, below the models folder; its
/// tokenizer is beside it (`.tokenizer.json` for `.safetensors`).
pub const DEFAULT_EMBEDDER_FILE: &str = "embed/all-MiniLM-L6-v2.safetensors";
/// The AudioLDM2 bundle, relative to the models folder. No default bundle
/// is fetched: real AudioLDM2 weights are made into one with
/// quantize/export.py.
pub(crate) const DEFAULT_BACKGROUND_BUNDLE: &str = "audioldm2";

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

pub use crate::describe::VocabularyChoice;

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
    /// all-MiniLM-L6-v2 safetensors of the semantic evidence (its
    /// tokenizer beside it as NAME.tokenizer.json); default: the one in
    /// the models folder. Without it the describer weighs words, setting
    /// and the language model only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<PathBuf>,
    pub prompt: PromptChoice,
    /// catalog: the model chooses among the soundscape's places and
    /// sources; free: it writes sound phrases; auto (the default): catalog
    /// with the soundscape, free with AudioLDM2.
    pub vocabulary: VocabularyChoice,
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
            embedder: None,
            prompt: PromptChoice::Auto,
            vocabulary: VocabularyChoice::Auto,
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
    pub(crate) cache_max_mb: u64,
    /// The AudioLDM2 engine's own settings.
    pub audioldm2: Audioldm2Section,
    /// The soundscape's library of the user's own recordings.
    pub library: LibrarySection,
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
            library: LibrarySection::default(),
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
    pub(super) fn moved_keys(&self) -> Vec<&'static str> {
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

/// `[background.library]`: folders of recordings that play in place of
/// the soundscape's recipes, or as new sources (each with a
/// `library.toml`; see the README's "Sound library").
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LibrarySection {
    /// The folders, relative to the config file's folder unless absolute.
    pub dirs: Vec<PathBuf>,
    /// Most decoded audio the library holds in memory, in MiB (a minute
    /// of 48 kHz stereo is 22 MiB).
    pub(crate) max_mb: u64,
}

impl Default for LibrarySection {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            max_mb: 256,
        }
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
    pub(crate) output_rate: u32,
    /// 2: stereo, the speech in the centre; 1: mono.
    pub channels: u16,
    /// Background before the first word, in seconds.
    pub pre_roll_s: f64,
    /// Background after the last word, in seconds.
    pub tail_s: f64,
    /// Crossfade between the backgrounds of two scenes, in seconds.
    pub(crate) scene_crossfade_s: f64,
    pub ducking: crate::mix::Ducking,
    /// Speech loudness above the background's while speech plays, in LU.
    pub speech_over_background_lu: f64,
    /// How far the background rises in pauses (sidechain), in dB.
    pub(crate) pause_rise_db: f64,
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSection {
    /// Largest input (text or job file) the service takes, in bytes.
    pub(crate) max_input_bytes: u64,
    /// Kiosk mode: play the finished narrations in a loop while no new
    /// text is waiting. 0 turns it off; otherwise the seconds from the
    /// start of one round to the start of the next (a round plays every
    /// WAV in done/, oldest first; 1 plays them back to back).
    pub kiosk_interval_s: u64,
    /// A job still running after this many seconds is failed at its next
    /// step (0: no bound; systemd's watchdog still restarts a stuck one).
    pub job_timeout_s: u64,
    /// Prometheus metrics written here (node_exporter's textfile
    /// collector, e.g. /var/lib/prometheus/node-exporter/vivid.prom) after
    /// each job and every minute; unset: no metrics.
    pub metrics_file: Option<PathBuf>,
}

impl Default for ServiceSection {
    fn default() -> Self {
        Self {
            max_input_bytes: crate::text::DEFAULT_MAX_TEXT_BYTES,
            kiosk_interval_s: 0,
            job_timeout_s: 3600,
            metrics_file: None,
        }
    }
}

/// The control socket (`vivid control`) and how play requests interrupt.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ControlSection {
    /// The socket's path. Default: control.sock in the unit's runtime
    /// folder, /run/vivid (systemd makes it, for the vivid group only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// A play request (socket or trigger) while a narration plays:
    /// "fade" fades it out and plays the new one, "queue" plays the new
    /// one after it.
    pub interrupt: super::Interrupt,
    /// The fade-out of an interrupted or stopped narration, in seconds
    /// (0.05 to 5).
    pub fade_s: f32,
}

impl Default for ControlSection {
    fn default() -> Self {
        Self {
            socket: None,
            interrupt: super::Interrupt::Fade,
            fade_s: 0.5,
        }
    }
}

/// The default control socket (the unit's `RuntimeDirectory=vivid`).
pub(crate) const DEFAULT_CONTROL_SOCKET: &str = "/run/vivid/control.sock";

/// One `[[trigger]]`: an input device's key, or a GPIO line, and what it
/// does.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TriggerSection {
    /// Its name in the log and the status (default: trigger N).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input device: a name in /dev/input/by-id, or a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its key or button, as Linux names it (KEY_ENTER, KEY_1, BTN_0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// GPIO chip: gpiochip0, or a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chip: Option<String>,
    /// The line's offset on the chip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// GPIO: which change acts: rising (becomes active), falling, both.
    pub(crate) edge: super::Edge,
    /// GPIO: the line is active when low (a button to ground).
    pub(crate) active_low: bool,
    /// GPIO: a level counts once held this long (0 to 1000 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) debounce_ms: Option<u64>,
    /// Activations closer together than this act once (0 to 86400 s;
    /// default 1; a presence sensor wants about a narration's length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) min_interval_s: Option<f32>,
    /// Play this narration (its name in done/).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play: Option<String>,
    /// Or: next, previous, stop, pause, resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// A trigger's default debounce, for GPIO lines.
pub(crate) const DEFAULT_DEBOUNCE_MS: u64 = 20;
/// A trigger's default hold-off.
pub(crate) const DEFAULT_MIN_INTERVAL_S: f32 = 1.0;

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
