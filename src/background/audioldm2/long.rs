//! Backgrounds of any length from native-length clips.
//!
//! Up to one clip's length the clip is cut (with a short fade). A longer
//! background is laid out from segments of one or more clips of the same
//! caption (different seeds): each segment starts and ends at the quietest
//! point near a randomly chosen position, and neighbours overlap by an
//! equal-power crossfade (cos/sin gains, constant power for uncorrelated
//! signals, so there is no dip or bump). Segments alternate between the
//! clips and vary in offset and length, so three minutes do not repeat a
//! ten-second loop at a fixed period. The layout is seeded: the same
//! clips and seed give the same background.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::engine::{Engine, Request};
use super::{BackgroundError, LengthLimits, Observer};

/// Longest crossfade between segments, in seconds.
const CROSSFADE_S: f64 = 1.0;
/// Fade at a cut end, in seconds.
const END_FADE_S: f64 = 0.02;

/// Lays out `samples` samples from `clips` (all at `rate`).
pub(crate) fn fit_to_length(clips: &[Vec<f32>], samples: usize, rate: u32, seed: u64) -> Vec<f32> {
    let Some(first) = clips.first() else {
        return Vec::new();
    };
    let end_fade = (END_FADE_S * f64::from(rate)) as usize;
    if samples <= first.len() {
        let mut out = first[..samples].to_vec();
        if samples < first.len() {
            fade_out(&mut out, end_fade);
        }
        return out;
    }
    let shortest = clips.iter().map(Vec::len).min().unwrap_or(0);
    if shortest < 8 {
        return Vec::new();
    }
    let crossfade = ((CROSSFADE_S * f64::from(rate)) as usize).min(shortest / 4);
    // Different from the noise seed's stream: the layout and the noise are
    // independent.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_796f_7574);
    let mut out: Vec<f32> = Vec::with_capacity(samples + shortest);
    let mut previous: Option<usize> = None;
    while out.len() < samples {
        let index = match (clips.len(), previous) {
            (1, _) | (_, None) => 0,
            (n, Some(p)) => (p + 1 + below(&mut rng, n - 1)) % n,
        };
        previous = Some(index);
        let clip = &clips[index];
        let len = clip.len();
        let start = if out.is_empty() {
            0
        } else {
            quietest_start(clip, below(&mut rng, len / 2), crossfade)
        };
        let available = len - start;
        let wanted = start + available / 2 + below(&mut rng, available / 2 + 1);
        let end = quietest_end(clip, wanted, crossfade).clamp(start + 2 * crossfade, len);
        let segment = &clip[start..end];
        if out.is_empty() {
            out.extend_from_slice(segment);
            continue;
        }
        let overlap = crossfade.min(out.len()).min(segment.len() / 2);
        let base = out.len() - overlap;
        for (j, &incoming) in segment[..overlap].iter().enumerate() {
            let theta = (j as f64 + 0.5) / overlap as f64 * std::f64::consts::FRAC_PI_2;
            let outgoing = f64::from(out[base + j]);
            out[base + j] = (outgoing * theta.cos() + f64::from(incoming) * theta.sin()) as f32;
        }
        out.extend_from_slice(&segment[overlap..]);
    }
    out.truncate(samples);
    fade_out(&mut out, end_fade);
    out
}

/// A uniform integer in `0..n` (0 when n is 0).
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

fn energy(window: &[f32]) -> f64 {
    window.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// The start position near `target` whose following `window` samples are
/// quietest (searched within one window either side, in quarter steps).
fn quietest_start(clip: &[f32], target: usize, window: usize) -> usize {
    let last = clip.len().saturating_sub(3 * window);
    candidates(target, window, last)
        .min_by(|&a, &b| energy(&clip[a..a + window]).total_cmp(&energy(&clip[b..b + window])))
        .unwrap_or(0)
        .min(last)
}

/// The end position near `target` whose preceding `window` samples are
/// quietest.
fn quietest_end(clip: &[f32], target: usize, window: usize) -> usize {
    let len = clip.len();
    candidates(target, window, len)
        .filter(|&e| e >= window)
        .min_by(|&a, &b| energy(&clip[a - window..a]).total_cmp(&energy(&clip[b - window..b])))
        .unwrap_or(len)
}

fn candidates(target: usize, window: usize, limit: usize) -> impl Iterator<Item = usize> {
    let step = (window / 4).max(1);
    let low = target.saturating_sub(window);
    let high = (target + window).min(limit);
    (low..=high).step_by(step)
}

fn fade_out(samples: &mut [f32], length: usize) {
    let length = length.min(samples.len());
    let start = samples.len() - length;
    for (j, v) in samples[start..].iter_mut().enumerate() {
        let gain = 1.0 - (j as f32 + 1.0) / length as f32;
        *v *= gain;
    }
}

/// Generates a background of `seconds` seconds from one clip per two clip
/// lengths (one clip up to twice its length, which it fills with two
/// segments at different offsets), at most `variations` clips of the same
/// caption (seeds `seed`, `seed + 1`, ...), laid out by [`fit_to_length`].
/// Each clip costs a full generation, so a scene of 12 s does not pay for
/// two.
pub fn generate(
    engine: &mut Engine,
    request: &Request,
    seconds: f64,
    variations: usize,
    limits: LengthLimits,
    observer: &mut dyn Observer,
) -> Result<Vec<f32>, BackgroundError> {
    let samples = crate::background::checked_frames(seconds, engine.sample_rate(), 1, limits)?;
    let clip_samples = engine.clip_samples();
    let needed = samples.div_ceil(2 * clip_samples.max(1));
    let count = needed.clamp(1, variations.max(1));
    observer.clips(count);
    let mut clips = Vec::with_capacity(count);
    for index in 0..count {
        let mut clip_request = request.clone();
        clip_request.seed = request.seed.wrapping_add(index as u64);
        if index > 0 {
            clip_request.init_latents = None;
        }
        clips.push(engine.clip(&clip_request, index, observer)?);
    }
    Ok(fit_to_length(
        &clips,
        samples,
        engine.sample_rate(),
        request.seed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clip of noise shaped by a slow envelope with quiet dips, as
    /// ambiences have.
    fn clip(seed: u64, len: usize) -> Vec<f32> {
        let noise = super::super::noise::gaussian_latents(seed, len);
        noise
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let envelope = 0.55 + 0.45 * (i as f32 / 3000.0 + seed as f32).sin();
                0.2 * envelope * n
            })
            .collect()
    }

    fn largest_jump(x: &[f32]) -> f32 {
        x.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    }

    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        dot / (energy(a).sqrt() * energy(b).sqrt()).max(1e-30)
    }

    #[test]
    fn short_backgrounds_are_cut_with_a_fade() {
        let a = clip(1, 16_000);
        let out = fit_to_length(std::slice::from_ref(&a), 8_000, 16_000, 0);
        assert_eq!(out.len(), 8_000);
        assert_eq!(out[..7_000], a[..7_000]);
        assert_eq!(*out.last().unwrap(), 0.0);
        assert_eq!(
            fit_to_length(std::slice::from_ref(&a), 16_000, 16_000, 0),
            a
        );
    }

    #[test]
    fn long_backgrounds_have_no_seams_and_no_fixed_loop() {
        let rate = 16_000;
        let len = rate as usize * 10;
        let clips = [clip(1, len), clip(2, len)];
        let samples = rate as usize * 180;
        let out = fit_to_length(&clips, samples, rate, 7);
        assert_eq!(out.len(), samples);
        // Crossfades keep every sample-to-sample step within what the clips
        // themselves have (equal-power gains sum to at most √2).
        let source_jump = clips.iter().map(|c| largest_jump(c)).fold(0.0, f32::max);
        let jump = largest_jump(&out);
        assert!(jump <= 1.45 * source_jump, "jump {jump} vs {source_jump}");
        // No stretch repeats at the clip's period.
        let lag = len;
        for start in (0..samples - 2 * lag).step_by(lag) {
            let r = correlation(&out[start..start + lag], &out[start + lag..start + 2 * lag]);
            assert!(r < 0.5, "period {lag} repeats at {start}: r = {r}");
        }
        // Power stays even: no second is near silent or far louder.
        let rms: Vec<f64> = out
            .chunks(rate as usize)
            .map(|c| (energy(c) / c.len() as f64).sqrt())
            .collect();
        let mean = rms.iter().sum::<f64>() / rms.len() as f64;
        assert!(
            rms[..rms.len() - 1]
                .iter()
                .all(|r| *r > 0.2 * mean && *r < 2.5 * mean)
        );
        // Seeded: the same seed lays out the same background.
        assert_eq!(out, fit_to_length(&clips, samples, rate, 7));
        assert_ne!(out, fit_to_length(&clips, samples, rate, 8));
    }
}
