//! The background's gain under the speech: a side-chain envelope of the
//! speech (activity per 10 ms block, look-ahead, hold, attack and release)
//! drives the background down while speech plays and up in pauses; or the
//! paper's constant attenuation.

use serde::{Deserialize, Serialize};

/// How the background is lowered under the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ducking {
    /// Follows the speech: down while it plays, up in pauses.
    Sidechain,
    /// One gain for the whole background (the paper's mix).
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuckingSettings {
    pub mode: Ducking,
    /// How far the speech's loudness sits above the background's while
    /// speech plays, in LU.
    pub speech_over_background_lu: f64,
    /// How far the background rises in pauses, in dB (side-chain only).
    pub(crate) pause_rise_db: f64,
    pub(crate) attack_ms: f32,
    pub(crate) hold_ms: f32,
    pub(crate) release_ms: f32,
    pub(crate) lookahead_ms: f32,
}

impl Default for DuckingSettings {
    fn default() -> Self {
        Self {
            mode: Ducking::Sidechain,
            speech_over_background_lu: 15.0,
            pause_rise_db: 6.0,
            attack_ms: 50.0,
            hold_ms: 400.0,
            release_ms: 600.0,
            lookahead_ms: 150.0,
        }
    }
}

/// Block length of the speech detector.
const BLOCK_MS: f32 = 10.0;
/// A block is speech when it is within this many dB of the loudest block.
const ACTIVITY_RANGE_DB: f32 = 40.0;

/// Speech activity at every sample, 0 (pause) to 1 (speech), with the
/// settings' look-ahead (the background is down before the first word),
/// hold (short gaps between words do not let it pump) and attack/release.
pub(crate) fn speech_envelope(speech: &[f32], rate: u32, settings: &DuckingSettings) -> Vec<f32> {
    let block = ((rate as f32 * BLOCK_MS / 1000.0) as usize).max(1);
    let levels: Vec<f32> = speech
        .chunks(block)
        .map(|c| {
            let power = c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32;
            10.0 * power.max(1e-12).log10()
        })
        .collect();
    let loudest = levels.iter().copied().fold(f32::MIN, f32::max);
    let threshold = (loudest - ACTIVITY_RANGE_DB).max(-70.0);
    let active: Vec<bool> = levels.iter().map(|&l| l > threshold).collect();
    let blocks = |ms: f32| (ms / BLOCK_MS).round() as usize;
    let (ahead, hold) = (blocks(settings.lookahead_ms), blocks(settings.hold_ms));
    // Active when speech starts within `ahead` blocks or ended within `hold`.
    let mut held = vec![false; active.len()];
    let mut last_active: Option<usize> = None;
    for i in 0..active.len() {
        if active[i] {
            last_active = Some(i);
        }
        let soon = active[i..(i + ahead + 1).min(active.len())]
            .iter()
            .any(|&a| a);
        let recent = last_active.is_some_and(|j| i - j <= hold);
        held[i] = soon || recent;
    }
    let attack = 1.0 - (-1.0 / (rate as f32 * settings.attack_ms.max(1.0) / 1000.0)).exp();
    let release = 1.0 - (-1.0 / (rate as f32 * settings.release_ms.max(1.0) / 1000.0)).exp();
    let mut level = 0.0f32;
    (0..speech.len())
        .map(|n| {
            let target = if held[n / block] { 1.0 } else { 0.0 };
            let rate = if target > level { attack } else { release };
            level += (target - level) * rate;
            level
        })
        .collect()
}

/// The background's gain at every sample: `base_db` while speech plays,
/// up to `base_db + pause_rise_db` in pauses (side-chain), or `base_db`
/// throughout (constant).
pub(crate) fn background_gains(
    envelope: &[f32],
    base_db: f64,
    settings: &DuckingSettings,
) -> Vec<f32> {
    match settings.mode {
        Ducking::Constant => vec![super::loudness::db_to_gain(base_db); envelope.len()],
        Ducking::Sidechain => {
            // gain = base * rise^(1 - e), with one exp per sample.
            let base = super::loudness::db_to_gain(base_db);
            let rise_ln = (settings.pause_rise_db * std::f64::consts::LN_10 / 20.0) as f32;
            envelope
                .iter()
                .map(|&e| base * ((1.0 - e) * rise_ln).exp())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_opens_ahead_of_speech_and_holds_short_gaps() {
        let rate = 1_000;
        // 1 s pause, 1 s "speech", 0.2 s gap, 1 s speech, 2 s pause.
        let mut x = vec![0.0f32; 1_000];
        x.extend(vec![0.3; 1_000]);
        x.extend(vec![0.0; 200]);
        x.extend(vec![0.3; 1_000]);
        x.extend(vec![0.0; 2_000]);
        let settings = DuckingSettings::default();
        let env = speech_envelope(&x, rate, &settings);
        assert!(env[500] < 0.01, "quiet long before speech");
        assert!(env[990] > 0.8, "up before the first word: {}", env[990]);
        assert!(
            env[2_100] > 0.95,
            "held through a short gap: {}",
            env[2_100]
        );
        assert!(
            env[5_100] < 0.1,
            "released in the long pause: {}",
            env[5_100]
        );
        let gains = background_gains(&env, -10.0, &settings);
        assert!(
            gains[500] > gains[1_500] * 1.9,
            "rises about 6 dB in pauses"
        );
    }
}
