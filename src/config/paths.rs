//! Where the config comes from and how its paths are resolved.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{
    CONFIG_ENV, Config, ConfigError, ConfigFile, DEFAULT_BACKGROUND_BUNDLE, DEFAULT_DESCRIBER_FILE,
    DEFAULT_EMBEDDER_FILE, DEFAULT_VOICE_FILE, SYSTEM_CONFIG, read_config_file,
};

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
    pub(crate) fn resolve(
        source: ConfigSource,
        file: ConfigFile,
        defaults: &DefaultDirs,
    ) -> Config {
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
        let origin = source
            .path()
            .map_or_else(|| PathBuf::from("(defaults)"), Path::to_path_buf);
        let triggers = super::triggers::resolve(&file, &origin);
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
        let embedder_model = pick(
            file.describe.embedder.clone(),
            models_dir.join(DEFAULT_EMBEDDER_FILE),
        );
        let background_bundle = pick(
            file.background.audioldm2.bundle.clone(),
            models_dir.join(DEFAULT_BACKGROUND_BUNDLE),
        );
        let background_cache_dir = pick(
            file.background.cache_dir.clone(),
            defaults.data.join("cache/background"),
        );
        let library_dirs = file
            .background
            .library
            .dirs
            .iter()
            .map(|d| pick(Some(d.clone()), PathBuf::new()))
            .collect();
        let mut service = file.service.clone();
        service.metrics_file = service.metrics_file.map(|p| base.join(p));
        let control_socket = pick(
            file.control.socket.clone(),
            PathBuf::from(super::DEFAULT_CONTROL_SOCKET),
        );

        Config {
            background_bundle,
            background_cache_dir,
            library_dirs,
            background: file.background,
            mix: file.mix,
            voice,
            speech: file.speech,
            describer_model,
            embedder_model,
            describe: file.describe,
            source,
            models_dir,
            spool_dir,
            output_dir,
            playback: file.playback,
            service,
            control: file.control,
            control_socket,
            trigger_sections: file.triggers,
            triggers,
            system: file.system,
            log: file.log,
        }
    }
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
    pub(crate) fn from_env() -> Self {
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
