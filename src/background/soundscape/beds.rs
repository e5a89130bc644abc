//! Continuous layers: filtered noise beds, surf, wind, hums and insects.
//! Each renders stereo, left and right from independent noise so a bed
//! is wide, with its slow controls updated once a block.

use super::Layer;
use super::catalog::{Bed, Hum, Insects, Surf, Wind};
use super::dsp::{self, Colour, Filter, FilterKind, Noise, RATE, Rng, Smooth, Wander};

/// Filtered noise with a slow random swell.
pub(crate) struct NoiseBed {
    noise: [Noise; 2],
    filters: [Filter; 2],
    darken: Option<[Filter; 2]>,
    swell: Wander,
    recipe: Bed,
    level: Smooth,
    gain: f32,
    /// The block's noise, left and right, filtered in place.
    scratch: [Vec<f32>; 2],
}

impl NoiseBed {
    pub fn new(recipe: &Bed, mut rng: Rng) -> NoiseBed {
        let filter = || Filter::new(recipe.filter, recipe.hz, recipe.q);
        NoiseBed {
            noise: [
                Noise::new(recipe.noise, rng.next_u64()),
                Noise::new(recipe.noise, rng.next_u64()),
            ],
            filters: [filter(), filter()],
            darken: recipe
                .lowpass_hz
                .map(|hz| [0, 1].map(|_| Filter::new(FilterKind::Lowpass, hz, 0.7))),
            swell: Wander::new(rng.fork(), recipe.swell_hz),
            level: Smooth::new(1.0, 0.05),
            gain: dsp::db_to_gain(recipe.gain_db) * colour_gain(recipe.noise, recipe.filter),
            recipe: recipe.clone(),
            scratch: [Vec::new(), Vec::new()],
        }
    }
}

/// Brings the colours to comparable levels after their filters (white
/// noise through a high-pass is far louder than brown through one).
fn colour_gain(colour: Colour, filter: FilterKind) -> f32 {
    match (colour, filter) {
        (Colour::White, _) => 0.35,
        (Colour::Pink, FilterKind::Highpass) => 1.6,
        (Colour::Pink, _) => 0.9,
        (Colour::Brown, _) => 0.5,
    }
}

impl Layer for NoiseBed {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let swell = self.swell.advance(left.len());
        let r = &self.recipe;
        if r.sweep != 0.0 {
            let hz = r.hz * (1.0 + r.sweep * (2.0 * swell - 1.0));
            self.filters.iter_mut().for_each(|f| f.retune(hz));
        }
        let target = self.gain * (1.0 - r.swell_depth + r.swell_depth * swell);
        // Whole blocks through each stage (the same samples as one at a
        // time): the busy scene's beds are a third of its time.
        let n = left.len();
        let [l, rr] = &mut self.scratch;
        l.resize(n, 0.0);
        rr.resize(n, 0.0);
        Noise::fill_pair(&mut self.noise, l, rr);
        // Both channels' filters in one pass: their recursions overlap in
        // the CPU (a pass per filter would wait on each in turn).
        let [fl, fr] = &mut self.filters;
        match &mut self.darken {
            Some([dl, dr]) => {
                for i in 0..n {
                    let level = self.level.next(target);
                    left[i] += level * dl.next(fl.next(l[i]));
                    right[i] += level * dr.next(fr.next(rr[i]));
                }
            }
            None => {
                for i in 0..n {
                    let level = self.level.next(target);
                    left[i] += level * fl.next(l[i]);
                    right[i] += level * fr.next(rr[i]);
                }
            }
        }
    }
}

/// One surf "engine": waves that approach, crash and wash back.
struct WaveEngine {
    noise: Noise,
    filter: Filter,
    /// The foam's hiss, loudest at the crash.
    foam: Noise,
    foam_band: Filter,
    pan: (f32, f32),
    /// Seconds into the current wave, its length and strength.
    position: f32,
    length: f32,
    strength: f32,
    rng: Rng,
    level: Smooth,
}

impl WaveEngine {
    fn envelope(&self) -> f32 {
        // Approach over the first 35% (squared rise), then the wash decays.
        let x = self.position / self.length;
        let rise = 0.35;
        if x < rise {
            (x / rise).powi(2)
        } else {
            (-(x - rise) * 4.5).exp()
        }
    }
}

/// Waves from three engines (left, centre, right) over a low bed.
pub(crate) struct SurfLayer {
    engines: Vec<WaveEngine>,
    bed: [Noise; 2],
    bed_filters: [Filter; 2],
    period: f32,
    top_hz: f32,
    gain: f32,
}

impl SurfLayer {
    pub fn new(recipe: &Surf, mut rng: Rng) -> SurfLayer {
        let period = recipe.period_s.max(2.0);
        let engines = [-0.6f32, 0.0, 0.6]
            .iter()
            .map(|&pan| {
                let mut engine_rng = rng.fork();
                let length = period * (0.7 + 0.6 * engine_rng.unit());
                WaveEngine {
                    noise: Noise::new(Colour::Pink, engine_rng.next_u64()),
                    filter: Filter::new(FilterKind::Lowpass, 300.0, 0.6),
                    foam: Noise::new(Colour::White, engine_rng.next_u64()),
                    foam_band: Filter::new(FilterKind::Highpass, 2500.0, 0.6),
                    pan: dsp::pan_gains(pan),
                    position: length * engine_rng.unit(),
                    length,
                    strength: 0.6 + 0.4 * engine_rng.unit(),
                    rng: engine_rng,
                    level: Smooth::new(0.0, 0.05),
                }
            })
            .collect();
        SurfLayer {
            engines,
            bed: [
                Noise::new(Colour::Brown, rng.next_u64()),
                Noise::new(Colour::Brown, rng.next_u64()),
            ],
            bed_filters: [0, 1].map(|_| Filter::new(FilterKind::Lowpass, 180.0, 0.6)),
            period,
            top_hz: recipe.top_hz,
            gain: dsp::db_to_gain(recipe.gain_db),
        }
    }
}

impl Layer for SurfLayer {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let block_s = left.len() as f32 / RATE;
        for engine in &mut self.engines {
            engine.position += block_s;
            if engine.position >= engine.length {
                engine.position -= engine.length;
                engine.length = self.period * (0.7 + 0.6 * engine.rng.unit());
                engine.strength = 0.5 + 0.5 * engine.rng.unit();
            }
            let envelope = engine.envelope() * engine.strength;
            engine.filter.retune(150.0 + self.top_hz * envelope);
            let target = self.gain * 1.3 * envelope;
            for i in 0..left.len() {
                let level = engine.level.next(target);
                let body = engine.filter.next(engine.noise.sample());
                let foam = engine.foam_band.next(engine.foam.sample());
                let v = level * (body + 0.12 * level * foam);
                left[i] += engine.pan.0 * v;
                right[i] += engine.pan.1 * v;
            }
        }
        let bed = 0.12 * self.gain;
        for i in 0..left.len() {
            left[i] += bed * self.bed_filters[0].next(self.bed[0].sample());
            right[i] += bed * self.bed_filters[1].next(self.bed[1].sample());
        }
    }
}

/// Wind: noise through a band-pass that follows the wind speed; above a
/// speed narrow resonances whistle, their pitch rising with it.
pub(crate) struct WindLayer {
    noise: [Noise; 2],
    filters: [Filter; 2],
    whistles: Vec<(Filter, f32)>,
    whistle_noise: Noise,
    gusts: Wander,
    drift: Wander,
    level: Smooth,
    whistle_level: Smooth,
    recipe: Wind,
    gain: f32,
    /// The block's noise (left, right), the whistles' excitation and their
    /// sum.
    scratch: [Vec<f32>; 4],
}

impl WindLayer {
    pub fn new(recipe: &Wind, mut rng: Rng) -> WindLayer {
        let whistles = [1.0f32, 1.5, 2.1]
            .iter()
            .map(|ratio| {
                let hz = recipe.hz * 1.6 * ratio * (0.9 + 0.2 * rng.unit());
                (Filter::new(FilterKind::Bandpass, hz, 28.0), hz)
            })
            .collect();
        WindLayer {
            noise: [
                Noise::new(Colour::Pink, rng.next_u64()),
                Noise::new(Colour::Pink, rng.next_u64()),
            ],
            filters: [0, 1].map(|_| Filter::new(FilterKind::Bandpass, recipe.hz, recipe.q)),
            whistles,
            whistle_noise: Noise::new(Colour::White, rng.next_u64()),
            gusts: Wander::new(rng.fork(), recipe.gust_hz),
            drift: Wander::new(rng.fork(), recipe.gust_hz / 5.0),
            level: Smooth::new(0.0, 0.1),
            whistle_level: Smooth::new(0.0, 0.1),
            scratch: Default::default(),
            recipe: recipe.clone(),
            gain: dsp::db_to_gain(recipe.gain_db),
        }
    }
}

impl Layer for WindLayer {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        // Wind speed: gusts on a slower drift.
        let speed = 0.6 * self.gusts.advance(left.len()) + 0.4 * self.drift.advance(left.len());
        let hz = self.recipe.hz * (0.6 + 0.9 * speed);
        self.filters.iter_mut().for_each(|f| f.retune(hz));
        for (filter, base) in &mut self.whistles {
            filter.retune(*base * (0.8 + 0.5 * speed));
        }
        let target = self.gain * 1.8 * (0.15 + 0.85 * speed * speed);
        let whistle_target =
            self.gain * 0.8 * self.recipe.howl * ((speed - 0.35).max(0.0) / 0.65).powf(1.5);
        // Whole blocks through each stage (the same samples as one at a
        // time, in a fraction of the time).
        let n = left.len();
        let [l, r, excitation, whistle] = &mut self.scratch;
        for buffer in [&mut *l, &mut *r, &mut *excitation, &mut *whistle] {
            buffer.resize(n, 0.0);
        }
        Noise::fill_pair(&mut self.noise, l, r);
        dsp::filter_stereo(&mut self.filters, l, r);
        whistle.fill(0.0);
        if self.recipe.howl > 0.0 {
            self.whistle_noise.fill(excitation);
            for (filter, _) in &mut self.whistles {
                for (w, x) in whistle.iter_mut().zip(excitation.iter()) {
                    *w += filter.next(*x);
                }
            }
        }
        for i in 0..n {
            let level = self.level.next(target);
            let whistle_level = self.whistle_level.next(whistle_target);
            left[i] += level * l[i] + whistle_level * whistle[i];
            right[i] += level * r[i] + 0.8 * whistle_level * whistle[i];
        }
    }
}

/// A steady tone with harmonics, a slight wandering pitch, an optional
/// throb and a low noise floor.
pub(crate) struct HumLayer {
    phase: f64,
    hz: f32,
    amplitudes: Vec<f32>,
    wobble: Wander,
    noise: [Noise; 2],
    noise_filters: [Filter; 2],
    noise_gain: f32,
    throb_phase: f32,
    throb_hz: f32,
    gain: f32,
}

impl HumLayer {
    pub fn new(recipe: &Hum, mut rng: Rng) -> HumLayer {
        let count = recipe.harmonics.clamp(1, 24);
        let amplitudes: Vec<f32> = (0..count)
            .map(|k| dsp::db_to_gain(recipe.rolloff_db * k as f32))
            .collect();
        let norm = 1.0 / amplitudes.iter().map(|a| a * a).sum::<f32>().sqrt();
        HumLayer {
            phase: f64::from(rng.unit()),
            hz: recipe.hz,
            amplitudes: amplitudes.iter().map(|a| a * norm).collect(),
            wobble: Wander::new(rng.fork(), 0.3),
            noise: [
                Noise::new(Colour::Brown, rng.next_u64()),
                Noise::new(Colour::Brown, rng.next_u64()),
            ],
            noise_filters: [0, 1]
                .map(|_| Filter::new(FilterKind::Lowpass, (recipe.hz * 4.0).max(150.0), 0.7)),
            noise_gain: dsp::db_to_gain(recipe.noise_db),
            throb_phase: rng.unit(),
            throb_hz: recipe.throb_hz,
            gain: 0.25 * dsp::db_to_gain(recipe.gain_db),
        }
    }
}

impl Layer for HumLayer {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let hz = self.hz * (1.0 + 0.006 * (2.0 * self.wobble.advance(left.len()) - 1.0));
        let step = f64::from(hz / RATE);
        let highest = (0.45 * RATE / hz) as usize;
        // The carrier and the throb as rotating phasors, set from the
        // exact (f64) phase at each block: no libm call a sample.
        let tau = std::f64::consts::TAU;
        let mut carrier = dsp::Phasor::new(tau * self.phase, tau * step);
        let throb_step = f64::from(self.throb_hz / RATE);
        let mut throb_phasor =
            dsp::Phasor::new(tau * f64::from(self.throb_phase), tau * throb_step);
        let n = left.len();
        self.phase = (self.phase + step * n as f64).fract();
        self.throb_phase = (f64::from(self.throb_phase) + throb_step * n as f64).fract() as f32;
        for i in 0..n {
            let (sine, cosine) = carrier.advance();
            // The harmonics by the Chebyshev recurrence
            // sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x): one sine and
            // one cosine a sample, however many harmonics.
            let (mut previous, mut current) = (0.0f32, sine);
            let mut tone = 0.0f32;
            for a in self.amplitudes.iter().take(highest) {
                tone += a * current;
                let next = 2.0 * cosine * current - previous;
                (previous, current) = (current, next);
            }
            let throb = if self.throb_hz > 0.0 {
                0.6 + 0.4 * throb_phasor.advance().0
            } else {
                1.0
            };
            let v = self.gain * throb * tone;
            let nl = self.noise_gain * self.noise_filters[0].next(self.noise[0].sample());
            let nr = self.noise_gain * self.noise_filters[1].next(self.noise[1].sample());
            left[i] += v + self.gain * nl;
            right[i] += v + self.gain * nr;
        }
    }
}

/// One insect: a chirp of carrier pulses, then silence until the next.
struct Insect {
    hz: f32,
    phase: f32,
    pan: (f32, f32),
    level: f32,
    /// Samples into the current chirp cycle, and its length.
    position: usize,
    cycle: usize,
    pulses: u32,
    /// Samples left of the current bout of song, or of the pause after it.
    bout_left: usize,
    singing: bool,
    noise: Noise,
    band: Filter,
    rng: Rng,
}

/// A bout of song: crickets sing for seconds, fall silent, and start again
/// (each on its own), so a chorus swells and thins slowly.
const BOUT_S: [f32; 2] = [3.0, 10.0];
const PAUSE_S: [f32; 2] = [0.5, 3.0];

/// Crickets (tonal pulses in chirps) or cicadas (a pulsed noise band in
/// long swells), several individuals at their own pitch, rhythm and place.
pub(crate) struct InsectLayer {
    insects: Vec<Insect>,
    recipe: Insects,
    pulse: usize,
    pulse_period: usize,
    gain: f32,
}

impl InsectLayer {
    pub fn new(recipe: &Insects, mut rng: Rng, density: f32) -> InsectLayer {
        let count = ((recipe.individuals as f32 * density).round() as u32).clamp(1, 12);
        let insects = (0..count)
            .map(|_| {
                let mut own = rng.fork();
                let hz = own.between(recipe.carrier_hz);
                let cycle = (own.between(recipe.chirp_period_s) * RATE) as usize;
                Insect {
                    hz,
                    phase: own.unit(),
                    pan: dsp::pan_gains(own.signed() * 0.9),
                    level: dsp::db_to_gain(-6.0 * own.unit()),
                    position: (own.unit() * cycle as f32) as usize,
                    cycle: cycle.max(1),
                    pulses: own.count(recipe.pulses),
                    bout_left: (own.between(BOUT_S) * RATE) as usize,
                    singing: recipe.bouts,
                    noise: Noise::new(Colour::White, own.next_u64()),
                    band: Filter::new(FilterKind::Bandpass, hz, 6.0),
                    rng: own,
                }
            })
            .collect();
        InsectLayer {
            insects,
            pulse: (recipe.pulse_ms / 1000.0 * RATE) as usize,
            pulse_period: (recipe.pulse_period_ms / 1000.0 * RATE) as usize,
            gain: dsp::db_to_gain(recipe.gain_db) / (count as f32).sqrt(),
            recipe: recipe.clone(),
        }
    }
}

impl Layer for InsectLayer {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let (pulse, period) = (self.pulse.max(2), self.pulse_period.max(self.pulse.max(2)));
        for insect in &mut self.insects {
            let step = insect.hz / RATE;
            for i in 0..left.len() {
                if self.recipe.bouts {
                    insect.bout_left = insect.bout_left.saturating_sub(1);
                    if insect.bout_left == 0 {
                        insect.singing = !insect.singing;
                        let span = if insect.singing { BOUT_S } else { PAUSE_S };
                        insect.bout_left = ((insect.rng.between(span) * RATE) as usize).max(1);
                    }
                    if !insect.singing {
                        continue;
                    }
                }
                insect.position += 1;
                if insect.position >= insect.cycle {
                    insect.position = 0;
                    insect.cycle =
                        ((insect.rng.between(self.recipe.chirp_period_s) * RATE) as usize).max(1);
                    insect.pulses = insect.rng.count(self.recipe.pulses);
                }
                let index = insect.position / period;
                let within = insect.position % period;
                if index >= insect.pulses as usize || within >= pulse {
                    // Keep the oscillator running so pulses join smoothly.
                    insect.phase = (insect.phase + step).fract();
                    continue;
                }
                // A raised-cosine pulse: no clicks at its edges.
                let envelope =
                    0.5 - 0.5 * (std::f32::consts::TAU * within as f32 / pulse as f32).cos();
                let v = if self.recipe.noisy {
                    // Cicadas swell over their long song.
                    let song = insect.position as f32 / (insect.pulses as usize * period) as f32;
                    let swell = (std::f32::consts::PI * song).sin().max(0.0);
                    3.0 * swell * insect.band.next(insect.noise.sample())
                } else {
                    insect.phase = (insect.phase + step).fract();
                    let angle = std::f32::consts::TAU * insect.phase;
                    // The second and third harmonics about 9 dB down, as
                    // in the chirps of the field recordings (the wing's
                    // file-and-scraper strikes are not sinusoidal).
                    angle.sin() + 0.38 * (2.0 * angle).sin() + 0.35 * (3.0 * angle).sin()
                };
                let v = self.gain * insect.level * envelope * v;
                left[i] += insect.pan.0 * v;
                right[i] += insect.pan.1 * v;
            }
        }
    }
}
