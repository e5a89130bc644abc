//! The few building blocks every recipe shares: seeded randomness,
//! coloured noise and filters (fundsp's), slow random control signals, the
//! place's reverb and constant-power panning.
//!
//! fundsp provides the noise generators and the state-variable filters.
//! Its own reverbs are not used: `reverb_stereo` (a 32-line FDN) ran at
//! 62x real time at 48 kHz on one core here, and `reverb4_stereo` at 99x,
//! while the whole busy scene has to run at 200x; [`Reverb`] is an
//! 8-line feedback delay network of the same design (Jot and Chaigne
//! 1991: delay lines, a Hadamard feedback matrix, a damping low-pass in
//! each line) at a fraction of the cost.

use fundsp::prelude32::{An, U1, lowpole_hz, noise, pinkpass};
use fundsp::setting::Setting;
use fundsp::svf::{BandpassMode, FixedSvf, HighpassMode, LowpassMode};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// The soundscape's sample rate.
pub const RATE: f32 = 48_000.0;

/// A seeded random stream: every layer and every event draws from its own,
/// so a scene renders bit-identically from its seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A new independent stream (for one event or one sub-layer).
    pub(crate) fn fork(&mut self) -> Rng {
        Rng::new(self.0.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub(crate) fn signed(&mut self) -> f32 {
        2.0 * self.unit() - 1.0
    }

    /// Uniform in the range `[low, high]`.
    pub fn between(&mut self, range: [f32; 2]) -> f32 {
        range[0] + (range[1] - range[0]) * self.unit()
    }

    /// Log-uniform in `[low, high]` (both above 0): for frequencies.
    pub(crate) fn between_log(&mut self, range: [f32; 2]) -> f32 {
        let (low, high) = (range[0].max(1e-6), range[1].max(1e-6));
        low * (high / low).powf(self.unit())
    }

    /// An integer in `[low, high]`.
    pub fn count(&mut self, range: [u32; 2]) -> u32 {
        let (low, high) = (range[0].min(range[1]), range[0].max(range[1]));
        low + (self.0.next_u64() % u64::from(high - low + 1)) as u32
    }

    /// Seconds to the next event of a Poisson process of `rate` per second.
    pub(crate) fn exponential(&mut self, rate: f32) -> f32 {
        -(1.0 - self.unit()).max(1e-9).ln() / rate.max(1e-6)
    }
}

pub(crate) fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Constant-power pan gains for a position in [-1 (left), 1 (right)].
pub(crate) fn pan_gains(pan: f32) -> (f32, f32) {
    let theta = (pan.clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
    (theta.cos(), theta.sin())
}

/// The colour of a noise source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    White,
    Pink,
    Brown,
}

/// Seeded coloured noise (fundsp's generator and pinking filter). Brown
/// noise has its infrasound (below ~25 Hz) taken out: it is inaudible on
/// any speaker and would only inflate the level.
pub struct Noise {
    white: An<fundsp::noise::Noise>,
    colour: Colour,
    pink: An<fundsp::filter::Pinkpass<f32>>,
    brown: An<fundsp::filter::Lowpole<f32, fundsp::prelude32::U1>>,
    rumble: An<FixedSvf<f32, HighpassMode<f32>>>,
}

impl Noise {
    pub fn new(colour: Colour, seed: u64) -> Noise {
        let mut noise = Noise {
            white: noise().seed(seed),
            colour,
            pink: pinkpass(),
            brown: lowpole_hz(10.0),
            rumble: fundsp::prelude32::highpass_hz(25.0, 0.7),
        };
        noise.pink.set_sample_rate(f64::from(RATE));
        noise.brown.set_sample_rate(f64::from(RATE));
        noise.rumble.set_sample_rate(f64::from(RATE));
        noise
    }

    /// Fills `out` with the next samples: the same as [`Noise::sample`]
    /// for each, with the white noise made by fundsp's SIMD block path
    /// and the colour chosen once a block, not once a sample.
    pub fn fill(&mut self, out: &mut [f32]) {
        use fundsp::prelude32::{BufferArray, BufferRef, MAX_BUFFER_SIZE};
        let mut white = BufferArray::<U1>::new();
        for chunk in out.chunks_mut(MAX_BUFFER_SIZE) {
            self.white
                .process(chunk.len(), &BufferRef::empty(), &mut white.buffer_mut());
            let white = &white.channel_f32(0)[..chunk.len()];
            match self.colour {
                Colour::White => chunk.copy_from_slice(white),
                Colour::Pink => {
                    for (v, w) in chunk.iter_mut().zip(white) {
                        *v = self.pink.filter_mono(*w);
                    }
                }
                Colour::Brown => {
                    for (v, w) in chunk.iter_mut().zip(white) {
                        *v = self.rumble.filter_mono(13.7 * self.brown.filter_mono(*w));
                    }
                }
            }
        }
    }

    /// Fills `left` from `pair[0]` and `right` from `pair[1]`, the
    /// same samples as [`Noise::fill`] on each, with the two colouring
    /// filters run in one loop: their recursions overlap in the CPU, where
    /// one pass each would wait on every sample's in turn.
    pub(crate) fn fill_pair(pair: &mut [Noise; 2], left: &mut [f32], right: &mut [f32]) {
        use fundsp::prelude32::{BufferArray, BufferRef, MAX_BUFFER_SIZE};
        let [a, b] = pair;
        if a.colour != b.colour || left.len() != right.len() || a.colour == Colour::White {
            a.fill(left);
            b.fill(right);
            return;
        }
        let (mut white_a, mut white_b) = (BufferArray::<U1>::new(), BufferArray::<U1>::new());
        for (l, r) in left
            .chunks_mut(MAX_BUFFER_SIZE)
            .zip(right.chunks_mut(MAX_BUFFER_SIZE))
        {
            let n = l.len();
            a.white
                .process(n, &BufferRef::empty(), &mut white_a.buffer_mut());
            b.white
                .process(n, &BufferRef::empty(), &mut white_b.buffer_mut());
            let pairs = white_a.channel_f32(0)[..n]
                .iter()
                .zip(&white_b.channel_f32(0)[..n]);
            let outs = l.iter_mut().zip(r.iter_mut());
            if a.colour == Colour::Pink {
                for ((vl, vr), (wa, wb)) in outs.zip(pairs) {
                    *vl = a.pink.filter_mono(*wa);
                    *vr = b.pink.filter_mono(*wb);
                }
            } else {
                for ((vl, vr), (wa, wb)) in outs.zip(pairs) {
                    *vl = a.rumble.filter_mono(13.7 * a.brown.filter_mono(*wa));
                    *vr = b.rumble.filter_mono(13.7 * b.brown.filter_mono(*wb));
                }
            }
        }
    }

    #[inline]
    pub fn sample(&mut self) -> f32 {
        let white = self.white.get_mono();
        match self.colour {
            Colour::White => white,
            Colour::Pink => self.pink.filter_mono(white),
            // fundsp's brown() normalization.
            Colour::Brown => self
                .rumble
                .filter_mono(13.7 * self.brown.filter_mono(white)),
        }
    }
}

/// The shape of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    Lowpass,
    Bandpass,
    Highpass,
}

/// One of fundsp's state-variable filters, retunable between blocks.
pub(crate) enum Filter {
    Low(An<FixedSvf<f32, LowpassMode<f32>>>),
    Band(An<FixedSvf<f32, BandpassMode<f32>>>),
    High(An<FixedSvf<f32, HighpassMode<f32>>>),
}

impl Filter {
    pub fn new(kind: FilterKind, hz: f32, q: f32) -> Filter {
        let hz = clamp_hz(hz);
        let q = q.max(0.1);
        let mut filter = match kind {
            FilterKind::Lowpass => Filter::Low(fundsp::prelude32::lowpass_hz(hz, q)),
            FilterKind::Bandpass => Filter::Band(fundsp::prelude32::bandpass_hz(hz, q)),
            FilterKind::Highpass => Filter::High(fundsp::prelude32::highpass_hz(hz, q)),
        };
        match &mut filter {
            Filter::Low(f) => f.set_sample_rate(f64::from(RATE)),
            Filter::Band(f) => f.set_sample_rate(f64::from(RATE)),
            Filter::High(f) => f.set_sample_rate(f64::from(RATE)),
        }
        filter
    }

    /// Moves the cut-off or centre (once a block: sweeps are slow).
    pub(crate) fn retune(&mut self, hz: f32) {
        let setting = Setting::center(clamp_hz(hz));
        match self {
            Filter::Low(f) => f.set(setting),
            Filter::Band(f) => f.set(setting),
            Filter::High(f) => f.set(setting),
        }
    }

    /// Filters a block in place: [`Filter::next`] on each sample, with the
    /// kind matched once.
    pub fn process(&mut self, samples: &mut [f32]) {
        match self {
            Filter::Low(f) => samples.iter_mut().for_each(|v| *v = f.filter_mono(*v)),
            Filter::Band(f) => samples.iter_mut().for_each(|v| *v = f.filter_mono(*v)),
            Filter::High(f) => samples.iter_mut().for_each(|v| *v = f.filter_mono(*v)),
        }
    }

    #[inline]
    pub fn next(&mut self, x: f32) -> f32 {
        match self {
            Filter::Low(f) => f.filter_mono(x),
            Filter::Band(f) => f.filter_mono(x),
            Filter::High(f) => f.filter_mono(x),
        }
    }
}

/// Filters a stereo pair of blocks in place, `pair[0]` the left and
/// `pair[1]` the right: the same as [`Filter::next`] on each sample, with
/// the filters' kind matched once a block and the two channels' recursions
/// interleaved, so the CPU runs them side by side.
pub(crate) fn filter_stereo(pair: &mut [Filter; 2], left: &mut [f32], right: &mut [f32]) {
    let [a, b] = pair;
    match (a, b) {
        (Filter::Low(a), Filter::Low(b)) => filter_pair(a, b, left, right),
        (Filter::Band(a), Filter::Band(b)) => filter_pair(a, b, left, right),
        (Filter::High(a), Filter::High(b)) => filter_pair(a, b, left, right),
        (a, b) => {
            a.process(left);
            b.process(right);
        }
    }
}

/// Runs `a` over `left` and `b` over `right` in one loop, so the two
/// recursions overlap in the CPU.
fn filter_pair<X, Y>(a: &mut An<X>, b: &mut An<Y>, left: &mut [f32], right: &mut [f32])
where
    X: fundsp::audionode::AudioNode<Inputs = U1, Outputs = U1>,
    Y: fundsp::audionode::AudioNode<Inputs = U1, Outputs = U1>,
{
    for (l, r) in left.iter_mut().zip(right.iter_mut()) {
        *l = a.filter_mono(*l);
        *r = b.filter_mono(*r);
    }
}

/// A distant source's loss of highs (the air absorbs them, and nearby
/// surfaces scatter them): a one-pole low-pass on each channel, the
/// gentle 6 dB an octave of air absorption's rise with frequency (ISO
/// 9613-1), at a third of a state-variable filter's cost. Every distant
/// voice of a scene runs one.
pub(crate) struct AirLoss {
    /// The pole, exp(-2 pi fc / rate), and its powers 2 to 4.
    pole: [f32; 4],
    /// Each channel's last output.
    last: [f32; 2],
}

impl AirLoss {
    pub fn new(hz: f32) -> AirLoss {
        let pole = (-std::f32::consts::TAU * clamp_hz(hz) / RATE).exp();
        AirLoss {
            pole: [pole, pole * pole, pole.powi(3), pole.powi(4)],
            last: [0.0; 2],
        }
    }

    /// Filters a stereo block in place: y[n] = (1 - p) x[n] + p y[n-1].
    pub fn process(&mut self, left: &mut [f32], right: &mut [f32]) {
        let [l, r] = &mut self.last;
        one_pole(self.pole, l, left);
        one_pole(self.pole, r, right);
    }
}

/// A one-pole low-pass over `x` in place, four samples at a time: each
/// four's own response is worked out apart from the one before (a short
/// chain the CPU overlaps with the next four's), and only the carry
/// from the last output, `last` times the pole's powers, waits on it.
/// One multiply-add a four on the chain instead of four: the recursion
/// no longer sets the pace of every distant voice.
fn one_pole(pole: [f32; 4], last: &mut f32, x: &mut [f32]) {
    let [p, p2, p3, p4] = pole;
    let gain = 1.0 - p;
    let mut y = *last;
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        let s0 = gain * c[0];
        let s1 = gain * c[1] + p * s0;
        let s2 = gain * c[2] + p * s1;
        let s3 = gain * c[3] + p * s2;
        c[0] = s0 + p * y;
        c[1] = s1 + p2 * y;
        c[2] = s2 + p3 * y;
        y = s3 + p4 * y;
        c[3] = y;
    }
    for v in chunks.into_remainder() {
        y = gain * *v + p * y;
        *v = y;
    }
    *last = y;
}

/// A sine and its cosine advanced a sample at a time by rotation (two
/// multiply-adds, no libm call): the oscillators whose pitch moves slowly
/// (calls, bubbles, a body's thud, a hum) retune it once a control block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phasor {
    sine: f32,
    cosine: f32,
    step_sine: f32,
    step_cosine: f32,
}

impl Phasor {
    /// At `angle` radians, turning `step` radians a sample (worked out in
    /// f64: a hum re-anchors from its exact phase every block).
    pub fn new(angle: f64, step: f64) -> Phasor {
        let (sine, cosine) = angle.sin_cos();
        let (step_sine, step_cosine) = step.sin_cos();
        Phasor {
            sine: sine as f32,
            cosine: cosine as f32,
            step_sine: step_sine as f32,
            step_cosine: step_cosine as f32,
        }
    }

    /// A new step, `step` radians a sample; the length goes back to 1
    /// (rounding slowly changes it).
    pub(crate) fn retune(&mut self, step: f32) {
        (self.step_sine, self.step_cosine) = step.sin_cos();
        let length = (self.sine * self.sine + self.cosine * self.cosine).sqrt();
        (self.sine, self.cosine) = (self.sine / length, self.cosine / length);
    }

    /// The sine now.
    #[inline]
    pub(crate) fn sine(&self) -> f32 {
        self.sine
    }

    /// Turns one step; the new sine and cosine.
    #[inline]
    pub(crate) fn advance(&mut self) -> (f32, f32) {
        let (s, c) = (self.sine, self.cosine);
        (self.sine, self.cosine) = (
            s * self.step_cosine + c * self.step_sine,
            c * self.step_cosine - s * self.step_sine,
        );
        (self.sine, self.cosine)
    }
}

fn clamp_hz(hz: f32) -> f32 {
    hz.clamp(5.0, 0.45 * RATE)
}

/// A slow random control signal in [0, 1]: a new random target every
/// `1 / rate_hz` seconds on average, approached by a smooth cosine
/// glide. Gusts, swells and wandering pitch follow it, so nothing
/// repeats at a fixed period.
#[derive(Debug, Clone)]
pub(crate) struct Wander {
    rng: Rng,
    rate_hz: f32,
    from: f32,
    to: f32,
    /// Position in the current glide, 0..1, and its step per sample.
    phase: f32,
    step: f32,
}

impl Wander {
    pub fn new(mut rng: Rng, rate_hz: f32) -> Wander {
        let from = rng.unit();
        let to = rng.unit();
        let mut wander = Wander {
            rng,
            rate_hz: rate_hz.max(1e-3),
            from,
            to,
            phase: 0.0,
            step: 0.0,
        };
        wander.next_glide();
        // Start somewhere inside the first glide.
        wander.phase = wander.rng.unit();
        wander
    }

    fn next_glide(&mut self) {
        // Glides last between half and twice the mean period.
        let seconds = (0.5 + 1.5 * self.rng.unit()) / self.rate_hz;
        self.step = 1.0 / (seconds * RATE);
        self.phase = 0.0;
    }

    /// The value now, advancing by `samples`.
    pub(crate) fn advance(&mut self, samples: usize) -> f32 {
        self.phase += self.step * samples as f32;
        while self.phase >= 1.0 {
            self.phase -= 1.0;
            self.from = self.to;
            self.to = self.rng.unit();
            let carry = self.phase;
            self.next_glide();
            self.phase = carry.min(0.999);
        }
        let shape = 0.5 - 0.5 * (std::f32::consts::PI * self.phase).cos();
        self.from + (self.to - self.from) * shape
    }
}

/// A one-pole smoother for gains that change once a block, so a block
/// boundary never makes a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Smooth {
    value: f32,
    coefficient: f32,
}

impl Smooth {
    /// Settles in about `seconds`.
    pub fn new(value: f32, seconds: f32) -> Smooth {
        Smooth {
            value,
            coefficient: 1.0 - (-1.0 / (seconds.max(1e-4) * RATE)).exp(),
        }
    }

    #[inline]
    pub fn next(&mut self, target: f32) -> f32 {
        self.value += (target - self.value) * self.coefficient;
        self.value
    }
}

/// The place's room: an 8-line feedback delay network (Jot & Chaigne
/// 1991; J. O. Smith, *Physical Audio Signal Processing*, "FDN
/// reverberation") with a Hadamard feedback matrix, a one-pole damping
/// low-pass in each line, and left and right taken from different lines
/// so the tail is wide and decorrelated.
pub(crate) struct Reverb {
    lines: Vec<Vec<f32>>,
    positions: [usize; 8],
    feedback: [f32; 8],
    damping: f32,
    damped: [f32; 8],
    /// Half-rate bookkeeping: the input pair being summed, which half of
    /// the pair this is, the output being held.
    pending: (f32, f32),
    phase: bool,
    held: (f32, f32),
    smoothed: (f32, f32),
}

/// Line lengths for a 10 m room, in seconds: mutually prime in samples
/// (the fundsp 32-line set's range, thinned).
const LINE_SECONDS: [f32; 8] = [
    0.0297, 0.0371, 0.0411, 0.0437, 0.0533, 0.0571, 0.0617, 0.0683,
];

impl Reverb {
    /// A room of about `size_m` metres (lines scale with it) whose tail
    /// falls 60 dB in `decay_s`; `damping` 0..1 darkens the tail.
    pub fn new(size_m: f32, decay_s: f32, damping: f32) -> Reverb {
        let scale = (size_m / 10.0).clamp(0.2, 4.0);
        let mut lines = Vec::with_capacity(8);
        let mut feedback = [0.0; 8];
        for (i, seconds) in LINE_SECONDS.iter().enumerate() {
            // In samples of the half-rate network; an odd length keeps the
            // lines from sharing factors of two.
            let network_rate = RATE / 2.0;
            let length = ((seconds * scale * network_rate) as usize) | 1;
            lines.push(vec![0.0; length.max(3)]);
            // -60 dB after decay_s: gain per pass through this line.
            let passes = decay_s.max(0.05) / (length as f32 / network_rate);
            feedback[i] = db_to_gain(-60.0 / passes);
        }
        Reverb {
            lines,
            positions: [0; 8],
            feedback,
            damping: damping.clamp(0.0, 0.95),
            damped: [0.0; 8],
            pending: (0.0, 0.0),
            phase: false,
            held: (0.0, 0.0),
            smoothed: (0.0, 0.0),
        }
    }

    /// Adds the reverberation of `send` (left, right) into `out`. The
    /// network runs at half the rate (pairs of input frames averaged, its
    /// output interpolated between): a damped tail has little above 12 kHz, and it
    /// halves the room's cost, the largest single cost of a scene. The
    /// lines' lengths are in network samples, so the room is the same
    /// size.
    pub fn process(&mut self, send: (&[f32], &[f32]), out: (&mut [f32], &mut [f32])) {
        let (send_left, send_right) = send;
        let (out_left, out_right) = out;
        for i in 0..send_left.len() {
            self.pending.0 += 0.5 * send_left[i];
            self.pending.1 += 0.5 * send_right[i];
            self.phase = !self.phase;
            let (l, r) = if self.phase {
                // Half way between the last output and the new one: a
                // linear interpolation, not a staircase.
                let input = std::mem::take(&mut self.pending);
                let last = self.held;
                self.held = self.tick(input);
                (0.5 * (last.0 + self.held.0), 0.5 * (last.1 + self.held.1))
            } else {
                self.held
            };
            // A one-pole low-pass (about 7 kHz) takes out what is left of
            // the half rate's images near 24 kHz.
            self.smoothed.0 += 0.6 * (l - self.smoothed.0);
            self.smoothed.1 += 0.6 * (r - self.smoothed.1);
            out_left[i] += self.smoothed.0;
            out_right[i] += self.smoothed.1;
        }
    }

    /// One sample of the network at half rate.
    fn tick(&mut self, input: (f32, f32)) -> (f32, f32) {
        let mut taps = [0f32; 8];
        for (line, tap) in taps.iter_mut().enumerate() {
            *tap = self.lines[line][self.positions[line]];
        }
        let output = (
            0.35 * (taps[0] + taps[2] + taps[4] + taps[6]),
            0.35 * (taps[1] + taps[3] + taps[5] + taps[7]),
        );
        let h = hadamard8(taps);
        for (line, mixed) in h.iter().enumerate() {
            // Damping: a one-pole low-pass in the loop.
            let value = mixed * self.feedback[line];
            self.damped[line] += (1.0 - self.damping) * (value - self.damped[line]);
            let injected = if line % 2 == 0 { input.0 } else { input.1 };
            let position = self.positions[line];
            self.lines[line][position] = self.damped[line] + injected;
            // A compare, not a division: this runs 8 times a sample.
            self.positions[line] = if position + 1 == self.lines[line].len() {
                0
            } else {
                position + 1
            };
        }
        output
    }
}

/// An 8-point Hadamard transform scaled to keep energy (1/sqrt(8)).
#[inline]
fn hadamard8(x: [f32; 8]) -> [f32; 8] {
    let mut a = x;
    let mut span = 1;
    while span < 8 {
        for start in (0..8).step_by(2 * span) {
            for i in start..start + span {
                let (p, q) = (a[i], a[i + span]);
                a[i] = p + q;
                a[i + span] = p - q;
            }
        }
        span *= 2;
    }
    let scale = 1.0 / 8f32.sqrt();
    a.map(|v| v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reverb_decays_at_its_time_and_stays_stable() {
        let mut reverb = Reverb::new(12.0, 1.5, 0.3);
        let n = (4.0 * RATE) as usize;
        let mut send = vec![0f32; n];
        send[0] = 1.0;
        let (mut left, mut right) = (vec![0f32; n], vec![0f32; n]);
        reverb.process((&send, &send), (&mut left, &mut right));
        let energy = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>();
        let second = |k: usize| {
            let (a, b) = (
                (k as f32 * 0.25 * RATE) as usize,
                ((k + 1) as f32 * 0.25 * RATE) as usize,
            );
            energy(&left[a..b]) + energy(&right[a..b])
        };
        // 1.5 s to -60 dB is -40 dB/s: a quarter second apart the tail
        // falls by about 10 dB (damping makes it a little faster).
        let drop_db = 10.0 * (second(2) / second(6)).log10();
        assert!((35.0..=55.0).contains(&drop_db), "{drop_db} dB over 1 s");
        assert!(
            left.iter()
                .chain(&right)
                .all(|v| v.is_finite() && v.abs() < 2.0)
        );
        // Left and right come from different lines.
        assert_ne!(left, right);
    }

    #[test]
    fn wander_stays_in_range_and_moves_slowly() {
        let mut wander = Wander::new(Rng::new(3), 0.2);
        let values: Vec<f32> = (0..(60.0 * RATE / 64.0) as usize)
            .map(|_| wander.advance(64))
            .collect();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        let largest_step = values
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(largest_step < 0.01, "{largest_step}");
        let spread =
            values.iter().fold(0f32, |m, v| m.max(*v)) - values.iter().fold(1f32, |m, v| m.min(*v));
        assert!(spread > 0.4, "it wanders: {spread}");
    }

    #[test]
    fn the_four_at_a_time_one_pole_is_the_recursion() {
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..1001).map(|_| rng.signed()).collect();
        let mut air = AirLoss::new(3000.0);
        let p = air.pole[0];
        // Blocks of uneven length, as a scene's last block is.
        let (mut left, mut right) = (x.clone(), x.clone());
        for (l, r) in left.chunks_mut(97).zip(right.chunks_mut(97)) {
            air.process(l, r);
        }
        let mut y = 0.0f32;
        for (i, v) in x.iter().enumerate() {
            y = (1.0 - p) * v + p * y;
            assert!((left[i] - y).abs() < 1e-5, "{i}: {} against {y}", left[i]);
            assert_eq!(left[i], right[i]);
        }
    }
}
