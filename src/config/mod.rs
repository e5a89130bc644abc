//! The configuration file: where it is found, what it may say, and the
//! resolved settings every command works from.
//!
//! One TOML file, looked for at `--config`, then `$VIVID_CONFIG`, then
//! `/etc/vivid/vivid.toml`; without any of them the built-in defaults apply.
//! Unknown keys and bad values are errors that name the file, the key, the
//! line and what is allowed: a typo in a kiosk's config should stop the
//! technician at install time, not be silently ignored for years.

use std::path::{Path, PathBuf};

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
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
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

mod controls;
mod overrides;
mod paths;
mod schema;
mod settings;
#[cfg(test)]
mod tests;
mod triggers;
mod validate;

pub use controls::{
    Action, COMMANDS, Edge, Interrupt, TriggerInput, TriggerSpec, chip_path, device_path,
};
pub use overrides::Overrides;
pub use paths::{ConfigSource, DefaultDirs};
pub use schema::*;
use validate::{line_of, validate};

/// Settings with every default filled in and every path absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: ConfigSource,
    pub models_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub output_dir: PathBuf,
    /// The voice model to speak with.
    pub voice: PathBuf,
    pub speech: SpeechSection,
    /// The describer's language model.
    pub describer_model: PathBuf,
    /// The describer's sentence-embedding model.
    pub embedder_model: PathBuf,
    pub describe: DescribeSection,
    /// The AudioLDM2 bundle folder.
    pub(crate) background_bundle: PathBuf,
    /// The background cache folder.
    pub(crate) background_cache_dir: PathBuf,
    /// `[background.library] dirs`, resolved.
    pub library_dirs: Vec<PathBuf>,
    pub background: BackgroundSection,
    pub mix: MixSection,
    pub playback: PlaybackSection,
    pub service: ServiceSection,
    pub control: ControlSection,
    /// The control socket's path (control.socket or the default).
    pub control_socket: PathBuf,
    /// `[[trigger]]` tables as written, and as the service runs them.
    pub(crate) trigger_sections: Vec<TriggerSection>,
    pub triggers: Vec<TriggerSpec>,
    pub system: SystemSection,
    pub log: LogSection,
}

impl Config {
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
                embedder: Some(self.embedder_model.clone()),
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
            control: ControlSection {
                socket: Some(self.control_socket.clone()),
                ..self.control.clone()
            },
            triggers: self.trigger_sections.clone(),
            system: self.system.clone(),
            log: self.log.clone(),
            trigger_lines: Vec::new(),
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
pub(crate) fn parse_config(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
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
    let mut file: ConfigFile = file;
    validate(path, text, &file)?;
    triggers::validate(path, text, &file)?;
    file.trigger_lines = (0..file.triggers.len())
        .map(|index| triggers::trigger_line(text, index, None))
        .collect();
    Ok(file)
}
