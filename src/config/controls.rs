//! What buttons, sensors and the control socket may ask, as the config
//! names it: the actions, what a play request does to what plays, and the
//! `[[trigger]]` tables resolved. The service acts on them; the config
//! only reads and checks them, so these types live here, where both can
//! use them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a request, a button or a sensor asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "command", content = "name")]
pub enum Action {
    /// A narration in done/, by its output name.
    Play(String),
    Next,
    Previous,
    Stop,
    Pause,
    Resume,
    Status,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Play(name) => write!(f, "play {name}"),
            Action::Next => f.write_str("next"),
            Action::Previous => f.write_str("previous"),
            Action::Stop => f.write_str("stop"),
            Action::Pause => f.write_str("pause"),
            Action::Resume => f.write_str("resume"),
            Action::Status => f.write_str("status"),
        }
    }
}

/// The words a request line may start with.
pub const COMMANDS: &str = "play NAME, next, previous, stop, pause, resume, status";

impl std::str::FromStr for Action {
    type Err = String;

    /// A request line: plain words or one JSON object.
    fn from_str(line: &str) -> Result<Action, String> {
        let line = line.trim();
        if line.starts_with('{') {
            return serde_json::from_str(line)
                .map_err(|e| format!("not a request ({e}); send {{\"command\": \"play\", \"name\": \"hall\"}} or one of: {COMMANDS}"));
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let action = match word.to_ascii_lowercase().as_str() {
            "play" if !rest.is_empty() => return Ok(Action::Play(rest.to_owned())),
            "play" => return Err("play needs the narration's name: play NAME".to_owned()),
            "next" => Action::Next,
            "previous" | "prev" => Action::Previous,
            "stop" => Action::Stop,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "status" => Action::Status,
            "" => return Err(format!("an empty request; send one of: {COMMANDS}")),
            other => {
                return Err(format!(
                    "unknown request `{other}`; send one of: {COMMANDS}"
                ));
            }
        };
        if rest.is_empty() {
            Ok(action)
        } else {
            Err(format!("`{word}` takes nothing after it (got `{rest}`)"))
        }
    }
}

/// What a new play request does to the narration that plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interrupt {
    /// Fade it out and play the new one.
    #[default]
    Fade,
    /// Let it finish; the new one plays after it.
    Queue,
}

/// Which changes of a line's (logical) level act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    /// The line becomes active (a button pressed, a sensor sees someone).
    #[default]
    Rising,
    /// The line becomes inactive (a handset lifted off its hook switch).
    Falling,
    Both,
}

/// One `[[trigger]]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    /// Its name in logs and the status (`name`, else `trigger N`).
    pub name: String,
    pub input: TriggerInput,
    pub action: Action,
    /// Activations closer together than this act once.
    pub min_interval: Duration,
    /// The config file and line of its `[[trigger]]`, for errors.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerInput {
    /// An input device's key or button.
    Key {
        /// The device node: a path, or a name in /dev/input/by-id.
        device: PathBuf,
        /// The key's code and its name (`KEY_ENTER`, `BTN_0`).
        code: u16,
        key: String,
    },
    /// A GPIO line.
    Gpio {
        /// The chip's device node (/dev/gpiochip0).
        chip: PathBuf,
        line: u32,
        edge: Edge,
        active_low: bool,
        debounce: Duration,
    },
}

impl TriggerInput {
    /// What it listens to, for logs and the status.
    pub fn describe(&self) -> String {
        match self {
            TriggerInput::Key { device, key, .. } => format!("{key} on {}", device.display()),
            TriggerInput::Gpio { chip, line, .. } => format!("line {line} of {}", chip.display()),
        }
    }
}

/// Where an input device named in the config lives: a path as it is, a
/// plain name in /dev/input/by-id (stable across reboots and ports).
pub fn device_path(name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from("/dev/input/by-id").join(name)
    }
}

/// Where a GPIO chip named in the config lives: `gpiochip0` is
/// /dev/gpiochip0.
pub fn chip_path(name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from("/dev").join(name)
    }
}
