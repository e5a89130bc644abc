//! Event layers: drops, ticks, steps, strikes, calls, creaks, thunder and
//! passing traffic. A [`Schedule`] says when (Poisson or a rhythm, in
//! groups with rests); each event is synthesized when it starts, every one
//! a little different (pitch, length, level, position), so nothing sounds
//! sampled or looped; the layer mixes the events that are sounding.

use super::Layer;
use super::catalog::{Calls, Creaks, Excite, Impacts, Modal, Passby, Thunder, Timing};
use super::dsp::{self, Colour, Filter, FilterKind, Noise, RATE, Rng};

/// Longest single event, seconds (bells ring longest).
const MAX_EVENT_S: f32 = 9.0;

/// Longest wait between two events of a Poisson layer, seconds (a
/// listener who was promised a bell hears one at least this often).
pub(crate) const MAX_GAP_S: f32 = 8.0;

/// When the events of a layer start.
pub(crate) struct Schedule {
    timing: Timing,
    density: f32,
    rng: Rng,
    /// Start of the current period, seconds; next beat; periods left in
    /// the group.
    period_start: f64,
    period: f64,
    beat: usize,
    periods_left: u32,
    /// Poisson: the next event's time.
    next_poisson: f64,
    /// Events so far, for accents and pitches.
    count: usize,
}

/// One scheduled event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Beat {
    pub at_s: f64,
    pub level: f32,
    pub pitch: f32,
}

impl Schedule {
    /// `density` scales Poisson rates and shortens rests (a busy scene).
    pub fn new(timing: &Timing, density: f32, mut rng: Rng) -> Schedule {
        let mut schedule = Schedule {
            timing: timing.clone(),
            density: density.max(0.05),
            period_start: 0.0,
            period: f64::from(timing.period_s.unwrap_or(1.0).max(0.01)),
            beat: 0,
            periods_left: 0,
            next_poisson: 0.0,
            count: 0,
            rng: rng.fork(),
        };
        if let Some(rate) = timing.per_s {
            // The first event comes early, so a short scene hears a sparse
            // source at least once; after it, the process runs at its rate.
            let mean = 1.0 / (rate * schedule.density).max(1e-6);
            schedule.next_poisson = f64::from(rng.unit() * mean.min(2.0));
        } else {
            // One period more than the group: entering the rhythm below
            // must not use up the first group and start the scene with a
            // rest.
            schedule.periods_left = schedule.group_length().saturating_add(1);
            // Enter the rhythm somewhere inside its first period.
            schedule.period_start = -f64::from(rng.unit()) * schedule.period;
            schedule.skip_past(0.0);
        }
        schedule
    }

    fn group_length(&mut self) -> u32 {
        self.timing.group.map_or(u32::MAX, |g| self.rng.count(g))
    }

    /// Moves the rhythm so its next beat is at or after `time`.
    fn skip_past(&mut self, time: f64) {
        while self.beat_time() < time {
            self.advance_beat();
        }
    }

    fn beat_time(&self) -> f64 {
        let offset = self.timing.beats.get(self.beat).copied().unwrap_or(0.0);
        self.period_start + f64::from(offset)
    }

    fn advance_beat(&mut self) {
        self.beat += 1;
        if self.beat < self.timing.beats.len() {
            return;
        }
        self.beat = 0;
        self.period_start += self.period;
        let base = f64::from(self.timing.period_s.unwrap_or(1.0).max(0.01));
        self.period = base * (1.0 + f64::from(self.timing.drift * self.rng.signed()));
        self.periods_left = self.periods_left.saturating_sub(1);
        if self.periods_left == 0 {
            if let Some(rest) = self.timing.rest_s {
                self.period_start += f64::from(self.rng.between(rest) / self.density);
            }
            self.periods_left = self.group_length();
        }
    }

    /// The next event starting before `until` (seconds), if any.
    pub(crate) fn next_before(&mut self, until: f64) -> Option<Beat> {
        let (at_s, index) = if let Some(rate) = self.timing.per_s {
            if self.next_poisson >= until {
                return None;
            }
            let at = self.next_poisson;
            // A sparse source is still heard: never a longer gap than
            // MAX_GAP_S (a rare thunder would otherwise leave a scene
            // silent of the sound its caption named).
            let gap = self.rng.exponential(rate * self.density).min(MAX_GAP_S);
            self.next_poisson += f64::from(gap);
            (at, self.count)
        } else {
            let jitter = f64::from(self.timing.jitter_ms / 1000.0 * self.rng.signed());
            let at = self.beat_time();
            if at + jitter.max(0.0) >= until {
                return None;
            }
            let index = self.beat;
            self.advance_beat();
            ((at + jitter).max(0.0), index)
        };
        self.count += 1;
        let cycled = |values: &[f32], default: f32| {
            if values.is_empty() {
                default
            } else {
                values[index % values.len()]
            }
        };
        Some(Beat {
            at_s,
            level: dsp::db_to_gain(cycled(&self.timing.accents_db, 0.0)),
            pitch: cycled(&self.timing.pitches, 1.0),
        })
    }
}

/// Makes the sound of one event.
pub(crate) trait EventSynth: Send {
    /// A mono event and, for something that moves, its pan from start to
    /// end (else the layer places it).
    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>);
    /// How far events scatter around the layer's position.
    fn spread(&self) -> f32;
}

struct Sounding {
    samples: Vec<f32>,
    /// Where in `samples` the next block starts (negative: not yet).
    position: isize,
    pan: (f32, f32),
}

/// Events from a schedule through a synth, mixed as they sound.
pub(crate) struct EventLayer<S: EventSynth> {
    synth: S,
    schedule: Schedule,
    rng: Rng,
    sounding: Vec<Sounding>,
    /// Samples rendered so far.
    time: u64,
}

impl<S: EventSynth> EventLayer<S> {
    pub fn new(synth: S, timing: &Timing, density: f32, mut rng: Rng) -> Self {
        EventLayer {
            synth,
            schedule: Schedule::new(timing, density, rng.fork()),
            rng,
            sounding: Vec::new(),
            time: 0,
        }
    }
}

impl<S: EventSynth> Layer for EventLayer<S> {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let block = left.len();
        let end_s = (self.time + block as u64) as f64 / f64::from(RATE);
        while let Some(beat) = self.schedule.next_before(end_s) {
            let mut rng = self.rng.fork();
            let (samples, pan) = self.synth.make(beat, &mut rng);
            let start = (beat.at_s * f64::from(RATE)).round() as i64 - self.time as i64;
            let pan = pan.unwrap_or_else(|| {
                let at = self.synth.spread() * rng.signed();
                (at, at)
            });
            self.sounding.push(Sounding {
                samples,
                position: -(start.max(0) as isize),
                pan,
            });
        }
        for event in &mut self.sounding {
            // Pan gains at the block's two ends, interpolated between: a
            // moving source glides without a trigonometric call a sample.
            let len = event.samples.len() as f32;
            let pan_at = |index: isize| {
                let x = (index.max(0) as f32 / len).min(1.0);
                dsp::pan_gains(event.pan.0 + (event.pan.1 - event.pan.0) * x)
            };
            let (first, last) = (
                pan_at(event.position),
                pan_at(event.position + block as isize),
            );
            let first_index = (-event.position).max(0) as usize;
            let from = event.position.max(0) as usize;
            let available = event.samples.len().saturating_sub(from);
            let count = (block - first_index.min(block)).min(available);
            for (k, &v) in event.samples[from..from + count].iter().enumerate() {
                let i = first_index + k;
                let x = i as f32 / block as f32;
                left[i] += (first.0 + (last.0 - first.0) * x) * v;
                right[i] += (first.1 + (last.1 - first.1) * x) * v;
            }
            event.position += block as isize;
        }
        self.sounding
            .retain(|e| e.position < e.samples.len() as isize);
        self.time += block as u64;
    }
}

fn samples_for(seconds: f32) -> usize {
    (seconds.clamp(0.0, MAX_EVENT_S) * RATE) as usize
}

/// A short attack (1 ms) so no event starts with a step.
fn attack(samples: &mut [f32], seconds: f32) {
    let n = samples_for(seconds).min(samples.len()).max(1);
    for (i, s) in samples[..n].iter_mut().enumerate() {
        *s *= (i as f32 + 0.5) / n as f32;
    }
}

/// Drops, ticks, steps, splashes, crackles.
pub(crate) struct ImpactSynth {
    recipe: Impacts,
    gain: f32,
}

impl ImpactSynth {
    pub fn new(recipe: &Impacts) -> ImpactSynth {
        ImpactSynth {
            gain: dsp::db_to_gain(recipe.gain_db),
            recipe: recipe.clone(),
        }
    }
}

impl EventSynth for ImpactSynth {
    fn spread(&self) -> f32 {
        self.recipe.spread
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let r = &self.recipe;
        let hz = rng.between_log(r.hz) * beat.pitch;
        let seconds = rng.between(r.ms) / 1000.0;
        let level = self.gain * beat.level * dsp::db_to_gain(-r.vary_db * rng.unit());
        let mut out = match r.excite {
            Excite::Click => decaying_noise(rng, hz, r.q, seconds, 0.001, 2.5),
            Excite::Noise => decaying_noise(rng, hz, r.q, seconds, 0.2 * seconds, 0.9),
            Excite::Bubble => bubble(hz, seconds, rng),
            Excite::Grains => grains(rng, r.hz, r.q, seconds),
            Excite::Step => step(rng, hz, r.q, seconds, r.body_hz.map(|b| (b, r.body_db))),
            Excite::Hoof => hoof(rng, hz, r.q, seconds),
        };
        // A step carries its own body, under its swell.
        let body = r.body_hz.filter(|_| r.excite != Excite::Step);
        if let Some(body_hz) = body {
            // A low thud: a decaying sine with a soft attack.
            let body_hz = body_hz * (0.9 + 0.2 * rng.unit());
            let body_gain = dsp::db_to_gain(r.body_db) * 0.8;
            let length = samples_for(0.06).max(out.len());
            out.resize(length, 0.0);
            // The attack's and decay's exponentials and the sine as
            // recursions: a multiplication a sample each, not a libm call.
            let (attack_step, decay_step) = (
                (-1.0 / (0.0015 * RATE)).exp(),
                (-1.0 / (0.018 * RATE)).exp(),
            );
            let (mut attack, mut decay) = (1.0f32, 1.0f32);
            let mut sine = dsp::Phasor::new(0.0, 0.0);
            sine.retune(std::f32::consts::TAU * body_hz / RATE);
            for v in out.iter_mut() {
                *v += body_gain * (1.0 - attack) * decay * sine.sine();
                attack *= attack_step;
                decay *= decay_step;
                sine.advance();
            }
        }
        out.iter_mut().for_each(|v| *v *= level);
        (out, None)
    }
}

/// Band-passed noise with an attack and an exponential decay over
/// `seconds` (to about -40 dB), normalized to its band.
fn decaying_noise(
    rng: &mut Rng,
    hz: f32,
    q: f32,
    seconds: f32,
    attack_s: f32,
    boost: f32,
) -> Vec<f32> {
    let n = samples_for(seconds * 1.6).max(8);
    let mut out = band_noise(rng, hz, q, n);
    let tau = seconds.max(1e-4) / 4.6;
    let attack_n = samples_for(attack_s).max(24);
    let gain = boost * q.max(0.5).sqrt();
    // exp(-t / tau) as a running product: one multiplication a sample.
    let step = (-1.0 / (tau * RATE)).exp();
    let mut decay = gain;
    for v in &mut out {
        *v *= decay;
        decay *= step;
    }
    attack(&mut out, attack_n as f32 / RATE);
    fade_end(&mut out);
    out
}

/// A sine at `hz` dying over `seconds` (to about -40 dB).
fn decaying_sine(hz: f32, seconds: f32) -> Vec<f32> {
    let n = samples_for(seconds).max(8);
    let step = (-4.6 / n as f32).exp();
    let (mut sine, mut decay) = (dsp::Phasor::new(0.0, 0.0), 1.0f32);
    sine.retune(std::f32::consts::TAU * hz / RATE);
    let mut out: Vec<f32> = (0..n)
        .map(|_| {
            let v = decay * sine.sine();
            sine.advance();
            decay *= step;
            v
        })
        .collect();
    // A 10 ms attack: a thud, not a click.
    attack(&mut out, 0.01);
    out
}

/// `n` samples of white noise through a band-pass at `hz`.
fn band_noise(rng: &mut Rng, hz: f32, q: f32, n: usize) -> Vec<f32> {
    let mut noise = Noise::new(Colour::White, rng.next_u64());
    let mut band = Filter::new(FilterKind::Bandpass, hz, q);
    let mut out = vec![0f32; n];
    noise.fill(&mut out);
    band.process(&mut out);
    out
}

/// A bubble: a sine whose pitch rises as it decays (Minnaert resonance of
/// a shrinking bubble; van den Doel, "Physically based models for liquid
/// sounds", ACM TAP 2005).
fn bubble(hz: f32, seconds: f32, rng: &mut Rng) -> Vec<f32> {
    let n = samples_for(seconds * 1.5).max(8);
    let rise = 0.5 + rng.unit();
    let tau = seconds.max(1e-3) / 4.0;
    // The sine as a rotating phasor, its step retuned every 16 samples
    // (the pitch moves slowly), and the decay as a running product: no
    // libm call a sample.
    let decay_step = (-1.0 / (tau * RATE)).exp();
    let (mut phasor, mut decay) = (dsp::Phasor::new(0.0, 0.0), 0.5f32);
    let mut out = Vec::with_capacity(n);
    for block in (0..n).step_by(16) {
        let t = block as f32 / RATE;
        let f = hz * (1.0 + rise * t / seconds.max(1e-3));
        phasor.retune(std::f32::consts::TAU * f / RATE);
        for _ in block..(block + 16).min(n) {
            let (sine, _) = phasor.advance();
            out.push(decay * sine);
            decay *= decay_step;
        }
    }
    attack(&mut out, 0.001);
    fade_end(&mut out);
    out
}

/// Many tiny clicks over `seconds`: gravel or snow under a foot.
fn grains(rng: &mut Rng, hz: [f32; 2], q: f32, seconds: f32) -> Vec<f32> {
    let n = samples_for(seconds * 1.2).max(8);
    let mut out = vec![0f32; n];
    let count = 25 + (rng.unit() * 35.0) as usize;
    for _ in 0..count {
        // Grains bunch early, as the foot lands.
        let at = (rng.unit().powf(1.6) * seconds * RATE) as usize;
        let (centre, length) = (rng.between_log(hz), 0.002 + 0.004 * rng.unit());
        let grain = decaying_noise(rng, centre, q, length, 0.0005, 1.5);
        let level = 0.25 + 0.75 * rng.unit();
        for (i, g) in grain.iter().enumerate() {
            if let Some(o) = out.get_mut(at + i) {
                *o += level * g;
            }
        }
    }
    fade_end(&mut out);
    out
}

/// Adds `part` into `out` from sample `at`, growing `out` as needed.
fn add_at(out: &mut Vec<f32>, part: &[f32], at: usize, level: f32) {
    if out.len() < at + part.len() {
        out.resize(at + part.len(), 0.0);
    }
    for (o, p) in out[at..].iter_mut().zip(part) {
        *o += level * p;
    }
}

/// A footstep as a walking foot makes it: the heel lands (a soft, dull
/// knock), the sole rolls over the ground (the body of the sound: the
/// surface's band swelling as the weight comes on and dying as the foot
/// lifts, with the grit under it crunching), the toe pushes off (a lighter
/// knock) 50-70 % into the step. Follows the ground reaction force's two
/// peaks (Cook, "Modeling Bill's gait: analysis and parametric synthesis
/// of walking sounds", AES 22nd Conference, 2002; Farnell, "Designing
/// Sound", ch. 32 "Footsteps"). Real walking (0 A.D.'s recordings on
/// rock, gravel, wood and grass) swells for 100-150 ms and dies as
/// fast, a step lasting 250-350 ms: not a click and a decay.
fn step(rng: &mut Rng, hz: f32, q: f32, seconds: f32, body: Option<(f32, f32)>) -> Vec<f32> {
    let length = samples_for(seconds).max(8);
    let mut out = band_noise(rng, hz * 0.8, 0.7, length);
    if let Some((body_hz, body_db)) = body {
        // The heel's thud: the floor's low resonance, struck as the
        // weight comes on.
        let thud = decaying_sine(body_hz * (0.9 + 0.2 * rng.unit()), 0.05);
        add_at(
            &mut out,
            &thud,
            samples_for(0.12 * seconds),
            2.0 * dsp::db_to_gain(body_db),
        );
    }
    let grit = grains(rng, [hz * 0.8, hz * 3.0], q, seconds * 0.8);
    add_at(&mut out, &grit, 0, 0.35);
    let heel = decaying_noise(rng, hz * 0.55, q, 0.06, 0.01, 2.0);
    add_at(&mut out, &heel, samples_for(0.12 * seconds), 0.5);
    let toe_hz = hz * (1.0 + 0.3 * rng.unit());
    let toe = decaying_noise(rng, toe_hz, q, 0.04, 0.01, 2.0);
    let toe_at = samples_for(seconds * (0.5 + 0.2 * rng.unit()));
    add_at(
        &mut out,
        &toe,
        toe_at,
        dsp::db_to_gain(-7.0 - 3.0 * rng.unit()),
    );
    out.truncate(length);
    let n = length as f32;
    for (i, v) in out.iter_mut().enumerate() {
        // A half sine over the step, its peak a little early (the weight
        // comes on faster than it goes), in decibels: the level climbs
        // 40 dB and falls back evenly, a few dB every 10 ms as in the
        // recordings, instead of leaping out of the silence.
        let t = i as f32 / n;
        let swell = (std::f32::consts::PI * t.powf(0.95)).sin();
        *v *= 1.6 * dsp::db_to_gain(-40.0 * (1.0 - swell));
    }
    fade_end(&mut out);
    out
}

/// A hoof on cobbles: the heel of the hoof knocks, then its toe 15-35 ms
/// later, softer; each knock rings briefly in the hard band (`hz`) with a
/// 4 ms attack, not a click's (a hoof is horn, not metal). The thump
/// under it comes from the recipe's body.
fn hoof(rng: &mut Rng, hz: f32, q: f32, seconds: f32) -> Vec<f32> {
    let mut out = decaying_noise(rng, hz, q, seconds, 0.004, 2.0);
    let second_hz = hz * (0.85 + 0.3 * rng.unit());
    let second = decaying_noise(rng, second_hz, q, seconds, 0.004, 2.0);
    let gap = ((0.015 + 0.02 * rng.unit()) * RATE) as usize;
    add_at(
        &mut out,
        &second,
        gap,
        dsp::db_to_gain(-3.0 - 4.0 * rng.unit()),
    );
    // Horn on stone has little above a few kHz: white noise's skirts
    // above the band would hiss like a click.
    let mut dark = Filter::new(FilterKind::Lowpass, hz * 2.0, 0.7);
    out.iter_mut().for_each(|v| *v = dark.next(*v));
    fade_end(&mut out);
    out
}

/// The last 2 ms fade to zero: no event ends with a step.
fn fade_end(samples: &mut [f32]) {
    let n = samples_for(0.002).min(samples.len());
    let len = samples.len();
    for (j, s) in samples[len - n..].iter_mut().enumerate() {
        *s *= 1.0 - (j as f32 + 1.0) / n as f32;
    }
}

/// Struck bodies: decaying partials at fixed ratios.
pub(crate) struct ModalSynth {
    recipe: Modal,
    /// The layer's own pitch (one bell), unless every event gets one.
    hz: f32,
    gain: f32,
}

impl ModalSynth {
    pub fn new(recipe: &Modal, rng: &mut Rng) -> ModalSynth {
        ModalSynth {
            hz: rng.between_log(recipe.hz),
            gain: dsp::db_to_gain(recipe.gain_db),
            recipe: recipe.clone(),
        }
    }
}

impl EventSynth for ModalSynth {
    fn spread(&self) -> f32 {
        self.recipe.spread
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let r = &self.recipe;
        let hz = if r.new_pitch_each {
            rng.between_log(r.hz)
        } else {
            self.hz
        } * beat.pitch;
        // Each partial rings until it is 60 dB under the loudest one's
        // start (a quiet partial's tail would be inaudible sooner than
        // its own decay says): the bell's cost follows what is heard.
        let loudest = r.levels_db.iter().fold(f32::MIN, |m, l| m.max(*l));
        let audible_s: Vec<f32> = r
            .decays_s
            .iter()
            .zip(&r.levels_db)
            .map(|(decay, level)| decay * ((60.0 + level - loudest) / 60.0).clamp(0.05, 1.0))
            .collect();
        let longest = audible_s.iter().fold(0f32, |m, d| m.max(*d));
        let n = samples_for(longest);
        let mut out = vec![0f32; n.max(8)];
        let norm = 0.5 / (r.partials.len() as f32).sqrt();
        let strength = dsp::db_to_gain(-2.0 * rng.unit());
        // Each partial a decaying sinusoid (to -60 dB over its decay) as
        // the two-pole recursion y[n] = 2 r cos(w) y[n-1] - r^2 y[n-2]:
        // exact, and two multiplications a sample instead of a sine. The
        // partials are kept side by side (longest first) and stepped
        // together, so the CPU runs their recursions in parallel.
        let mut partials: Vec<(usize, [f32; 4])> = Vec::with_capacity(r.partials.len());
        let partial_recipes = r.partials.iter().zip(&r.decays_s).zip(&r.levels_db);
        for (((ratio, decay), level), audible) in partial_recipes.zip(&audible_s) {
            let f = hz * ratio * (1.0 + 0.002 * rng.signed());
            if f >= 0.45 * RATE {
                continue;
            }
            let r = (-6.9078 / (decay.max(0.01) * RATE)).exp();
            let amplitude = norm * dsp::db_to_gain(*level);
            let w = std::f32::consts::TAU * f / RATE;
            let phase = rng.unit() * 0.3;
            let length = samples_for(*audible).min(out.len());
            partials.push((
                length,
                [
                    2.0 * r * w.cos(),
                    r * r,
                    amplitude * (phase - w).sin() / r,
                    amplitude * phase.sin(),
                ],
            ));
        }
        partials.sort_by_key(|(length, _)| std::cmp::Reverse(*length));
        // Four lanes of partials (padded with silent ones): four sums run
        // side by side, so no single chain of additions holds up a sample.
        while !partials.len().is_multiple_of(4) {
            partials.push((0, [0.0; 4]));
        }
        let lengths: Vec<usize> = partials.iter().map(|(length, _)| *length).collect();
        let lanes = |k: usize| -> Vec<[f32; 4]> {
            partials
                .chunks_exact(4)
                .map(|c| [c[0].1[k], c[1].1[k], c[2].1[k], c[3].1[k]])
                .collect()
        };
        let (a1, a2, mut y2, mut y1) = (lanes(0), lanes(1), lanes(2), lanes(3));
        let mut ringing = lengths.len();
        for (i, o) in out.iter_mut().enumerate() {
            while ringing > 0 && lengths[ringing - 1] <= i {
                ringing -= 1;
            }
            if ringing == 0 {
                break;
            }
            // Whole lanes while any partial in them rings (one a little
            // past its length is 60 dB down already).
            let quads = ringing.div_ceil(4);
            let mut sum = [0f32; 4];
            for q in 0..quads {
                for j in 0..4 {
                    sum[j] += y1[q][j];
                    let y = a1[q][j] * y1[q][j] - a2[q][j] * y2[q][j];
                    (y2[q][j], y1[q][j]) = (y1[q][j], y);
                }
            }
            *o += (sum[0] + sum[1]) + (sum[2] + sum[3]);
        }
        // The strike: a short noise burst through a high band.
        let strike = decaying_noise(rng, (hz * 4.0).min(9000.0), 0.8, 0.004, 0.0005, 0.6);
        for (o, s) in out.iter_mut().zip(&strike) {
            *o += s;
        }
        attack(&mut out, 0.001);
        fade_end(&mut out);
        let level = self.gain * beat.level * strength;
        out.iter_mut().for_each(|v| *v *= level);
        (out, None)
    }
}

/// Voiced calls: a phrase of syllables gliding in pitch with harmonics.
pub(crate) struct CallSynth {
    recipe: Calls,
    gain: f32,
}

impl CallSynth {
    pub fn new(recipe: &Calls) -> CallSynth {
        CallSynth {
            gain: dsp::db_to_gain(recipe.gain_db),
            recipe: recipe.clone(),
        }
    }

    fn syllable(&self, rng: &mut Rng, voice: f32, out: &mut Vec<f32>) {
        let r = &self.recipe;
        let seconds = rng.between(r.syllable_ms) / 1000.0;
        let n = samples_for(seconds).max(16);
        let (start, end) = (
            rng.between_log(r.start_hz) * voice,
            rng.between_log(r.end_hz) * voice,
        );
        let harmonics = r.harmonics.clamp(1, 16);
        let amplitudes: Vec<f32> = (0..harmonics)
            .map(|k| dsp::db_to_gain(r.rolloff_db * k as f32))
            .collect();
        let norm = 0.4 / amplitudes.iter().sum::<f32>();
        let mut noise = Noise::new(Colour::White, rng.next_u64());
        let mut breath = Filter::new(FilterKind::Bandpass, (start + end) / 2.0, 2.0);
        let vibrato_phase = rng.unit();
        // The glide, hump, vibrato and envelope move slowly: they are
        // worked out every CONTROL samples (0.3 ms), the envelope
        // interpolated between, so only the carrier costs a sine a sample.
        const CONTROL: usize = 16;
        let control = |i: usize| {
            let x = i as f32 / n as f32;
            let t = i as f32 / RATE;
            let glide = start * (end / start).powf(x);
            let hump = 1.0 + r.hump * (std::f32::consts::PI * x).sin();
            let vibrato = 1.0
                + r.vibrato_depth
                    * (std::f32::consts::TAU * (r.vibrato_hz * t + vibrato_phase)).sin();
            // Rise over the first 15%, fall over the last 30%.
            let envelope = (x / 0.15).min(1.0).min((1.0 - x) / 0.3).max(0.0);
            (
                glide * hump * vibrato,
                (std::f32::consts::FRAC_PI_2 * envelope).sin(),
            )
        };
        let (mut f, mut envelope) = control(0);
        // The carrier as a rotating phasor (its sine and cosine), the step
        // retuned each control block: no libm call a sample.
        let mut phasor = dsp::Phasor::new(0.0, 0.0);
        for block in (0..n).step_by(CONTROL) {
            let (next_f, next_envelope) = control((block + CONTROL).min(n));
            let slope = (next_envelope - envelope) / CONTROL as f32;
            phasor.retune(std::f32::consts::TAU * f / RATE);
            for i in block..(block + CONTROL).min(n) {
                let (sine, cosine) = phasor.advance();
                // Harmonics by the Chebyshev recurrence.
                let (mut previous, mut current) = (0.0f32, sine);
                let mut v = 0.0;
                for (k, a) in amplitudes.iter().enumerate() {
                    if f * (k + 1) as f32 >= 0.45 * RATE {
                        break;
                    }
                    v += a * current;
                    (previous, current) = (current, 2.0 * cosine * current - previous);
                }
                v *= norm;
                if r.noise > 0.0 {
                    v = (1.0 - r.noise) * v + r.noise * 1.2 * breath.next(noise.sample());
                }
                if r.pulse_hz > 0.0 {
                    let t = i as f32 / RATE;
                    v *= 0.5 - 0.5 * (std::f32::consts::TAU * r.pulse_hz * t).cos();
                }
                out.push((envelope + slope * (i - block) as f32) * v);
            }
            (f, envelope) = (next_f, next_envelope);
        }
    }
}

impl EventSynth for CallSynth {
    fn spread(&self) -> f32 {
        self.recipe.spread
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let r = &self.recipe;
        // Each phrase is another individual: its own voice and loudness.
        let voice = 0.88 + 0.24 * rng.unit();
        let mut out = Vec::new();
        let syllables = rng.count(r.syllables);
        for index in 0..syllables {
            if index > 0 {
                let gap = samples_for(rng.between(r.gap_ms) / 1000.0);
                out.resize(out.len() + gap, 0.0);
            }
            self.syllable(rng, voice, &mut out);
            if out.len() >= samples_for(MAX_EVENT_S) {
                break;
            }
        }
        let level = self.gain * beat.level * dsp::db_to_gain(-5.0 * rng.unit());
        out.iter_mut().for_each(|v| *v *= level);
        (out, None)
    }
}

/// Stick-slip friction through a bank of body resonances.
pub(crate) struct CreakSynth {
    recipe: Creaks,
    gain: f32,
}

impl CreakSynth {
    pub fn new(recipe: &Creaks) -> CreakSynth {
        CreakSynth {
            gain: dsp::db_to_gain(recipe.gain_db),
            recipe: recipe.clone(),
        }
    }
}

impl EventSynth for CreakSynth {
    fn spread(&self) -> f32 {
        self.recipe.spread
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let r = &self.recipe;
        let seconds = rng.between(r.seconds);
        let n = samples_for(seconds).max(64);
        let scale = 0.9 + 0.2 * rng.unit();
        let mut modes: Vec<Filter> = r
            .modes_hz
            .iter()
            .map(|hz| Filter::new(FilterKind::Bandpass, hz * scale, 25.0))
            .collect();
        let (low, high) = (r.slip_hz[0], rng.between(r.slip_hz));
        let mut until_slip = 0.0f32;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            until_slip -= 1.0;
            let impulse = if until_slip <= 0.0 {
                // Force rises then falls: slips come faster, then slower.
                let force = (std::f32::consts::PI * i as f32 / n as f32).sin();
                let rate = low + (high - low) * force;
                // Each slip releases a slightly different amount.
                until_slip = RATE / rate.max(1.0) * (0.85 + 0.3 * rng.unit());
                force * (0.5 + 0.5 * rng.unit())
            } else {
                0.0
            };
            // The modes side by side each sample: their recursions
            // overlap in the CPU.
            let v: f32 = modes.iter_mut().map(|m| m.next(impulse)).sum();
            out.push(v);
        }
        attack(&mut out, 0.01);
        fade_end(&mut out);
        let level = self.gain * beat.level * 6.0 / (r.modes_hz.len() as f32).sqrt();
        out.iter_mut().for_each(|v| *v *= level);
        (out, None)
    }
}

/// Thunder: a peal of arrivals over a low rumble (see [`thunder_arrivals`]).
pub(crate) struct ThunderSynth {
    recipe: Thunder,
    gain: f32,
}

impl ThunderSynth {
    pub fn new(recipe: &Thunder) -> ThunderSynth {
        ThunderSynth {
            gain: dsp::db_to_gain(recipe.gain_db),
            recipe: recipe.clone(),
        }
    }
}

impl EventSynth for ThunderSynth {
    fn spread(&self) -> f32 {
        0.7
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let seconds = rng.between(self.recipe.seconds);
        let n = samples_for(seconds).max(64);
        let mut noise = Noise::new(Colour::Brown, rng.next_u64());
        let mut low = Filter::new(FilterKind::Lowpass, 120.0 + 80.0 * rng.unit(), 0.8);
        let mut crack_noise = Noise::new(Colour::Pink, rng.next_u64());
        let mut crack_band = Filter::new(FilterKind::Bandpass, 900.0, 0.6);
        let arrivals = thunder_arrivals(rng, seconds);
        let crack = rng.unit() < 0.4;
        // The rumble's upper body (150-600 Hz), fluttering: the sum of
        // N-waves arriving from the channel's many segments at different
        // delays (Few, "Acoustic radiations from lightning", 1982; Farnell,
        // "Designing Sound", ch. 42 "Thunder").
        let mut body_noise = Noise::new(Colour::Pink, rng.next_u64());
        let mut body_band = Filter::new(FilterKind::Bandpass, 160.0 + 120.0 * rng.unit(), 0.7);
        // Air absorbs a distant peal's highs: little is left above 600 Hz.
        let mut body_air = Filter::new(FilterKind::Lowpass, 520.0, 0.7);
        let mut flutter = dsp::Wander::new(rng.fork(), 12.0);
        let (mut flutter_now, mut envelope) = (0.0f32, 0.0f32);
        // The whole peal grows in 50 ms and dies over its length (about
        // 30 dB); the arrivals stand out of it.
        let peal_tau = seconds / 2.5;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // The envelope moves slowly against the rate: reckoned every
            // 32 samples (0.7 ms), not every sample.
            if i % 32 == 0 {
                flutter_now = flutter.advance(32);
                let t = i as f32 / RATE;
                let peal = (1.0 - (-t / 0.05).exp()) * (-t / peal_tau).exp();
                envelope = peal * (0.03 + thunder_level(&arrivals, t));
            }
            let t = i as f32 / RATE;
            // The arrivals' flutter (8-20 Hz) shakes the whole rumble,
            // deepest in its upper body.
            let rumble = flutter_now * flutter_now;
            let mut v = 0.6 * envelope * low.next(noise.sample());
            v += 5.0 * envelope * rumble * body_air.next(body_band.next(body_noise.sample()));
            if crack && t < 0.4 {
                v += 0.2 * (-t / 0.08).exp() * crack_band.next(crack_noise.sample());
            }
            out.push(v);
        }
        attack(&mut out, 0.02);
        fade_end(&mut out);
        let level = self.gain * beat.level;
        out.iter_mut().for_each(|v| *v *= level);
        (out, None)
    }
}

/// One arrival of a peal: onset and rise and decay (seconds), strength.
struct Arrival {
    onset: f32,
    rise: f32,
    decay: f32,
    strength: f32,
}

/// A peal's arrivals: the sound of each stretch of the channel reaching
/// the listener in turn. Real peals (0 A.D.'s and Wesnoth's recordings)
/// swing 15-25 dB: a clap rises within a few milliseconds and dies in a
/// few tenths of a second over the rumble, more of them early than late.
fn thunder_arrivals(rng: &mut Rng, seconds: f32) -> Vec<Arrival> {
    let mut arrivals: Vec<Arrival> = (0..10 + rng.count([0, 10]))
        .map(|k| Arrival {
            onset: if k == 0 {
                0.0
            } else {
                rng.unit() * 0.9 * seconds
            },
            rise: 0.002 + 0.01 * rng.unit(),
            decay: 0.08 + 0.35 * rng.unit(),
            strength: 0.1 + 0.9 * rng.unit().powi(3),
        })
        .collect();
    // And the rattle between them: many brief, weaker arrivals from the
    // channel's small kinks, which shake the level 8-20 times a second.
    let rattles = (seconds * (4.0 + 4.0 * rng.unit())) as usize;
    arrivals.extend((0..rattles).map(|_| Arrival {
        onset: rng.unit() * 0.9 * seconds,
        rise: 0.002 + 0.004 * rng.unit(),
        decay: 0.02 + 0.04 * rng.unit(),
        strength: 0.05 + 0.3 * rng.unit(),
    }));
    arrivals
}

/// The arrivals' summed level at `t` seconds.
fn thunder_level(arrivals: &[Arrival], t: f32) -> f32 {
    arrivals
        .iter()
        .filter(|a| t >= a.onset && t < a.onset + 8.0 * a.decay)
        .map(|a| {
            let u = t - a.onset;
            a.strength * (1.0 - (-u / a.rise).exp()) * (-u / a.decay).exp()
        })
        .sum()
}

/// Something passing: a swell of band noise moving across.
pub(crate) struct PassbySynth {
    recipe: Passby,
    gain: f32,
}

impl PassbySynth {
    pub fn new(recipe: &Passby) -> PassbySynth {
        PassbySynth {
            gain: dsp::db_to_gain(recipe.gain_db),
            recipe: recipe.clone(),
        }
    }
}

impl EventSynth for PassbySynth {
    fn spread(&self) -> f32 {
        0.9
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let seconds = rng.between(self.recipe.seconds);
        let n = samples_for(seconds).max(64);
        let hz = self.recipe.hz * (0.8 + 0.4 * rng.unit());
        let mut noise = Noise::new(Colour::Pink, rng.next_u64());
        let mut band = Filter::new(FilterKind::Bandpass, hz * 1.2, 0.7);
        let width = 0.18 + 0.1 * rng.unit();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let x = i as f32 / n as f32;
            if i % 64 == 0 {
                // The band falls as it passes (a Doppler-like drop).
                band.retune(hz * (1.2 - 0.4 * x));
            }
            let envelope = 1.0 / (1.0 + ((x - 0.5) / width).powi(2));
            out.push(1.5 * envelope * band.next(noise.sample()));
        }
        attack(&mut out, 0.05);
        fade_end(&mut out);
        let level = self.gain * beat.level;
        out.iter_mut().for_each(|v| *v *= level);
        // Left to right or right to left.
        let direction = if rng.unit() < 0.5 { 1.0 } else { -1.0 };
        (out, Some((-0.9 * direction, 0.9 * direction)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(timing: Timing, seconds: f64) -> Vec<f64> {
        let mut schedule = Schedule::new(&timing, 1.0, Rng::new(1));
        std::iter::from_fn(|| schedule.next_before(seconds).map(|b| b.at_s)).collect()
    }

    fn rhythm(period_s: f32, beats: Vec<f32>) -> Timing {
        Timing {
            per_s: None,
            period_s: Some(period_s),
            beats,
            accents_db: vec![],
            pitches: vec![],
            jitter_ms: 0.0,
            drift: 0.0,
            group: None,
            rest_s: None,
        }
    }

    #[test]
    fn poisson_events_come_at_their_rate() {
        let mut timing = rhythm(1.0, vec![0.0]);
        timing.per_s = Some(20.0);
        let t = times(timing, 100.0);
        assert!((1800..2200).contains(&t.len()), "{}", t.len());
        assert!(t.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn rhythms_keep_their_beats_and_rest_between_groups() {
        let t = times(rhythm(1.0, vec![0.0, 0.25]), 10.0);
        assert!((19..=21).contains(&t.len()), "{t:?}");
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter()
                .all(|g| (g - 0.25).abs() < 1e-9 || (g - 0.75).abs() < 1e-9),
            "{gaps:?}"
        );
        let mut grouped = rhythm(1.0, vec![0.0]);
        grouped.group = Some([3, 3]);
        grouped.rest_s = Some([5.0, 5.0]);
        let t = times(grouped, 60.0);
        let long_gaps = t.windows(2).filter(|w| w[1] - w[0] > 5.0).count();
        assert!(long_gaps >= 5, "{t:?}");
    }
}
