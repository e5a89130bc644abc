//! Range checks serde cannot express, each naming its key and line.

use std::path::Path;

use super::{ConfigError, ConfigFile};

/// A number's allowed range.
struct Range {
    key: &'static str,
    value: f64,
    low: f64,
    high: f64,
    /// The low end itself is refused (a time bound of 0 means nothing).
    low_excluded: bool,
    unit: &'static str,
}

impl Range {
    fn closed(key: &'static str, value: f64, low: f64, high: f64, unit: &'static str) -> Self {
        Self {
            key,
            value,
            low,
            high,
            low_excluded: false,
            unit,
        }
    }

    fn above(key: &'static str, value: f64, low: f64, high: f64, unit: &'static str) -> Self {
        Self {
            low_excluded: true,
            ..Self::closed(key, value, low, high, unit)
        }
    }

    /// Why the value is refused, if it is.
    fn refusal(&self) -> Option<String> {
        let Range {
            value,
            low,
            high,
            unit,
            ..
        } = *self;
        let inside = if self.low_excluded {
            value > low && value <= high
        } else {
            (low..=high).contains(&value)
        };
        match (inside, self.low_excluded) {
            (true, _) => None,
            (false, false) => Some(format!(
                "{value}{unit} is outside the allowed {low} to {high}{unit}"
            )),
            (false, true) => Some(format!(
                "{value}{unit} is outside the allowed range (more than {low}, at most {high}{unit})"
            )),
        }
    }
}

/// Every numeric key with a bounded range.
fn ranges(file: &ConfigFile) -> Vec<Range> {
    let (speech, describe, mix) = (&file.speech, &file.describe, &file.mix);
    let (background, audioldm2) = (&file.background, &file.background.audioldm2);
    vec![
        Range::closed("speech.rate", speech.rate as f64, 0.25, 4.0, ""),
        Range::closed(
            "speech.sentence_silence",
            speech.sentence_silence as f64,
            0.0,
            5.0,
            " s",
        ),
        Range::closed(
            "describe.temperature",
            describe.temperature as f64,
            0.0,
            2.0,
            "",
        ),
        Range::above(
            "describe.timeout_s",
            describe.timeout_s as f64,
            0.0,
            600.0,
            " s",
        ),
        Range::closed(
            "background.audioldm2.steps",
            audioldm2.steps as f64,
            1.0,
            999.0,
            "",
        ),
        Range::closed(
            "background.audioldm2.guidance",
            audioldm2.guidance as f64,
            0.0,
            50.0,
            "",
        ),
        Range::closed(
            "background.audioldm2.variations",
            audioldm2.variations as f64,
            1.0,
            8.0,
            "",
        ),
        Range::above(
            "background.max_seconds",
            background.max_seconds,
            0.0,
            86_400.0,
            " s",
        ),
        Range::closed("playback.volume", file.playback.volume as f64, 0.0, 1.0, ""),
        Range::closed(
            "mix.output_rate",
            mix.output_rate as f64,
            8_000.0,
            192_000.0,
            " Hz",
        ),
        Range::closed("mix.pre_roll_s", mix.pre_roll_s, 0.0, 30.0, " s"),
        Range::closed("mix.tail_s", mix.tail_s, 0.0, 30.0, " s"),
        Range::closed(
            "mix.scene_crossfade_s",
            mix.scene_crossfade_s,
            0.0,
            10.0,
            " s",
        ),
        Range::closed(
            "mix.speech_over_background_lu",
            mix.speech_over_background_lu,
            0.0,
            40.0,
            " LU",
        ),
        Range::closed("mix.pause_rise_db", mix.pause_rise_db, 0.0, 20.0, " dB"),
        Range::closed("mix.target_lufs", mix.target_lufs, -40.0, -5.0, " LUFS"),
        Range::closed(
            "mix.true_peak_dbtp",
            mix.true_peak_dbtp,
            -12.0,
            0.0,
            " dBTP",
        ),
        Range::closed(
            "control.fade_s",
            f64::from(file.control.fade_s),
            0.05,
            5.0,
            " s",
        ),
    ]
}

/// Checks serde cannot express; `text` is the file's text, to name the
/// line.
pub(super) fn validate(path: &Path, text: &str, file: &ConfigFile) -> Result<(), ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: line_of_key(text, key),
        key: Some(key.to_owned()),
        reason,
    };
    if let Some(key) = file.background.moved_keys().first() {
        return Err(invalid(
            &format!("background.{key}"),
            format!(
                "`{key}` is an AudioLDM2 setting and moved to its own table: write it under [background.audioldm2] (background.engine chooses the engine)"
            ),
        ));
    }
    if let Some((key, reason)) = ranges(file)
        .iter()
        .find_map(|range| Some((range.key, range.refusal()?)))
    {
        return Err(invalid(key, reason));
    }
    let describe = &file.describe;
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
    if file.speech.speaker < 0 {
        return Err(invalid(
            "speech.speaker",
            format!(
                "{} is negative; speakers are numbered from 0",
                file.speech.speaker
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

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
