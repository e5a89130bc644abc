//! Recordings as layers: a library bed looped from seeded offsets with
//! equal-power crossfades, and library one-shots as events with seeded
//! level, pitch and pan.

use std::sync::Arc;

use super::Layer;
use super::dsp::{RATE, Rng, db_to_gain};
use super::events::{Beat, EventSynth};
use super::library::Clip;

/// Shortest stretch played between two crossfades, seconds.
const SHORTEST_SEGMENT_S: f32 = 6.0;

/// One stretch of a clip as it plays.
struct Segment {
    clip: usize,
    position: usize,
}

/// A bed from recordings. Each segment starts at a seeded offset of a
/// seeded clip and plays until the clip's end (or a seeded length);
/// the next one fades in over the crossfade with equal power (cos/sin),
/// so neither the level dips nor a seam clicks, and the same stretch
/// rarely lines up twice.
pub(crate) struct LibraryBed {
    clips: Vec<Arc<Clip>>,
    crossfade: usize,
    rng: Rng,
    current: Segment,
    /// Frames left in the current segment before the next one fades in.
    left: usize,
    /// The incoming segment and how far through the crossfade it is.
    incoming: Option<(Segment, usize)>,
}

impl LibraryBed {
    pub fn new(clips: Vec<Arc<Clip>>, crossfade_s: f32, mut rng: Rng) -> LibraryBed {
        let crossfade = ((crossfade_s * RATE) as usize).max(1);
        let current = pick(&clips, crossfade, &mut rng);
        let left = segment_length(&clips[current.clip], current.position, crossfade, &mut rng);
        LibraryBed {
            clips,
            crossfade,
            rng,
            current,
            left,
            incoming: None,
        }
    }

    fn frame(&self, segment: &Segment) -> (f32, f32) {
        let clip = &self.clips[segment.clip];
        let i = segment.position.min(clip.frames().saturating_sub(1));
        (clip.left[i], clip.right[i])
    }
}

/// A seeded start: any clip, any offset that leaves a segment and a
/// crossfade before its end.
fn pick(clips: &[Arc<Clip>], crossfade: usize, rng: &mut Rng) -> Segment {
    let clip = (rng.next_u64() % clips.len() as u64) as usize;
    let room = clips[clip]
        .frames()
        .saturating_sub(2 * crossfade + (SHORTEST_SEGMENT_S * RATE) as usize);
    let position = if room == 0 {
        0
    } else {
        (rng.next_u64() % room as u64) as usize
    };
    Segment { clip, position }
}

/// Frames until the next crossfade: to the clip's end less a crossfade,
/// or sooner (at least the shortest segment) so long clips vary too.
fn segment_length(clip: &Clip, position: usize, crossfade: usize, rng: &mut Rng) -> usize {
    let to_end = clip.frames().saturating_sub(position + crossfade).max(1);
    let shortest = ((SHORTEST_SEGMENT_S * RATE) as usize).min(to_end);
    shortest + (rng.unit() * (to_end - shortest) as f32) as usize
}

impl Layer for LibraryBed {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            if self.incoming.is_none() && self.left == 0 {
                let next = pick(&self.clips, self.crossfade, &mut self.rng);
                self.incoming = Some((next, 0));
            }
            let (mut a, mut b) = self.frame(&self.current);
            if let Some((segment, done)) = &self.incoming {
                let t = *done as f32 / self.crossfade as f32;
                let (out_gain, in_gain) = (
                    (t * std::f32::consts::FRAC_PI_2).cos(),
                    (t * std::f32::consts::FRAC_PI_2).sin(),
                );
                let (c, d) = self.frame(segment);
                a = a * out_gain + c * in_gain;
                b = b * out_gain + d * in_gain;
            }
            *l += a;
            *r += b;
            self.current.position += 1;
            self.left = self.left.saturating_sub(1);
            if let Some((segment, done)) = &mut self.incoming {
                segment.position += 1;
                *done += 1;
                if *done >= self.crossfade {
                    let (segment, _) = self.incoming.take().expect("checked above");
                    self.left = segment_length(
                        &self.clips[segment.clip],
                        segment.position,
                        self.crossfade,
                        &mut self.rng,
                    );
                    self.current = segment;
                }
            }
        }
    }
}

/// Library one-shots: a seeded file (never the same twice running when
/// there are several), at a seeded level and pitch.
pub(crate) struct ClipSynth {
    clips: Vec<Arc<Clip>>,
    gain: f32,
    vary_db: f32,
    vary_cents: f32,
    spread: f32,
    last: Option<usize>,
}

impl ClipSynth {
    pub fn new(clips: Vec<Arc<Clip>>, vary_db: f32, vary_cents: f32, spread: f32) -> ClipSynth {
        ClipSynth {
            clips,
            gain: 1.0,
            vary_db,
            vary_cents,
            spread,
            last: None,
        }
    }
}

impl EventSynth for ClipSynth {
    fn spread(&self) -> f32 {
        self.spread
    }

    fn make(&mut self, beat: Beat, rng: &mut Rng) -> (Vec<f32>, Option<(f32, f32)>) {
        let count = self.clips.len();
        let mut index = (rng.next_u64() % count as u64) as usize;
        if count > 1 && Some(index) == self.last {
            index = (index + 1) % count;
        }
        self.last = Some(index);
        let clip = &self.clips[index];
        let ratio = 2f32.powf(self.vary_cents * rng.signed() / 1200.0) * beat.pitch;
        let level = self.gain * beat.level * db_to_gain(-self.vary_db * rng.unit());
        // Read at `ratio` times the speed, linearly interpolated: a
        // semitone or less, where that is inaudible as interpolation.
        let frames = (clip.frames() as f32 / ratio) as usize;
        let out = (0..frames)
            .map(|i| {
                let x = i as f32 * ratio;
                let (k, frac) = (x as usize, x.fract());
                let at = |j: usize| {
                    let j = j.min(clip.frames() - 1);
                    0.5 * (clip.left[j] + clip.right[j])
                };
                level * (at(k) * (1.0 - frac) + at(k + 1) * frac)
            })
            .collect();
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::descriptors as d;
    use super::super::dsp::{Colour, Noise};
    use super::*;

    /// 20 s of noise whose level wanders, as a recorded bed does (a
    /// plain loop of it repeats every 20 s).
    fn recording(seed: u64) -> Arc<Clip> {
        let mut noise = Noise::new(Colour::Pink, seed);
        let left: Vec<f32> = (0..20 * 48_000)
            .map(|i| {
                let t = i as f32 / 48_000.0;
                let swell = 0.6 + 0.4 * (t * 0.7).sin() * (t * 0.23 + 1.0).sin();
                0.1 * swell * noise.sample()
            })
            .collect();
        Arc::new(Clip {
            path: "bed.wav".into(),
            right: left.clone(),
            left,
        })
    }

    fn play(layer: &mut dyn Layer, seconds: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for _ in 0..seconds * 48_000 / 1024 {
            let (mut l, mut r) = (vec![0f32; 1024], vec![0f32; 1024]);
            layer.render(&mut l, &mut r);
            out.extend_from_slice(&l);
        }
        out
    }

    #[test]
    fn a_bed_loops_without_a_repeat_a_dip_or_a_click() {
        let clip = recording(3);
        let mut bed = LibraryBed::new(vec![clip.clone()], 2.0, Rng::new(5));
        let ours = play(&mut bed, 600);
        // A plain loop of the same file repeats at its length, which the
        // measure catches; the bed's seeded segments do not line up.
        let plain: Vec<f32> = clip.left.iter().copied().cycle().take(ours.len()).collect();
        let plain_repeat = d::largest_repeat(&plain, 48_000, 10.0);
        let repeat = d::largest_repeat(&ours, 48_000, 10.0);
        assert!(
            plain_repeat > 0.9,
            "a plain loop measures {plain_repeat:.2}"
        );
        assert!(repeat < 0.5, "ten minutes of the bed repeat at {repeat:.2}");
        // No seam: the largest step stays noise-like.
        let step = d::largest_step_ratio(&ours, 48_000);
        assert!(step < 8.0, "a step {step:.1} times the typical one");
        // No dip in level at the crossfades (equal power): each second's
        // level stays within the recording's own range.
        let levels = d::envelope(&ours, 48_000, 1.0);
        let source = d::envelope(&clip.left, 48_000, 1.0);
        let low = source.iter().copied().fold(f32::MAX, f32::min);
        let quietest = levels.iter().copied().fold(f32::MAX, f32::min);
        assert!(quietest > 0.7 * low, "{quietest} against the file's {low}");
    }

    #[test]
    fn events_vary_in_file_level_and_pitch() {
        let clips: Vec<Arc<Clip>> = (0..3)
            .map(|k| {
                let tone: Vec<f32> = (0..4_800)
                    .map(|i| {
                        let t = i as f32 / 48_000.0;
                        0.3 * (std::f32::consts::TAU * (500.0 + 300.0 * k as f32) * t).sin()
                            * (-t * 30.0).exp()
                    })
                    .collect();
                Arc::new(Clip {
                    path: format!("hit-{k}.wav").into(),
                    right: tone.clone(),
                    left: tone,
                })
            })
            .collect();
        let mut synth = ClipSynth::new(clips, 4.0, 100.0, 0.5);
        let mut rng = Rng::new(9);
        let beat = Beat {
            at_s: 0.0,
            level: 1.0,
            pitch: 1.0,
        };
        let made: Vec<Vec<f32>> = (0..12).map(|_| synth.make(beat, &mut rng).0).collect();
        // Never the same file twice running: neighbours differ in length
        // or level, and lengths spread with the pitch (±100 cents).
        let lengths: Vec<usize> = made.iter().map(Vec::len).collect();
        let (shortest, longest) = (
            *lengths.iter().min().unwrap(),
            *lengths.iter().max().unwrap(),
        );
        assert!(longest as f32 / shortest as f32 > 1.03, "{lengths:?}");
        assert!(longest as f32 / shortest as f32 <= 1.13, "{lengths:?}");
        let peaks: Vec<f32> = made
            .iter()
            .map(|e| e.iter().fold(0f32, |m, v| m.max(v.abs())))
            .collect();
        let (quiet, loud) = (
            peaks.iter().copied().fold(f32::MAX, f32::min),
            peaks.iter().copied().fold(0f32, f32::max),
        );
        assert!(loud / quiet > 1.2 && loud <= 0.31, "{peaks:?}");
    }
}
