//! A sound's profile: the few numbers a listener's ear follows when it
//! tells rain from wind or a hoof from a hammer, all independent of level.
//!
//! - the spectral envelope: each octave-wide band's share of the energy
//!   (60 Hz to 10 kHz: the references include files sampled at 22 kHz);
//! - the texture: spectral flatness, noise near 1 and tones near 0;
//! - the rhythm: the envelope's modulation spectrum (how much the level
//!   swings at 0.25 to 45 Hz: a swell, a gait, a flutter, a rattle) and
//!   the onset rate;
//! - the events' shape: the level's spread and whether it rises faster than
//!   it falls (a struck thing) or the other way;
//! - the calls: the share of frames with a clear pitch and how fast that
//!   pitch moves (a bird's glide against a bell's steady partials).
//!
//! Following the auditory texture statistics of McDermott & Simoncelli
//! ("Sound texture perception via statistics of the auditory periphery",
//! Neuron 2011): band energies and envelope modulation are what listeners
//! recognize a texture by.

use realfft::RealFftPlanner;

/// Samples a frame (21 ms at 48 kHz) and between frames.
const FRAME: usize = 1024;
const HOP: usize = 512;
/// Octave bands, Hz.
const BANDS: [f32; 8] = [
    60.0, 150.0, 300.0, 600.0, 1_200.0, 2_400.0, 4_800.0, 10_000.0,
];
/// Envelope modulation bands, Hz.
const MODULATION: [f32; 6] = [0.25, 1.0, 3.0, 8.0, 20.0, 45.0];
/// How far a frame's strongest bin must stand over the band's median for
/// the frame to have a pitch.
const PITCH_PROMINENCE_DB: f64 = 18.0;

/// The names of a profile's values, in order.
pub(crate) const FEATURES: [&str; 27] = [
    "band 60-150",
    "band 150-300",
    "band 300-600",
    "band 600-1k2",
    "band 1k2-2k4",
    "band 2k4-4k8",
    "band 4k8-10k",
    "flatness",
    "mod 0.25-1",
    "mod 1-3",
    "mod 3-8",
    "mod 8-20",
    "mod 20-45",
    "onsets/s",
    "spread dB",
    "rise/fall",
    "pitched",
    "glide",
    "active",
    "swing <300",
    "swing 300-1k2",
    "swing 1k2-4k8",
    "swing >4k8",
    "skew <300",
    "skew 300-1k2",
    "skew 1k2-4k8",
    "skew >4k8",
];
/// The bands whose envelopes' swing and skew are measured: pairs of
/// octave bands (indices into `BANDS`' bands), low, low mid, high mid, high.
const ENVELOPE_BANDS: [(usize, usize); 4] = [(0, 2), (2, 4), (4, 6), (6, 7)];

/// What the ear follows of one sound; see the module's comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub values: [f64; FEATURES.len()],
}

/// One frame's spectrum summary.
struct Frame {
    energy: f64,
    bands: [f64; BANDS.len() - 1],
    flatness: f64,
    /// The strongest bin's frequency, when it stands out.
    pitch_hz: Option<f64>,
}

impl Profile {
    /// The profile of mono samples at `rate` Hz; `None` for silence or
    /// for less than half a second.
    pub fn of(x: &[f32], rate: u32) -> Option<Profile> {
        if x.len() < rate as usize / 2 {
            return None;
        }
        let frames = frames(x, rate);
        let loudest = frames.iter().map(|f| f.energy).fold(0.0, f64::max);
        if loudest <= 1e-12 {
            return None;
        }
        // Frames within 40 dB of the loudest: what a listener hears of it.
        let active: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.energy > loudest * 1e-4)
            .collect();
        let mut v = [0f64; FEATURES.len()];
        let total: f64 = active.iter().map(|f| f.bands.iter().sum::<f64>()).sum();
        for (b, value) in v.iter_mut().take(BANDS.len() - 1).enumerate() {
            let share = active.iter().map(|f| f.bands[b]).sum::<f64>() / total.max(1e-30);
            *value = 10.0 * share.max(1e-4).log10();
        }
        v[7] = median(active.iter().map(|f| f.flatness).collect());
        let levels: Vec<f64> = frames
            .iter()
            .map(|f| 10.0 * f.energy.max(loudest * 1e-6).log10())
            .collect();
        let frame_rate = f64::from(rate) / HOP as f64;
        for (i, power) in modulation_bands(&frames, frame_rate).iter().enumerate() {
            v[8 + i] = 10.0 * power.max(1e-6).log10();
        }
        v[13] = (1.0 + onsets(&levels) / (x.len() as f64 / f64::from(rate))).ln();
        v[14] = percentile(&levels, 0.9) - percentile(&levels, 0.1);
        v[15] = rise_over_fall(&levels);
        let pitched: Vec<Option<f64>> = frames.iter().map(|f| f.pitch_hz).collect();
        v[16] = pitched.iter().filter(|p| p.is_some()).count() as f64 / frames.len() as f64;
        v[17] = glide(&pitched, frame_rate);
        v[18] = active.len() as f64 / frames.len() as f64;
        for (i, (from, to)) in ENVELOPE_BANDS.iter().enumerate() {
            let envelope: Vec<f64> = active
                .iter()
                .map(|f| f.bands[*from..*to].iter().sum::<f64>().sqrt())
                .collect();
            let (swing, skew) = swing_and_skew(&envelope);
            v[19 + i] = swing;
            v[23 + i] = skew;
        }
        Some(Profile { values: v })
    }
}

/// Euclidean distance between two profiles' values (or any two parts of
/// them, scaled or not).
pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The frames' spectra, Hann-windowed.
fn frames(x: &[f32], rate: u32) -> Vec<Frame> {
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(FRAME);
    let window: Vec<f32> = (0..FRAME)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / FRAME as f32).cos())
        .collect();
    let bin_hz = rate as f32 / FRAME as f32;
    let bin = |hz: f32| ((hz / bin_hz).round() as usize).clamp(1, FRAME / 2);
    let edges: Vec<usize> = BANDS.iter().map(|hz| bin(*hz)).collect();
    let (low, high) = (bin(150.0), bin(10_000.0));
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    let mut power = vec![0f64; FRAME / 2 + 1];
    let mut out = Vec::with_capacity(x.len() / HOP);
    let mut start = 0;
    while start + FRAME <= x.len() {
        for (i, v) in input.iter_mut().enumerate() {
            *v = x[start + i] * window[i];
        }
        start += HOP;
        if fft.process(&mut input, &mut output).is_err() {
            continue;
        }
        for (p, c) in power.iter_mut().zip(&output) {
            *p = f64::from(c.norm_sqr());
        }
        let mut bands = [0f64; BANDS.len() - 1];
        for (b, band) in bands.iter_mut().enumerate() {
            *band = power[edges[b]..edges[b + 1]].iter().sum();
        }
        let span = &power[low..high];
        let mean = span.iter().sum::<f64>() / span.len() as f64;
        let log_mean = span.iter().map(|p| p.max(1e-20).ln()).sum::<f64>() / span.len() as f64;
        let flatness = log_mean.exp() / mean.max(1e-30);
        let (peak_bin, peak) =
            span.iter().enumerate().fold(
                (0, 0f64),
                |best, (i, p)| if *p > best.1 { (i, *p) } else { best },
            );
        // Against its neighbourhood (a third of an octave either side, the
        // peak's own bins left out), so that a steep noise spectrum does
        // not count as a pitch.
        let reach = (peak_bin / 4).max(6);
        let around: Vec<f64> = span
            [peak_bin.saturating_sub(reach)..(peak_bin + reach + 1).min(span.len())]
            .iter()
            .enumerate()
            .filter(|(i, _)| i.abs_diff(peak_bin.min(reach)) > 2)
            .map(|(_, p)| *p)
            .collect();
        let middle = median(around);
        let pitch_hz = (10.0 * (peak / middle.max(1e-30)).log10() > PITCH_PROMINENCE_DB)
            .then(|| f64::from(bin_hz) * (low + peak_bin) as f64);
        out.push(Frame {
            energy: bands.iter().sum(),
            bands,
            flatness,
            pitch_hz,
        });
    }
    out
}

/// The power of the envelope's relative swings in each modulation band:
/// the level frame by frame over its mean, its periodogram summed per band
/// (per frame, so that a short clip and a long one compare).
fn modulation_bands(frames: &[Frame], frame_rate: f64) -> [f64; MODULATION.len() - 1] {
    let envelope: Vec<f64> = frames.iter().map(|f| f.energy.sqrt()).collect();
    let mean = envelope.iter().sum::<f64>() / envelope.len().max(1) as f64;
    let size = envelope.len().next_power_of_two().max(16);
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(size);
    let mut input = fft.make_input_vec();
    for (slot, e) in input.iter_mut().zip(&envelope) {
        *slot = e / mean.max(1e-30) - 1.0;
    }
    let mut output = fft.make_output_vec();
    let mut bands = [0f64; MODULATION.len() - 1];
    if fft.process(&mut input, &mut output).is_err() {
        return bands;
    }
    let hz_per_bin = frame_rate / size as f64;
    for (i, c) in output.iter().enumerate().skip(1) {
        let hz = i as f64 * hz_per_bin;
        if let Some(b) = MODULATION
            .windows(2)
            .position(|w| hz >= f64::from(w[0]) && hz < f64::from(w[1]))
        {
            bands[b] += c.norm_sqr();
        }
    }
    let n = envelope.len().max(1) as f64;
    bands.iter_mut().for_each(|b| *b /= n * n);
    bands
}

/// Onsets: rises of the frame level of over 6 dB within two frames that
/// stand over the median level, at most one every 50 ms.
fn onsets(levels: &[f64]) -> f64 {
    let floor = percentile(levels, 0.5);
    let mut count = 0;
    let mut last = 0usize;
    for i in 2..levels.len() {
        let rise = levels[i] - levels[i - 2];
        if rise > 6.0 && levels[i] > floor + 3.0 && (count == 0 || i - last >= 5) {
            count += 1;
            last = i;
        }
    }
    f64::from(count)
}

/// How much faster the level rises than it falls: the mean of the largest
/// tenth of the rises over that of the falls, in dB (a struck sound far
/// above 0, a swell near 0).
fn rise_over_fall(levels: &[f64]) -> f64 {
    let steps: Vec<f64> = levels.windows(2).map(|w| w[1] - w[0]).collect();
    let mut rises: Vec<f64> = steps.iter().copied().filter(|s| *s > 0.0).collect();
    let mut falls: Vec<f64> = steps.iter().filter(|s| **s < 0.0).map(|s| -s).collect();
    let top = |v: &mut Vec<f64>| -> f64 {
        v.sort_by(|a, b| b.total_cmp(a));
        let n = (v.len() / 10).max(1).min(v.len());
        v[..n].iter().sum::<f64>() / n.max(1) as f64
    };
    if rises.is_empty() || falls.is_empty() {
        return 0.0;
    }
    20.0 * (top(&mut rises).max(1e-3) / top(&mut falls).max(1e-3)).log10()
}

/// How fast a pitch moves, in octaves a second: the median over pairs of
/// neighbouring pitched frames whose pitches lie within an octave.
fn glide(pitches: &[Option<f64>], frame_rate: f64) -> f64 {
    let moves: Vec<f64> = pitches
        .windows(2)
        .filter_map(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) => {
                let octaves = (b / a).log2().abs();
                (octaves < 1.0).then_some(octaves * frame_rate)
            }
            _ => None,
        })
        .collect();
    if moves.is_empty() {
        return 0.0;
    }
    (1.0 + median(moves)).ln()
}

/// A band envelope's standard deviation over its mean (how much it
/// swings) and its skewness (rare peaks over a floor, as drops on a roof,
/// against a level that dips, as a swell): the marginal statistics of
/// McDermott & Simoncelli's texture model.
fn swing_and_skew(envelope: &[f64]) -> (f64, f64) {
    let n = envelope.len().max(1) as f64;
    let mean = envelope.iter().sum::<f64>() / n;
    let var = envelope.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    if sd <= 1e-30 || mean <= 1e-30 {
        return (0.0, 0.0);
    }
    let skew = envelope
        .iter()
        .map(|e| ((e - mean) / sd).powi(3))
        .sum::<f64>()
        / n;
    ((sd / mean).ln_1p(), skew.signum() * skew.abs().ln_1p())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(values: &[f64], share: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * share).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::super::dsp::{Colour, Noise};
    use super::*;

    const RATE: u32 = 48_000;

    fn noise(seconds: f32) -> Vec<f32> {
        let mut n = Noise::new(Colour::White, 7);
        (0..(seconds * RATE as f32) as usize)
            .map(|_| 0.1 * n.sample())
            .collect()
    }

    #[test]
    fn noise_tone_and_clicks_differ_where_the_ear_hears_them() {
        let steady = Profile::of(&noise(4.0), RATE).unwrap();
        let tone: Vec<f32> = (0..RATE as usize * 4)
            .map(|i| 0.2 * (std::f32::consts::TAU * 880.0 * i as f32 / RATE as f32).sin())
            .collect();
        let tone = Profile::of(&tone, RATE).unwrap();
        let clicks: Vec<f32> = noise(4.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (-((i % 24_000) as f32) / 1_000.0).exp())
            .collect();
        let clicks = Profile::of(&clicks, RATE).unwrap();
        assert!(steady.values[7] > 0.4 && tone.values[7] < 0.05, "flatness");
        assert!(
            tone.values[16] > 0.9 && steady.values[16] < 0.1,
            "pitched share"
        );
        // Two clicks a second: onsets, a wide spread, a fast rise.
        assert!(
            (clicks.values[13] - 3f64.ln()).abs() < 0.3,
            "onsets {}",
            clicks.values[13]
        );
        assert!(
            clicks.values[14] > 20.0 && steady.values[14] < 3.0,
            "spread"
        );
        assert!(clicks.values[15] > 10.0, "rise/fall {}", clicks.values[15]);
        // Their rhythm is in the 1-3 Hz band, far above a steady noise's.
        assert!(clicks.values[9] > steady.values[9] + 20.0, "modulation");
        // Level does not matter.
        let quieter: Vec<f32> = noise(4.0).iter().map(|v| v * 0.01).collect();
        let quieter = Profile::of(&quieter, RATE).unwrap();
        for (a, b) in steady.values.iter().zip(&quieter.values) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        assert!(Profile::of(&vec![0.0; RATE as usize], RATE).is_none());
    }
}
