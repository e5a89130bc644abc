//! Mix: the speech over its backgrounds on one timeline, the background
//! ducked under the speech, the whole normalized to a loudness target.
//!
//! - [`ducking`]: the side-chain envelope and the background's gain;
//! - [`loudness`]: EBU R128 measurements, normalization and the limiter;
//! - [`plot`]: the mix's picture.
//!
//! Resampling to the output rate is the shared `audio::resample`'s
//! (rubato sinc).
//!
//! The timeline: the background starts a pre-roll before the speech and
//! runs a tail after it, fading in and out; each scene's background starts
//! where its first sentence is spoken and crossfades (equal power) into the
//! next scene's.

pub mod ducking;
pub mod loudness;
pub mod plot;

use crate::audio::resample::resample;
use serde::Serialize;
use thiserror::Error;

pub use ducking::{Ducking, DuckingSettings};

#[derive(Debug, Error)]
pub enum MixError {
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    #[error("loudness measurement failed: {0}")]
    Loudness(String),
    #[error("the mix is silent: there is nothing to normalize")]
    Silent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MixSettings {
    pub(crate) output_rate: u32,
    /// 2: stereo (the speech in the centre); 1: mono.
    pub channels: u16,
    /// Background before the speech starts, in seconds.
    pub pre_roll_s: f64,
    /// Background after the speech ends, in seconds.
    pub tail_s: f64,
    /// Crossfade between scene backgrounds, in seconds.
    pub(crate) scene_crossfade_s: f64,
    pub ducking: DuckingSettings,
    pub target_lufs: f64,
    pub true_peak_dbtp: f64,
}

impl Default for MixSettings {
    fn default() -> Self {
        Self {
            output_rate: 48_000,
            channels: 2,
            pre_roll_s: 1.5,
            tail_s: 2.0,
            scene_crossfade_s: 2.0,
            ducking: DuckingSettings::default(),
            target_lufs: -16.0,
            true_peak_dbtp: -1.0,
        }
    }
}

/// One scene's background: where its scene starts in the speech (seconds
/// from the first word) and its audio (interleaved frames of `channels`).
#[derive(Debug, Clone)]
pub struct SceneBackground {
    pub(crate) speech_start_s: f64,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u16,
}

/// The stretch of the output timeline scene `index` of `count` covers, in
/// seconds, crossfades included: what its background must last.
pub(crate) fn scene_span(
    settings: &MixSettings,
    scene_starts_s: &[f64],
    speech_s: f64,
    index: usize,
) -> (f64, f64) {
    let half = settings.scene_crossfade_s / 2.0;
    let total = settings.pre_roll_s + speech_s + settings.tail_s;
    let start = if index == 0 {
        0.0
    } else {
        settings.pre_roll_s + scene_starts_s[index] - half
    };
    let end = match scene_starts_s.get(index + 1) {
        Some(next) => settings.pre_roll_s + next + half,
        None => total,
    };
    (start.max(0.0), end.min(total).max(start))
}

/// What the mix measured and did.
#[derive(Debug, Clone, Serialize)]
pub struct MixReport {
    pub(crate) output_rate: u32,
    pub channels: u16,
    pub duration_s: f64,
    pub pre_roll_s: f64,
    pub speech_s: f64,
    pub tail_s: f64,
    pub ducking: Ducking,
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
    /// Median short-term loudness of the speech minus the background's,
    /// over the windows that lie within the speech; absent without a
    /// background.
    pub speech_over_background_lu: Option<f64>,
    pub(crate) background_gain_db: Option<f64>,
    pub(crate) normalize_gain_db: f64,
    pub(crate) limiter_db: f64,
    /// Level envelopes for the mix picture (not in the JSON report).
    #[serde(skip)]
    pub trace: MixTrace,
}

/// Levels along the timeline, one value per [`TRACE_HOP_S`].
#[derive(Debug, Clone, Default)]
pub struct MixTrace {
    /// Speech level in the final mix, dBFS (RMS).
    pub(crate) speech_db: Vec<f32>,
    /// Background level in the final mix, dBFS (RMS).
    pub(crate) background_db: Vec<f32>,
    /// The background's ducking gain relative to its highest, dB.
    pub(crate) background_gain_db: Vec<f32>,
}

/// Spacing of the trace's values, in seconds.
pub const TRACE_HOP_S: f64 = 0.1;

fn rms_db(x: &[f32]) -> f32 {
    let power = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    10.0 * power.max(1e-10).log10()
}

/// Mixes `speech` (mono, at `speech_rate`) over `backgrounds` (none:
/// speech alone, with the same pre-roll and tail of silence). The result
/// is interleaved frames of `settings.channels`, the speech in the centre.
pub fn mix(
    speech: &[f32],
    speech_rate: u32,
    backgrounds: &[SceneBackground],
    settings: &MixSettings,
) -> Result<(Vec<f32>, MixReport), MixError> {
    let rate = settings.output_rate;
    let channels = usize::from(settings.channels.clamp(1, 2));
    let (speech, resampled_backgrounds) = resample_all(speech, speech_rate, backgrounds, rate);
    let speech = place_speech(&speech?, settings, channels)?;
    let layout = &speech.layout;
    let mut out = speech.track.clone();
    let mut ducked = None;
    if !backgrounds.is_empty() {
        let starts: Vec<f64> = backgrounds.iter().map(|b| b.speech_start_s).collect();
        let track = lay_out_backgrounds(resampled_backgrounds, &starts, layout, settings)?;
        let duck = duck_background(
            &track,
            &speech.track,
            &speech.mono,
            speech.loudness,
            layout,
            settings,
        )?;
        for (o, d) in out.iter_mut().zip(&duck.samples) {
            *o += d;
        }
        ducked = Some(duck);
    }
    let before_normalizing = out.clone();
    let normalized = loudness::normalize(
        &mut out,
        rate,
        settings.target_lufs,
        settings.true_peak_dbtp,
        channels,
    )?;
    let trace = trace(
        &out,
        &before_normalizing,
        &speech.track,
        ducked.as_ref(),
        rate,
        channels,
        normalized.gain_db,
    );
    let seconds = |frames: usize| frames as f64 / f64::from(rate);
    let report = MixReport {
        output_rate: rate,
        channels: channels as u16,
        duration_s: seconds(layout.total),
        pre_roll_s: seconds(layout.pre_roll),
        speech_s: layout.speech_s,
        tail_s: seconds(layout.tail),
        ducking: settings.ducking.mode,
        integrated_lufs: normalized.integrated_lufs,
        true_peak_dbtp: normalized.true_peak_dbtp,
        speech_over_background_lu: ducked.as_ref().and_then(|d| d.measured_difference),
        background_gain_db: ducked.as_ref().map(|d| d.base_db),
        normalize_gain_db: normalized.gain_db,
        limiter_db: normalized.limiter_db,
        trace,
    };
    Ok((out, report))
}

/// The speech placed after the pre-roll, at the loudness target.
struct PlacedSpeech {
    /// Interleaved, `layout.channels` channels (the centre).
    track: Vec<f32>,
    /// One channel of it.
    mono: Vec<f32>,
    /// Integrated loudness after normalizing, LUFS.
    loudness: f64,
    layout: Layout,
}

/// Places the speech (at the output rate) between pre-roll and tail and
/// brings it to the target.
fn place_speech(
    speech: &[f32],
    settings: &MixSettings,
    channels: usize,
) -> Result<PlacedSpeech, MixError> {
    let rate = settings.output_rate;
    let to_frames = |s: f64| (s * f64::from(rate)).round() as usize;
    let pre_roll = to_frames(settings.pre_roll_s);
    let tail = to_frames(settings.tail_s);
    let total = pre_roll + speech.len() + tail;
    let mut speech_mono = vec![0f32; total];
    speech_mono[pre_roll..pre_roll + speech.len()].copy_from_slice(speech);
    // The speech is brought to the target and its peaks limited on their
    // own first: the final limiter then has little left to do, and its
    // gain reduction does not pump the background under every plosive.
    let mut track = spread_to(&speech_mono, channels);
    let loudness = loudness::normalize(
        &mut track,
        rate,
        settings.target_lufs,
        settings.true_peak_dbtp - 0.5,
        channels,
    )?
    .integrated_lufs;
    let mono: Vec<f32> = track.iter().step_by(channels).copied().collect();
    Ok(PlacedSpeech {
        track,
        mono,
        loudness,
        layout: Layout {
            rate,
            channels,
            total,
            pre_roll,
            tail,
            speech_s: speech.len() as f64 / f64::from(rate),
        },
    })
}

/// A background's channels, each resampled to the output rate.
type Resampled = Result<Vec<Vec<f32>>, MixError>;

/// Resamples the speech and every channel of every background, side by
/// side (they are independent).
fn resample_all(
    speech: &[f32],
    speech_rate: u32,
    backgrounds: &[SceneBackground],
    rate: u32,
) -> (Result<Vec<f32>, MixError>, Vec<Resampled>) {
    std::thread::scope(|scope| {
        let handles: Vec<Vec<_>> = backgrounds
            .iter()
            .map(|b| {
                let channels = usize::from(b.channels.max(1));
                (0..channels)
                    .map(|c| {
                        scope.spawn(move || {
                            let channel: Vec<f32> = b
                                .samples
                                .iter()
                                .skip(c)
                                .step_by(channels)
                                .copied()
                                .collect();
                            resample(&channel, b.sample_rate, rate).map_err(MixError::from)
                        })
                    })
                    .collect()
            })
            .collect();
        let speech = resample(speech, speech_rate, rate).map_err(MixError::from);
        let resampled = handles
            .into_iter()
            .map(|channels| channels.into_iter().map(joined).collect())
            .collect();
        (speech, resampled)
    })
}

/// Interleaves a mono track into `channels` identical channels (the
/// centre of a stereo pair).
fn spread_to(mono: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return mono.to_vec();
    }
    mono.iter()
        .flat_map(|&v| std::iter::repeat_n(v, channels))
        .collect()
}

/// The output timeline in frames.
struct Layout {
    rate: u32,
    channels: usize,
    total: usize,
    pre_roll: usize,
    tail: usize,
    speech_s: f64,
}

/// Each scene's background on the timeline from where its scene starts,
/// fading in, crossfading into the next and fading out: interleaved in
/// the output's channels (a stereo background on a mono output mixed
/// down, a mono one in the centre of a stereo output).
fn lay_out_backgrounds(
    resampled: Vec<Resampled>,
    starts: &[f64],
    layout: &Layout,
    settings: &MixSettings,
) -> Result<Vec<f32>, MixError> {
    let to_frames = |s: f64| (s * f64::from(layout.rate)).round() as usize;
    let channels = layout.channels;
    let count = resampled.len();
    let mut track = vec![0f32; layout.total * channels];
    let crossfade = to_frames(settings.scene_crossfade_s);
    for (index, planar) in resampled.into_iter().enumerate() {
        let mut planar = planar?;
        let (start_s, end_s) = scene_span(settings, starts, layout.speech_s, index);
        let (start, end) = (to_frames(start_s), to_frames(end_s).min(layout.total));
        let fade_in = if index == 0 {
            layout.pre_roll.min(to_frames(1.0))
        } else {
            crossfade
        };
        let fade_out = if index + 1 == count {
            layout.tail.min(to_frames(1.5))
        } else {
            crossfade
        };
        for channel in &mut planar {
            channel.resize(end - start, 0.0);
            equal_power_fades(channel, fade_in, fade_out);
        }
        let mapped = crate::audio::channels::to_device_channels(&planar, channels);
        for (t, a) in track[start * channels..end * channels]
            .iter_mut()
            .zip(&mapped)
        {
            *t += a;
        }
    }
    Ok(track)
}

/// The background as it goes into the mix, and what set its level.
struct Ducked {
    samples: Vec<f32>,
    gains: Vec<f32>,
    base_db: f64,
    measured_difference: Option<f64>,
}

/// Sets the background's level so the speech stands the configured
/// loudness above it while it speaks, ducks it under the speech, and holds
/// its own peaks under the ceiling.
fn duck_background(
    track: &[f32],
    speech_track: &[f32],
    speech_mono: &[f32],
    speech_loudness: f64,
    layout: &Layout,
    settings: &MixSettings,
) -> Result<Ducked, MixError> {
    let (rate, channels) = (layout.rate, layout.channels);
    let envelope = ducking::speech_envelope(speech_mono, rate, &settings.ducking);
    // Two independent measurements: side by side.
    let (speech_short_term, background_loudness) = std::thread::scope(|scope| {
        let short_term = scope
            .spawn(|| loudness::short_term(speech_track, rate, short_term_hop(rate), channels));
        let in_speech: Vec<f32> = track
            .chunks(channels)
            .zip(&envelope)
            .filter(|(_, e)| **e > 0.5)
            .flat_map(|(frame, _)| frame.iter().copied())
            .collect();
        let background_loudness = loudness::integrated(&in_speech, rate, channels);
        (joined(short_term), background_loudness)
    });
    let (speech_short_term, background_loudness) = (speech_short_term?, background_loudness?);
    let mut base_db = if background_loudness.is_finite() && speech_loudness.is_finite() {
        speech_loudness - settings.ducking.speech_over_background_lu - background_loudness
    } else {
        0.0
    };
    let apply = |gains: &[f32]| -> Vec<f32> {
        let mut out = track.to_vec();
        for (frame, g) in out.chunks_mut(channels).zip(gains) {
            frame.iter_mut().for_each(|b| *b *= g);
        }
        out
    };
    // Set the gain from integrated loudness, then correct it once by
    // what short-term loudness (what the listener hears) measures.
    let gains = ducking::background_gains(&envelope, base_db, &settings.ducking);
    let ducked = apply(&gains);
    let measured = speech_over_background(&speech_short_term, &ducked, &envelope, rate, channels)?;
    if let Some(d) = measured {
        base_db += d - settings.ducking.speech_over_background_lu;
    }
    // The last correction is measured again below, after the final gain.
    let gains = ducking::background_gains(&envelope, base_db, &settings.ducking);
    let mut ducked = apply(&gains);
    // A background's own peaks (a door slam, thunder) are held 3 dB
    // under the ceiling too, for the same reason as the speech's.
    loudness::limit(&mut ducked, rate, settings.true_peak_dbtp - 3.0, channels)?;
    let measured_difference =
        speech_over_background(&speech_short_term, &ducked, &envelope, rate, channels)?
            .or(measured);
    Ok(Ducked {
        samples: ducked,
        gains,
        base_db,
        measured_difference,
    })
}

/// Levels as they are in the output: each track's level before
/// normalizing, plus the normalizing gain and what the limiter took in
/// that stretch.
fn trace(
    out: &[f32],
    before_normalizing: &[f32],
    speech_track: &[f32],
    ducked: Option<&Ducked>,
    rate: u32,
    channels: usize,
    normalize_gain_db: f64,
) -> MixTrace {
    let hop = ((TRACE_HOP_S * f64::from(rate)).round() as usize).max(1) * channels;
    let applied_db: Vec<f32> = out
        .chunks(hop)
        .zip(before_normalizing.chunks(hop))
        .map(|(after, before)| {
            if rms_db(before) <= -99.0 {
                normalize_gain_db as f32
            } else {
                rms_db(after) - rms_db(before)
            }
        })
        .collect();
    let level = |track: &[f32]| -> Vec<f32> {
        track
            .chunks(hop)
            .zip(&applied_db)
            .map(|(x, gain)| rms_db(x) + gain)
            .collect()
    };
    let mut trace = MixTrace {
        speech_db: level(speech_track),
        ..MixTrace::default()
    };
    if let Some(d) = ducked {
        trace.background_db = level(&d.samples);
        let gain_db: Vec<f32> = d
            .gains
            .chunks(hop / channels)
            .map(|g| 20.0 * g[0].max(1e-6).log10())
            .collect();
        // Relative to its highest: the ducking's depth and timing.
        let highest = gain_db.iter().copied().fold(f32::MIN, f32::max);
        trace.background_gain_db = gain_db.iter().map(|g| g - highest).collect();
    }
    trace
}

/// A resampling or measuring thread's result; its panic becomes an error.
fn joined<T>(
    handle: std::thread::ScopedJoinHandle<'_, Result<T, MixError>>,
) -> Result<T, MixError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(MixError::Loudness("a mixing thread panicked".into())))
}

/// Short-term loudness is compared every half second: each value covers
/// 3 s, so a finer hop mostly repeats itself, and every reading of the
/// meter sums its whole 3 s window again.
fn short_term_hop(rate: u32) -> usize {
    (rate / 2).max(1) as usize
}

/// Median of speech minus background short-term loudness over the 3 s
/// windows that lie wholly in speech (envelope above one half).
pub(crate) fn speech_over_background(
    speech_short_term: &[f64],
    background: &[f32],
    envelope: &[f32],
    rate: u32,
    channels: usize,
) -> Result<Option<f64>, MixError> {
    let hop = short_term_hop(rate);
    let window = 3 * rate as usize;
    let s = speech_short_term;
    let b = loudness::short_term(background, rate, hop, channels)?;
    let mut differences: Vec<f64> = Vec::new();
    for (i, (ls, lb)) in s.iter().zip(&b).enumerate() {
        let end = ((i + 1) * hop).min(envelope.len());
        if end < window || !ls.is_finite() || !lb.is_finite() {
            continue;
        }
        if envelope[end - window..end].iter().all(|&e| e > 0.5) {
            differences.push(ls - lb);
        }
    }
    if differences.is_empty() {
        return Ok(None);
    }
    differences.sort_by(f64::total_cmp);
    Ok(Some(differences[differences.len() / 2]))
}

/// Equal-power fade in over the first `fade_in` samples and out over the
/// last `fade_out` (sin/cos quarter periods: a crossfade of two such
/// fades keeps the power of uncorrelated sounds constant).
fn equal_power_fades(samples: &mut [f32], fade_in: usize, fade_out: usize) {
    let len = samples.len();
    let fade_in = fade_in.min(len);
    for (j, s) in samples[..fade_in].iter_mut().enumerate() {
        let theta = (j as f64 + 0.5) / fade_in as f64 * std::f64::consts::FRAC_PI_2;
        *s *= theta.sin() as f32;
    }
    let fade_out = fade_out.min(len);
    for (j, s) in samples[len - fade_out..].iter_mut().enumerate() {
        let theta = (j as f64 + 0.5) / fade_out as f64 * std::f64::consts::FRAC_PI_2;
        *s *= theta.cos() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech-like test signal: bursts of a 200 Hz tone with syllable
    /// modulation, 0.3 s gaps between "sentences".
    fn speech_like(rate: u32, seconds: f64) -> Vec<f32> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let sentence = t % 4.0;
                if sentence > 3.7 {
                    return 0.0;
                }
                let syllables = 0.6 + 0.4 * (std::f64::consts::TAU * 4.0 * t).sin();
                (0.3 * syllables * (std::f64::consts::TAU * 200.0 * t).sin()) as f32
            })
            .collect()
    }

    fn noise(seed: u64, rate: u32, seconds: f64, level: f32) -> Vec<f32> {
        crate::audio::noise::gaussian(seed, (seconds * f64::from(rate)) as usize)
            .iter()
            .map(|v| v * level)
            .collect()
    }

    fn largest_jump(x: &[f32]) -> f32 {
        x.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn the_mix_meets_its_loudness_and_ducking_targets() {
        let speech = speech_like(22_050, 20.0);
        let settings = MixSettings {
            channels: 1,
            ..MixSettings::default()
        };
        let starts = [0.0, 10.0];
        let spans: Vec<(f64, f64)> = (0..2)
            .map(|i| scene_span(&settings, &starts, 20.0, i))
            .collect();
        let backgrounds: Vec<SceneBackground> = spans
            .iter()
            .enumerate()
            .map(|(i, (a, b))| SceneBackground {
                speech_start_s: starts[i],
                samples: noise(i as u64 + 1, 16_000, b - a, 0.1 + 0.1 * i as f32),
                sample_rate: 16_000,
                channels: 1,
            })
            .collect();
        let (out, report) = mix(&speech, 22_050, &backgrounds, &settings).unwrap();
        assert_eq!(
            out.len(),
            (23.5 * 48_000.0) as usize,
            "pre-roll + speech + tail"
        );
        assert!((report.integrated_lufs + 16.0).abs() <= 0.5, "{report:?}");
        assert!(report.true_peak_dbtp <= -1.0 + 1e-6, "{report:?}");
        let difference = report.speech_over_background_lu.unwrap();
        assert!((difference - 15.0).abs() <= 1.5, "{report:?}");
        // The pre-roll holds the background, louder than under speech.
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        assert!(rms(&out[24_000..60_000]) > 0.0);
        // No step at the scene crossfade (speech is quiet there? measure
        // the background-only stretch of the tail instead) and fades end
        // in silence.
        assert!(out.last().unwrap().abs() < 1e-3);
        let boundary = ((1.5 + 10.0) * 48_000.0) as usize;
        let local = &out[boundary - 48_000..boundary + 48_000];
        assert!(
            largest_jump(local) < 4.0 * rms(local) + 0.05,
            "seam at the scene change"
        );
    }

    #[test]
    fn constant_ducking_and_speech_alone() {
        let speech = speech_like(16_000, 8.0);
        let mut settings = MixSettings {
            channels: 1,
            ..MixSettings::default()
        };
        settings.ducking.mode = Ducking::Constant;
        let span = scene_span(&settings, &[0.0], 8.0, 0);
        let background = SceneBackground {
            speech_start_s: 0.0,
            samples: noise(9, 16_000, span.1 - span.0, 0.2),
            sample_rate: 16_000,
            channels: 1,
        };
        let (_, report) = mix(&speech, 16_000, &[background], &settings).unwrap();
        assert!(
            (report.speech_over_background_lu.unwrap() - 15.0).abs() <= 1.5,
            "{report:?}"
        );
        let (out, report) = mix(&speech, 16_000, &[], &settings).unwrap();
        assert!(report.speech_over_background_lu.is_none());
        assert!(
            out[..72_000].iter().all(|v| *v == 0.0),
            "silent pre-roll without background"
        );
        assert!((report.integrated_lufs + 16.0).abs() <= 0.5);
    }

    #[test]
    fn stereo_backgrounds_stay_stereo_and_the_speech_is_centred() {
        let speech = speech_like(22_050, 12.0);
        let settings = MixSettings::default();
        assert_eq!(settings.channels, 2);
        let span = scene_span(&settings, &[0.0], 12.0, 0);
        let frames = ((span.1 - span.0) * 48_000.0) as usize;
        // Left and right: independent noise.
        let (l, r) = (
            noise(1, 48_000, span.1 - span.0, 0.1),
            noise(2, 48_000, span.1 - span.0, 0.1),
        );
        let stereo: Vec<f32> = l
            .iter()
            .zip(&r)
            .flat_map(|(a, b)| [*a, *b])
            .take(2 * frames)
            .collect();
        let background = SceneBackground {
            speech_start_s: 0.0,
            samples: stereo,
            sample_rate: 48_000,
            channels: 2,
        };
        let (out, report) = mix(
            &speech,
            22_050,
            std::slice::from_ref(&background),
            &settings,
        )
        .unwrap();
        assert_eq!(report.channels, 2);
        assert_eq!(out.len() % 2, 0);
        assert!((report.integrated_lufs + 16.0).abs() <= 0.5, "{report:?}");
        assert!(
            (report.speech_over_background_lu.unwrap() - 15.0).abs() <= 1.5,
            "{report:?}"
        );
        // The pre-roll is the background alone: left and right differ.
        let pre: Vec<f32> = out[..2 * 48_000].to_vec();
        let (pl, pr): (Vec<f32>, Vec<f32>) = pre.chunks(2).map(|f| (f[0], f[1])).unzip();
        assert!(pl.iter().zip(&pr).any(|(a, b)| (a - b).abs() > 1e-3));
        // Speech alone in stereo: both channels the same (the centre).
        let (alone, _) = mix(&speech, 22_050, &[], &settings).unwrap();
        assert!(alone.chunks(2).all(|f| f[0] == f[1]));
        // Mono output mixes a stereo background down.
        let mono = MixSettings {
            channels: 1,
            ..settings.clone()
        };
        let (down, report) = mix(&speech, 22_050, &[background], &mono).unwrap();
        assert_eq!(report.channels, 1);
        assert_eq!(down.len(), alone.len() / 2);
    }
}
