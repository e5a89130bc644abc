//! `[[trigger]]` tables: checked when the config is read (each error names
//! the trigger's line), and resolved into the service's trigger specs.

use std::path::Path;
use std::time::Duration;

use super::controls::{Action, TriggerInput, TriggerSpec, chip_path, device_path};
use super::schema::{DEFAULT_DEBOUNCE_MS, DEFAULT_MIN_INTERVAL_S, TriggerSection};
use super::{ConfigError, ConfigFile};

/// The 1-based line of the `index`th `[[trigger]]` header, or of its
/// `key` when given and set there.
pub(super) fn trigger_line(text: &str, index: usize, key: Option<&str>) -> Option<usize> {
    let mut seen = None;
    let mut header = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            if seen == Some(index) {
                break;
            }
            if line.trim_start_matches('[').trim_end_matches(']').trim() == "trigger"
                && line.starts_with("[[")
            {
                seen = Some(seen.map_or(0, |n| n + 1));
                if seen == Some(index) {
                    header = Some(number + 1);
                }
            }
            continue;
        }
        if seen == Some(index)
            && let Some(key) = key
            && line.split_once('=').is_some_and(|(k, _)| k.trim() == key)
        {
            return Some(number + 1);
        }
    }
    header
}

/// Checks every trigger, naming the first bad one's line.
pub(super) fn validate(path: &Path, text: &str, file: &ConfigFile) -> Result<(), ConfigError> {
    let mut lines_taken: Vec<(String, u32, usize)> = Vec::new();
    for (index, trigger) in file.triggers.iter().enumerate() {
        let invalid = |key: Option<&str>, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: trigger_line(text, index, key),
            key: Some(format!(
                "trigger[{index}]{}",
                key.map_or(String::new(), |k| format!(".{k}"))
            )),
            reason,
        };
        input(trigger).map_err(|(key, reason)| invalid(key, reason))?;
        action(trigger).map_err(|reason| invalid(None, reason))?;
        if let Some(ms) = trigger.debounce_ms
            && ms > 1000
        {
            return Err(invalid(
                Some("debounce_ms"),
                format!("{ms} ms is outside the allowed 0 to 1000 ms"),
            ));
        }
        if let Some(s) = trigger.min_interval_s
            && !(0.0..=86_400.0).contains(&s)
        {
            return Err(invalid(
                Some("min_interval_s"),
                format!("{s} s is outside the allowed 0 to 86400 s"),
            ));
        }
        if let (Some(chip), Some(line)) = (&trigger.chip, trigger.line) {
            let chip = chip_path(chip).display().to_string();
            if let Some((_, _, first)) = lines_taken
                .iter()
                .find(|(c, l, _)| *c == chip && *l == line)
            {
                return Err(invalid(
                    Some("line"),
                    format!(
                        "line {line} of {chip} is already trigger {first}'s (at line {}); one line, one trigger",
                        trigger_line(text, *first, None).unwrap_or(0)
                    ),
                ));
            }
            lines_taken.push((chip, line, index));
        }
    }
    Ok(())
}

/// The trigger's input, or the key at fault and why.
fn input(trigger: &TriggerSection) -> Result<TriggerInput, (Option<&'static str>, String)> {
    let gpio = trigger.chip.is_some() || trigger.line.is_some();
    match (&trigger.device, gpio) {
        (Some(_), true) => Err((
            None,
            "a trigger is an input device (device, key) or a GPIO line (chip, line), not both"
                .to_owned(),
        )),
        (None, false) => Err((
            None,
            "a trigger needs an input device (device = \"…\", key = \"KEY_…\") or a GPIO line (chip = \"gpiochip0\", line = N)"
                .to_owned(),
        )),
        (Some(device), false) => {
            let key = trigger
                .key
                .as_deref()
                .ok_or((None, "an input device trigger needs key = \"KEY_…\" (e.g. KEY_ENTER, BTN_0)".to_owned()))?;
            let code: evdev::KeyCode = key.parse().map_err(|_| {
                (
                    Some("key"),
                    format!(
                        "unknown key `{key}`: use the Linux name, e.g. KEY_ENTER, KEY_SPACE, KEY_1, BTN_0 (`evtest` shows what a device sends)"
                    ),
                )
            })?;
            Ok(TriggerInput::Key {
                device: device_path(device),
                code: code.code(),
                key: key.to_owned(),
            })
        }
        (None, true) => {
            if trigger.key.is_some() {
                return Err((Some("key"), "`key` belongs to input devices; a GPIO line acts on its edge".to_owned()));
            }
            let (Some(chip), Some(line)) = (&trigger.chip, trigger.line) else {
                return Err((None, "a GPIO trigger needs both chip (e.g. \"gpiochip0\") and line (its offset)".to_owned()));
            };
            Ok(TriggerInput::Gpio {
                chip: chip_path(chip),
                line,
                edge: trigger.edge,
                active_low: trigger.active_low,
                debounce: Duration::from_millis(trigger.debounce_ms.unwrap_or(DEFAULT_DEBOUNCE_MS)),
            })
        }
    }
}

/// The trigger's action.
fn action(trigger: &TriggerSection) -> Result<Action, String> {
    match (&trigger.play, &trigger.action) {
        (Some(name), None) if !name.trim().is_empty() => Ok(Action::Play(name.trim().to_owned())),
        (Some(_), None) => Err("play needs a narration's name".to_owned()),
        (None, Some(action)) => match action.as_str() {
            "next" => Ok(Action::Next),
            "previous" => Ok(Action::Previous),
            "stop" => Ok(Action::Stop),
            "pause" => Ok(Action::Pause),
            "resume" => Ok(Action::Resume),
            other => Err(format!(
                "unknown action `{other}`: next, previous, stop, pause or resume (or play = \"NAME\")"
            )),
        },
        (Some(_), Some(_)) => Err("a trigger does one thing: play = \"NAME\" or action = \"…\", not both".to_owned()),
        (None, None) => Err("a trigger needs what it does: play = \"NAME\" or action = \"next\" (previous, stop, pause, resume)".to_owned()),
    }
}

/// The validated triggers as the service runs them.
pub(super) fn resolve(file: &ConfigFile, origin: &Path) -> Vec<TriggerSpec> {
    file.triggers
        .iter()
        .enumerate()
        .filter_map(|(index, trigger)| {
            let line = file.trigger_lines.get(index).copied().flatten();
            Some(TriggerSpec {
                name: trigger
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("trigger {}", index + 1)),
                input: input(trigger).ok()?,
                action: action(trigger).ok()?,
                min_interval: Duration::from_secs_f32(
                    trigger
                        .min_interval_s
                        .unwrap_or(DEFAULT_MIN_INTERVAL_S)
                        .max(0.0),
                ),
                origin: match line {
                    Some(line) => format!("config {}, line {line}", origin.display()),
                    None => format!("config {}", origin.display()),
                },
            })
        })
        .collect()
}
