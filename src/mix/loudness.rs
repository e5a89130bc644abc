//! EBU R128 measurements (the `ebur128` crate) and the loudness target:
//! integrated loudness normalized to a target, true peak held under a
//! ceiling by a look-ahead limiter (never clipping).

use ebur128::{EbuR128, Mode};

use super::MixError;

fn meter(channels: usize, rate: u32, mode: Mode) -> Result<EbuR128, MixError> {
    EbuR128::new(channels.max(1) as u32, rate, mode).map_err(|e| MixError::Loudness(e.to_string()))
}

fn loudness_error(e: ebur128::Error) -> MixError {
    MixError::Loudness(e.to_string())
}

// Every function here takes interleaved frames of `channels` channels (a
// mono track is one channel); BS.1770 sums the channels' powers, so a
// sound in both channels of a stereo pair measures 3 dB louder than alone.

/// Integrated (gated) loudness in LUFS; `-inf` for silence.
pub fn integrated(samples: &[f32], rate: u32, channels: usize) -> Result<f64, MixError> {
    let mut m = meter(channels, rate, Mode::I)?;
    m.add_frames_f32(samples).map_err(loudness_error)?;
    m.loudness_global().map_err(loudness_error)
}

/// True peak in dBTP (4x oversampled, as BS.1770 defines it).
pub fn true_peak_db(samples: &[f32], rate: u32, channels: usize) -> Result<f64, MixError> {
    let mut m = meter(channels, rate, Mode::TRUE_PEAK)?;
    m.add_frames_f32(samples).map_err(loudness_error)?;
    let mut peak = 0f64;
    for c in 0..channels.max(1) {
        peak = peak.max(m.true_peak(c as u32).map_err(loudness_error)?);
    }
    Ok(20.0 * peak.max(1e-12).log10())
}

/// Short-term (3 s window) loudness every `hop` frames: element `i` is
/// the loudness of the 3 s ending at frame `(i + 1) * hop`.
pub(crate) fn short_term(
    samples: &[f32],
    rate: u32,
    hop: usize,
    channels: usize,
) -> Result<Vec<f64>, MixError> {
    let mut m = meter(channels, rate, Mode::S)?;
    let mut out = Vec::with_capacity(samples.len() / hop.max(1) + 1);
    for chunk in samples.chunks(hop.max(1) * channels.max(1)) {
        m.add_frames_f32(chunk).map_err(loudness_error)?;
        out.push(m.loudness_shortterm().map_err(loudness_error)?);
    }
    Ok(out)
}

pub(crate) fn db_to_gain(db: f64) -> f32 {
    (db * (std::f64::consts::LN_10 / 20.0)).exp() as f32
}

/// What [`normalize`] did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct Normalized {
    pub gain_db: f64,
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
    /// Largest gain reduction of the limiter, in dB (0 when it did nothing).
    pub(crate) limiter_db: f64,
}

/// Scales `samples` to `target_lufs` integrated loudness and limits their
/// true peak to `ceiling_dbtp`.
pub(crate) fn normalize(
    samples: &mut [f32],
    rate: u32,
    target_lufs: f64,
    ceiling_dbtp: f64,
    channels: usize,
) -> Result<Normalized, MixError> {
    let measured = integrated(samples, rate, channels)?;
    if !measured.is_finite() {
        return Err(MixError::Silent);
    }
    let original = samples.to_vec();
    let mut gain_db = target_lufs - measured;
    let mut limiter_db = 0.0;
    // Limiting lowers the loudness, more the harder it works, so loudness
    // grows less than one dB per dB of gain: a few secant steps on
    // (gain, loudness after limiting) meet both targets.
    let mut previous: Option<(f64, f64)> = None;
    // Inside the loop the limiter holds sample peaks 0.3 dB under the
    // ceiling (cheap); the true peak (4x oversampled) is checked once after.
    let sample_ceiling = db_to_gain(ceiling_dbtp - 0.3);
    // The loudness of `samples` as they are.
    let mut loudness = measured;
    for _ in 0..10 {
        let gain = db_to_gain(gain_db);
        for (out, x) in samples.iter_mut().zip(&original) {
            *out = x * gain;
        }
        let peak = samples.iter().fold(0f32, |m, v| m.max(v.abs()));
        if peak > sample_ceiling {
            limiter_db = apply_limiter(samples, rate, sample_ceiling, channels);
            loudness = integrated(samples, rate, channels)?;
        } else {
            // A plain gain moves integrated loudness by exactly that gain
            // (the relative gate moves with it): nothing to measure.
            limiter_db = 0.0;
            loudness = measured + gain_db;
        }
        tracing::debug!(gain_db, limiter_db, lufs = loudness, "normalizing");
        if (loudness - target_lufs).abs() <= 0.1 {
            break;
        }
        let slope = match previous {
            Some((g, l)) if (gain_db - g).abs() > 1e-6 => {
                ((loudness - l) / (gain_db - g)).clamp(0.2, 1.0)
            }
            _ => 1.0,
        };
        previous = Some((gain_db, loudness));
        gain_db += (target_lufs - loudness) / slope;
    }
    let peak = true_peak_db(samples, rate, channels)?;
    let (reduction, true_peak_dbtp) = limit_from(samples, rate, ceiling_dbtp, peak, channels)?;
    // The loudness reported is that of the final samples: measured, or,
    // when only a gain separates them from the measured input, the input's
    // plus the gain (exact: BS.1770's relative gate moves with the gain,
    // and what the absolute gate at -70 LUFS might let in or out changes
    // the result by far less than 0.001 LU).
    let integrated_lufs = if reduction > 0.0 {
        limiter_db = f64::max(limiter_db, reduction);
        integrated(samples, rate, channels)?
    } else {
        loudness
    };
    Ok(Normalized {
        gain_db,
        integrated_lufs,
        true_peak_dbtp,
        limiter_db,
    })
}

/// Look-ahead peak limiter: the gain needed at each sample, the minimum
/// over the next 5 ms, averaged over 5 ms (a smooth ramp that reaches the
/// needed gain at the peak) and released over 80 ms. Sample peaks are held
/// under a ceiling a little below the true-peak limit; if the true peak
/// still exceeds it, the ceiling is lowered and the limiter runs again.
/// Returns the largest reduction in dB.
pub fn limit(
    samples: &mut [f32],
    rate: u32,
    ceiling_dbtp: f64,
    channels: usize,
) -> Result<f64, MixError> {
    let peak = true_peak_db(samples, rate, channels)?;
    Ok(limit_from(samples, rate, ceiling_dbtp, peak, channels)?.0)
}

/// [`limit`] for samples whose true peak is known to be `peak_dbtp`;
/// returns the reduction and the true peak after it.
fn limit_from(
    samples: &mut [f32],
    rate: u32,
    ceiling_dbtp: f64,
    mut peak_dbtp: f64,
    channels: usize,
) -> Result<(f64, f64), MixError> {
    if peak_dbtp <= ceiling_dbtp {
        return Ok((0.0, peak_dbtp));
    }
    let mut ceiling_db = ceiling_dbtp - 0.3;
    let original = samples.to_vec();
    let mut reduction = 0.0;
    for _ in 0..6 {
        samples.copy_from_slice(&original);
        reduction = apply_limiter(samples, rate, db_to_gain(ceiling_db), channels);
        peak_dbtp = true_peak_db(samples, rate, channels)?;
        if peak_dbtp <= ceiling_dbtp {
            break;
        }
        ceiling_db -= 0.3;
    }
    Ok((reduction, peak_dbtp))
}

/// The limiter's look-ahead (also its attack ramp) and release. Speech
/// peaks come every pitch period (5 to 10 ms); a release much longer than
/// that turns the limiter into a steady gain cut that eats the loudness.
const LIMITER_LOOKAHEAD_S: f32 = 0.002;
const LIMITER_RELEASE_S: f32 = 0.03;

/// Linked across channels: one gain per frame, from its loudest sample.
fn apply_limiter(samples: &mut [f32], rate: u32, ceiling: f32, channels: usize) -> f64 {
    let channels = channels.max(1);
    let lookahead = ((rate as f32 * LIMITER_LOOKAHEAD_S) as usize).max(1);
    let release = 1.0 - (-1.0 / (rate as f32 * LIMITER_RELEASE_S)).exp();
    let needed: Vec<f32> = samples
        .chunks(channels)
        .map(|frame| {
            let x = frame.iter().fold(0f32, |m, v| m.max(v.abs()));
            if x > ceiling { ceiling / x } else { 1.0 }
        })
        .collect();
    // Minimum of `needed` over [n, n + lookahead) with a monotonic deque.
    let n = needed.len();
    let mut minimum = vec![1.0f32; n];
    let mut deque: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    for i in (0..n).rev() {
        while deque.back().is_some_and(|&j| needed[j] >= needed[i]) {
            deque.pop_back();
        }
        deque.push_back(i);
        while deque.front().is_some_and(|&j| j >= i + lookahead) {
            deque.pop_front();
        }
        minimum[i] = deque.front().map_or(1.0, |&j| needed[j]);
    }
    // Average over the last `lookahead` samples: at a peak every term is at
    // most the gain it needs, so the average is too.
    // Before the first sample the gain is taken to be the first sample's,
    // so a peak right at the start is caught too.
    let first = minimum.first().copied().unwrap_or(1.0);
    let mut smoothed = vec![1.0f32; n];
    let mut sum = f64::from(first) * lookahead as f64;
    for i in 0..n {
        let leaving = if i >= lookahead {
            minimum[i - lookahead]
        } else {
            first
        };
        sum += f64::from(minimum[i]) - f64::from(leaving);
        smoothed[i] = (sum / lookahead as f64) as f32;
    }
    let mut gain = 1.0f32;
    let mut smallest = 1.0f32;
    for (frame, &target) in samples.chunks_mut(channels).zip(&smoothed) {
        gain = if target < gain {
            target
        } else {
            gain + (target - gain) * release
        };
        smallest = smallest.min(gain);
        frame.iter_mut().for_each(|x| *x *= gain);
    }
    -20.0 * f64::from(smallest).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_the_target_under_the_ceiling() {
        let rate = 48_000;
        // Noise with loud clicks: the clicks need the limiter.
        let mut x: Vec<f32> = crate::audio::noise::gaussian(3, rate as usize * 10)
            .iter()
            .map(|v| 0.05 * v)
            .collect();
        for i in (0..x.len()).step_by(rate as usize) {
            x[i] = 0.99;
        }
        let result = normalize(&mut x, rate, -16.0, -1.0, 1).unwrap();
        assert!((result.integrated_lufs + 16.0).abs() <= 0.2, "{result:?}");
        assert!(result.true_peak_dbtp <= -1.0 + 1e-6, "{result:?}");
        assert!(result.limiter_db > 1.0, "{result:?}");
        assert!(x.iter().all(|v| v.abs() < 1.0));
    }

    #[test]
    fn stereo_is_measured_and_limited_as_one() {
        let rate = 48_000;
        let mono: Vec<f32> = crate::audio::noise::gaussian(5, rate as usize * 5)
            .iter()
            .map(|v| 0.1 * v)
            .collect();
        let stereo: Vec<f32> = mono.iter().flat_map(|&v| [v, v]).collect();
        let one = integrated(&mono, rate, 1).unwrap();
        let two = integrated(&stereo, rate, 2).unwrap();
        assert!((two - one - 3.01).abs() < 0.05, "{one} {two}");
        // A peak in one channel lowers both (linked).
        let mut peaked = stereo.clone();
        peaked[2 * 48_000] = 0.99;
        limit(&mut peaked, rate, -6.0, 2).unwrap();
        assert!(peaked[2 * 48_000].abs() < 0.55);
        assert!((peaked[2 * 48_000 + 1] / stereo[2 * 48_000 + 1]) < 0.9);
    }

    #[test]
    fn silence_is_an_error() {
        let mut x = vec![0.0f32; 48_000];
        assert!(normalize(&mut x, 48_000, -16.0, -1.0, 1).is_err());
    }
}
