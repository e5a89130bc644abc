//! Signal descriptors: what can be measured of a sound nobody listens to.
//! Spectral flatness and centroid, band energy, onset periodicity,
//! envelope modulation, spectral peaks, seams and repeats. The soundscape's
//! tests hold each source to the sound it names with them; a wrong sound
//! fails them, not only silence.

use realfft::RealFftPlanner;

/// The mono mix of interleaved frames.
pub fn mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    let channels = channels.max(1);
    interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// One channel of interleaved frames.
pub fn channel(interleaved: &[f32], channels: usize, index: usize) -> Vec<f32> {
    interleaved
        .chunks_exact(channels.max(1))
        .map(|f| f[index.min(f.len() - 1)])
        .collect()
}

/// A power spectrum averaged over Hann-windowed frames (Welch).
pub(crate) struct Spectrum {
    /// Hz per bin.
    pub(crate) bin_hz: f32,
    pub(crate) power: Vec<f64>,
}

impl Spectrum {
    /// `size` samples a frame (a power of two), half overlapping.
    pub fn of(x: &[f32], rate: u32, size: usize) -> Spectrum {
        let size = size.max(16);
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(size);
        let window: Vec<f32> = (0..size)
            .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / size as f32).cos())
            .collect();
        let mut input = fft.make_input_vec();
        let mut output = fft.make_output_vec();
        let mut power = vec![0f64; size / 2 + 1];
        let mut frames = 0;
        let mut start = 0;
        while start + size <= x.len().max(size) {
            for (i, v) in input.iter_mut().enumerate() {
                *v = x.get(start + i).copied().unwrap_or(0.0) * window[i];
            }
            if fft.process(&mut input, &mut output).is_ok() {
                for (p, c) in power.iter_mut().zip(&output) {
                    *p += f64::from(c.norm_sqr());
                }
                frames += 1;
            }
            start += size / 2;
            if x.len() < size {
                break;
            }
        }
        power
            .iter_mut()
            .for_each(|p| *p /= f64::from(frames.max(1)));
        Spectrum {
            bin_hz: rate as f32 / size as f32,
            power,
        }
    }

    fn bins(&self, low_hz: f32, high_hz: f32) -> std::ops::Range<usize> {
        let low = ((low_hz / self.bin_hz).ceil() as usize).max(1);
        let high = ((high_hz / self.bin_hz) as usize + 1).min(self.power.len());
        low..high.max(low)
    }

    /// Geometric over arithmetic mean of the power in a band: near 1 for
    /// noise, near 0 for tones.
    pub(crate) fn flatness(&self, low_hz: f32, high_hz: f32) -> f64 {
        let band = &self.power[self.bins(low_hz, high_hz)];
        if band.is_empty() {
            return 0.0;
        }
        let floor = 1e-20;
        let log_mean = band.iter().map(|p| (p + floor).ln()).sum::<f64>() / band.len() as f64;
        let mean = band.iter().sum::<f64>() / band.len() as f64 + floor;
        log_mean.exp() / mean
    }

    /// The frequency below which `share` of the power lies.
    pub(crate) fn percentile_hz(&self, share: f64) -> f32 {
        let total: f64 = self.power.iter().skip(1).sum();
        let mut sum = 0.0;
        for (i, p) in self.power.iter().enumerate().skip(1) {
            sum += p;
            if sum >= share * total {
                return i as f32 * self.bin_hz;
            }
        }
        (self.power.len() - 1) as f32 * self.bin_hz
    }

    /// Power-weighted mean frequency, Hz.
    pub(crate) fn centroid(&self) -> f64 {
        let total: f64 = self.power.iter().sum();
        let weighted: f64 = self
            .power
            .iter()
            .enumerate()
            .map(|(i, p)| i as f64 * f64::from(self.bin_hz) * p)
            .sum();
        weighted / total.max(1e-30)
    }

    /// Share of the power between two frequencies.
    pub(crate) fn band_share(&self, low_hz: f32, high_hz: f32) -> f64 {
        let total: f64 = self.power.iter().skip(1).sum();
        let band: f64 = self.power[self.bins(low_hz, high_hz)].iter().sum();
        band / total.max(1e-30)
    }

    /// The strongest peaks' frequencies (local maxima at least
    /// `min_gap_hz` apart), strongest first.
    #[cfg(test)]
    pub fn peaks(&self, count: usize, min_gap_hz: f32) -> Vec<f32> {
        let mut candidates: Vec<(usize, f64)> = (1..self.power.len() - 1)
            .filter(|&i| self.power[i] > self.power[i - 1] && self.power[i] >= self.power[i + 1])
            .map(|i| (i, self.power[i]))
            .collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut chosen: Vec<usize> = Vec::new();
        for (i, _) in candidates {
            if chosen
                .iter()
                .all(|&c| (c as f32 - i as f32).abs() * self.bin_hz >= min_gap_hz)
            {
                chosen.push(i);
                if chosen.len() == count {
                    break;
                }
            }
        }
        chosen.iter().map(|&i| self.refine(i)).collect()
    }

    /// A peak's frequency from a parabola through its bin and neighbours.
    #[cfg(test)]
    fn refine(&self, i: usize) -> f32 {
        let (a, b, c) = (
            self.power[i - 1].max(1e-30).ln(),
            self.power[i].max(1e-30).ln(),
            self.power[i + 1].max(1e-30).ln(),
        );
        let offset = 0.5 * (a - c) / (a - 2.0 * b + c);
        let offset = if offset.is_finite() {
            offset.clamp(-0.5, 0.5)
        } else {
            0.0
        };
        (i as f64 + offset) as f32 * self.bin_hz
    }
}

/// Spectral flatness frame by frame (8192 samples, 5.9 Hz bins at 48 kHz), over each frame's own
/// band (5th to 95th power percentile, at least an octave wide), as the
/// median over the frames within 30 dB of the loudest. A noise measures
/// about 0.5 (a single frame's periodogram fluctuates), a tone or a few
/// partials near 0, even when a chirp sweeps across a wide band over time
/// (which makes the long-term spectrum look flat).
pub(crate) fn frame_flatness(x: &[f32], rate: u32) -> f64 {
    let size = 8192;
    let frames: Vec<&[f32]> = x.chunks_exact(size).collect();
    let energies: Vec<f64> = frames
        .iter()
        .map(|f| f.iter().map(|v| f64::from(*v).powi(2)).sum())
        .collect();
    let loudest = energies.iter().copied().fold(0.0, f64::max);
    let mut values: Vec<f64> = frames
        .iter()
        .zip(&energies)
        .filter(|(_, e)| **e > loudest * 1e-3 && **e > 1e-12)
        .map(|(frame, _)| {
            let spectrum = Spectrum::of(frame, rate, size);
            let (low, high) = (spectrum.percentile_hz(0.05), spectrum.percentile_hz(0.95));
            let centre = (low.max(20.0) * high.max(20.0)).sqrt();
            let (low, high) = (low.min(centre / 1.42), high.max(centre * 1.42));
            spectrum.flatness(low, high)
        })
        .collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The level a source has while it sounds: the RMS of its loudest 30%
/// of 100 ms windows, in dBFS.
pub fn active_level_db(x: &[f32], rate: u32) -> f64 {
    let mut e: Vec<f32> = envelope(x, rate, 0.1);
    e.sort_by(|a, b| b.total_cmp(a));
    let top = &e[..(e.len() * 3 / 10).max(1).min(e.len())];
    let power = top.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / top.len().max(1) as f64;
    10.0 * power.max(1e-20).log10()
}

/// RMS level every `hop_s` seconds.
pub fn envelope(x: &[f32], rate: u32, hop_s: f32) -> Vec<f32> {
    let hop = ((hop_s * rate as f32) as usize).max(1);
    x.chunks(hop)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect()
}

/// Normalized autocorrelation of a mean-removed sequence at `lag`.
fn autocorrelation(x: &[f32], lag: usize) -> f64 {
    if lag >= x.len() {
        return 0.0;
    }
    let mean = x.iter().map(|v| f64::from(*v)).sum::<f64>() / x.len() as f64;
    let centred: Vec<f64> = x.iter().map(|v| f64::from(*v) - mean).collect();
    let energy: f64 = centred.iter().map(|v| v * v).sum();
    let product: f64 = centred[..centred.len() - lag]
        .iter()
        .zip(&centred[lag..])
        .map(|(a, b)| a * b)
        .sum();
    product / energy.max(1e-30) * x.len() as f64 / (x.len() - lag) as f64
}

/// Onset strength every 10 ms: the rise of the log level.
pub(crate) fn onset_strength(x: &[f32], rate: u32) -> Vec<f32> {
    let levels: Vec<f32> = envelope(x, rate, 0.01)
        .iter()
        .map(|e| 20.0 * e.max(1e-6).log10())
        .collect();
    levels.windows(2).map(|w| (w[1] - w[0]).max(0.0)).collect()
}

/// Onsets per second: rises of the 10 ms level of at least `min_db` that
/// stand at least `above_median_db` over the median level.
pub(crate) fn onset_rate(x: &[f32], rate: u32, min_db: f32) -> f64 {
    let onsets = onset_strength(x, rate);
    let count = onsets
        .windows(3)
        .filter(|w| w[1] >= min_db && w[1] >= w[0] && w[1] > w[2])
        .count();
    count as f64 / (x.len() as f64 / f64::from(rate))
}

/// The strongest period of the onsets between two lags, in seconds, and
/// how strong it is (autocorrelation, up to 1).
pub fn onset_period(x: &[f32], rate: u32, min_s: f32, max_s: f32) -> (f32, f64) {
    let onsets = onset_strength(x, rate);
    let (low, high) = ((min_s / 0.01) as usize, (max_s / 0.01) as usize);
    (low.max(1)..=high.min(onsets.len().saturating_sub(1)))
        .map(|lag| (lag as f32 * 0.01, autocorrelation(&onsets, lag)))
        .fold(
            (0.0, f64::MIN),
            |best, c| if c.1 > best.1 { c } else { best },
        )
}

/// How much the level swings: standard deviation over mean of the
/// envelope every `hop_s`.
pub fn modulation_depth(x: &[f32], rate: u32, hop_s: f32) -> f64 {
    let e = envelope(x, rate, hop_s);
    let mean = e.iter().map(|v| f64::from(*v)).sum::<f64>() / e.len().max(1) as f64;
    let variance = e
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / e.len().max(1) as f64;
    variance.sqrt() / mean.max(1e-30)
}

/// The share of the envelope's modulation power (0.05 to 10 Hz) that lies
/// below `cutoff_hz`: a surf's slow swell is mostly below 0.35 Hz.
pub(crate) fn slow_modulation_share(x: &[f32], rate: u32, cutoff_hz: f32) -> f64 {
    let hop = 0.05; // 20 envelope values a second
    let e = envelope(x, rate, hop);
    let size = e.len().next_power_of_two();
    let mut padded = e.clone();
    let mean = e.iter().sum::<f32>() / e.len().max(1) as f32;
    padded.iter_mut().for_each(|v| *v -= mean);
    padded.resize(size, 0.0);
    let spectrum = Spectrum::of(&padded, 20, size);
    let power =
        |low: f32, high: f32| -> f64 { spectrum.power[spectrum.bins(low, high)].iter().sum() };
    power(0.05, cutoff_hz) / power(0.05, 10.0).max(1e-30)
}

/// The largest envelope autocorrelation at lags over `min_lag_s` (1 s
/// envelope frames): a looped background peaks at its loop length.
pub fn largest_repeat(x: &[f32], rate: u32, min_lag_s: f32) -> f64 {
    let e = envelope(x, rate, 0.25);
    let low = (min_lag_s / 0.25).ceil() as usize;
    (low..e.len() / 2)
        .map(|lag| autocorrelation(&e, lag))
        .fold(f64::MIN, f64::max)
}

/// The largest sample-to-sample step relative to the RMS of the steps in
/// the 20 ms around it. Noise has its largest step within about 4 times
/// its typical one; a discontinuity in a smooth sound (a seam, a clipped
/// edge, an envelope that jumps) stands tens of times above.
pub fn largest_step_ratio(x: &[f32], rate: u32) -> f64 {
    let window = ((0.02 * rate as f32) as usize).max(4);
    let steps: Vec<f64> = x.windows(2).map(|w| f64::from(w[1] - w[0])).collect();
    let mut worst = 0f64;
    for chunk in steps.chunks(window) {
        let rms = (chunk.iter().map(|v| v * v).sum::<f64>() / chunk.len() as f64).sqrt();
        let largest = chunk.iter().fold(0f64, |m, v| m.max(v.abs()));
        if rms > 1e-7 {
            worst = worst.max(largest / rms);
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, seconds: f32) -> Vec<f32> {
        (0..(seconds * 48_000.0) as usize)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn descriptors_tell_tones_from_noise() {
        let t = tone(1000.0, 2.0);
        let noise = crate::audio::noise::gaussian(1, 96_000);
        let (st, sn) = (
            Spectrum::of(&t, 48_000, 4096),
            Spectrum::of(&noise, 48_000, 4096),
        );
        assert!(st.flatness(100.0, 16_000.0) < 0.05);
        assert!(sn.flatness(100.0, 16_000.0) > 0.5);
        assert!((st.centroid() - 1000.0).abs() < 50.0);
        assert!(st.band_share(900.0, 1100.0) > 0.95);
        let peak = st.peaks(1, 50.0)[0];
        assert!((peak - 1000.0).abs() < 2.0, "{peak}");
    }

    #[test]
    fn a_click_is_a_large_step_and_a_ticking_has_its_period() {
        let mut t: Vec<f32> = tone(300.0, 1.0).iter().map(|v| 0.1 * v).collect();
        let smooth = largest_step_ratio(&t, 48_000);
        t[20_000] += 0.5;
        assert!(largest_step_ratio(&t, 48_000) > 3.0 * smooth);
        // A 2 Hz click train.
        let mut ticks = vec![0f32; 48_000 * 6];
        for k in 0..12 {
            for i in 0..200 {
                ticks[k * 24_000 + i] =
                    (0.5 - i as f32 / 400.0) * if i % 2 == 0 { 1.0 } else { -1.0 };
            }
        }
        let (period, strength) = onset_period(&ticks, 48_000, 0.2, 2.0);
        assert!((period - 0.5).abs() < 0.02, "{period}");
        assert!(strength > 0.5);
    }
}
