//! The soundscape engine: the scene's sound sources synthesized from the
//! catalog's recipes, in its place's acoustics. No weights, any licence,
//! any board: a busy scene renders hundreds of times faster than real
//! time on one core, in blocks, so memory does not grow with length.
//!
//! - [`catalog`]: the sources and places (`catalog.toml`, compiled in);
//! - [`plan`]: the matcher (phrases and places onto the catalog) and the
//!   seeded scene plan;
//! - [`beds`], [`events`]: the synthesis, one layer kind per recipe kind;
//! - [`dsp`]: noise, filters, slow random controls, the room;
//! - [`library`], [`recorded`]: the user's own recordings, in place of
//!   a recipe or as new sources;
//! - [`profile`]: what a listener's ear follows, for the comparison with
//!   real recordings (`vivid bench realism`);
//! - [`descriptors`]: the measurements that tell one sound from another,
//!   for the tests and for a technician's questions.

pub(crate) mod beds;
pub mod catalog;
pub mod descriptors;
pub(crate) mod dsp;
pub(crate) mod events;
pub mod library;
pub mod plan;
pub mod profile;
pub(crate) mod recorded;
#[cfg(test)]
mod tests;

use catalog::{Catalog, Recipe};
use dsp::{AirLoss, RATE, Reverb, Rng};
pub use plan::{Level, PlannedLayer, Role, SceneInput, ScenePlan};

use super::{
    BackgroundEngine, BackgroundError, EngineKind, EngineRecord, LengthLimits, Observer,
    SceneRequest, Stage,
};

/// Bumped whenever a recipe or the renderer changes what a plan sounds
/// like (it is part of the engine's identity, and so of cache keys).
pub(crate) const VERSION: u32 = 1;

/// Frames rendered at a time.
pub(crate) const BLOCK: usize = 1024;

/// Level of the whole soundscape before the safety limiter.
const MASTER_GAIN: f32 = 0.5;
/// The limiter's ceiling: -1 dBFS.
const CEILING: f32 = 0.891;

/// One synthesis layer: adds its next frames into a stereo block.
pub(crate) trait Layer: Send {
    fn render(&mut self, left: &mut [f32], right: &mut [f32]);
}

/// Instantiates one recipe layer.
fn layer(recipe: &Recipe, density: f32, mut rng: Rng) -> Box<dyn Layer> {
    use events::{
        CallSynth, CreakSynth, EventLayer, ImpactSynth, ModalSynth, PassbySynth, ThunderSynth,
    };
    match recipe {
        Recipe::Bed(r) => Box::new(beds::NoiseBed::new(r, rng)),
        Recipe::Surf(r) => Box::new(beds::SurfLayer::new(r, rng)),
        Recipe::Wind(r) => Box::new(beds::WindLayer::new(r, rng)),
        Recipe::Hum(r) => Box::new(beds::HumLayer::new(r, rng)),
        Recipe::Insects(r) => Box::new(beds::InsectLayer::new(r, rng, density)),
        Recipe::Impacts(r) => Box::new(EventLayer::new(
            ImpactSynth::new(r),
            &r.timing,
            density,
            rng,
        )),
        Recipe::Modal(r) => {
            let synth = ModalSynth::new(r, &mut rng);
            Box::new(EventLayer::new(synth, &r.timing, density, rng))
        }
        Recipe::Calls(r) => Box::new(EventLayer::new(CallSynth::new(r), &r.timing, density, rng)),
        Recipe::Creaks(r) => Box::new(EventLayer::new(CreakSynth::new(r), &r.timing, density, rng)),
        Recipe::Thunder(r) => Box::new(EventLayer::new(
            ThunderSynth::new(r),
            &r.timing,
            density,
            rng,
        )),
        Recipe::Passby(r) => Box::new(EventLayer::new(
            PassbySynth::new(r),
            &r.timing,
            density,
            rng,
        )),
    }
}

/// A planned source as it plays: its layers, then its level, position and
/// distance (a darker, quieter, more reverberant sound further away).
struct Voice {
    layers: Vec<Box<dyn Layer>>,
    gains: (f32, f32),
    distance: Option<AirLoss>,
    send: f32,
}

/// A stream seed for layer `index` of a plan seeded `seed`.
fn stream_seed(seed: u64, index: u64) -> u64 {
    // SplitMix64's finalizer: nearby indices give unrelated streams.
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Renders a plan: stereo, interleaved, at 48 kHz.
pub(crate) struct Renderer {
    voices: Vec<Voice>,
    reverb: Reverb,
    wet: f32,
    limiter: Limiter,
    scratch: [Vec<f32>; 6],
    /// Each voice's level every [`TRACE_HOP_S`], when asked for (plots).
    traces: Option<Vec<Trace>>,
}

/// Seconds between the values of a layer's level trace.
pub const TRACE_HOP_S: f64 = 0.1;

/// One voice's level as it plays.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    power: f64,
    frames: usize,
    /// dBFS (RMS of both channels) per [`TRACE_HOP_S`].
    pub level_db: Vec<f32>,
}

impl Trace {
    /// Adds a block of the voice (before its gains) to the trace.
    fn add(&mut self, left: &[f32], right: &[f32], gains: (f32, f32), hop: usize) {
        for (l, r) in left.iter().zip(right) {
            let (ml, mr) = (gains.0 * l, gains.1 * r);
            self.power += f64::from(ml * ml + mr * mr) / 2.0;
            self.frames += 1;
            if self.frames == hop {
                let rms = (self.power / hop as f64).sqrt();
                self.level_db.push((20.0 * rms.max(1e-9).log10()) as f32);
                (self.power, self.frames) = (0.0, 0);
            }
        }
    }
}

/// What the soundscape can play: the catalog (with the library's new
/// sources added) and the library's recordings.
#[derive(Debug, Clone)]
pub struct Sounds {
    pub catalog: Catalog,
    pub library: library::Library,
}

impl Sounds {
    /// The built-in catalog, no library.
    pub fn builtin() -> &'static Sounds {
        static SOUNDS: std::sync::OnceLock<Sounds> = std::sync::OnceLock::new();
        SOUNDS.get_or_init(|| Sounds {
            catalog: Catalog::builtin().clone(),
            library: library::Library::default(),
        })
    }

    /// The catalog with the library in `settings` loaded over it (its
    /// problems are in `library.findings`; the sources they concern keep
    /// their recipes).
    pub fn load(settings: &library::LibrarySettings) -> Sounds {
        let builtin = Catalog::builtin();
        let library = library::Library::load(settings, builtin);
        let mut catalog = builtin.clone();
        catalog.sources.extend(library.new_sources(builtin));
        Sounds { catalog, library }
    }
}

/// The layers of a library source.
fn library_layers(
    sounds: &Sounds,
    source: &library::LibrarySource,
    density: f32,
    mut rng: Rng,
) -> Vec<Box<dyn Layer>> {
    let e = &source.entry;
    let layer: Box<dyn Layer> = match e.use_as {
        library::Use::Bed => Box::new(recorded::LibraryBed::new(
            source.clips.clone(),
            e.crossfade_s,
            rng,
        )),
        library::Use::Events => {
            let synth =
                recorded::ClipSynth::new(source.clips.clone(), e.vary_db, e.vary_cents, e.spread);
            let timing = library::Library::timing_of(source, &sounds.catalog);
            let layer_rng = rng.fork();
            Box::new(events::EventLayer::new(synth, &timing, density, layer_rng))
        }
    };
    vec![layer]
}

/// What the soundscape reads of a scene request.
pub(crate) fn input_of(request: &SceneRequest) -> SceneInput {
    SceneInput {
        caption: request.caption.clone(),
        place: request.place.clone(),
        sounds: request.sounds.clone(),
        level: request.level,
        bed_only: request.bed_only,
        text: request.text.clone(),
    }
}

impl Renderer {
    /// A renderer of `sounds`: a source the library serves plays its
    /// recordings, every other its recipe.
    pub fn of(sounds: &Sounds, plan: &ScenePlan) -> Renderer {
        let catalog = &sounds.catalog;
        let place = catalog
            .place(&plan.place)
            .or_else(|| catalog.places.first())
            .expect("the catalog has places (checked by its tests)");
        let mut voices = Vec::new();
        for (index, planned) in plan.layers.iter().enumerate() {
            let Some(source) = catalog.source(&planned.source) else {
                continue;
            };
            let recorded = sounds.library.sources.get(&source.id);
            let layers = match recorded {
                Some(recorded) => {
                    let seed = stream_seed(plan.seed, (index as u64) << 8);
                    library_layers(sounds, recorded, planned.density, Rng::new(seed))
                }
                None => source
                    .layers_with(&planned.variants)
                    .iter()
                    .enumerate()
                    .map(|(k, recipe)| {
                        let seed = stream_seed(plan.seed, (index as u64) << 8 | k as u64);
                        layer(recipe, planned.density, Rng::new(seed))
                    })
                    .collect(),
            };
            let d = planned.distance.clamp(0.0, 1.0);
            // Balance, unity in the centre; -6 dB and a darker band at the
            // far end; more of it reaches the room.
            let (l, r) = dsp::pan_gains(planned.pan);
            // The source's calibration (the catalog's, or the library
            // entry's over its normalized recordings) and its level in the
            // scene.
            let calibration = recorded.map_or(source.gain_db, |r| r.entry.gain_db);
            let level = dsp::db_to_gain(calibration + planned.gain_db - 6.0 * d);
            let cutoff = 1500.0 + 16_500.0 * (1.0 - d) * (1.0 - d);
            voices.push(Voice {
                layers,
                gains: (
                    level * l * std::f32::consts::SQRT_2,
                    level * r * std::f32::consts::SQRT_2,
                ),
                // Near sources keep their whole band: no filter to run.
                distance: (cutoff < 15_000.0).then(|| AirLoss::new(cutoff)),
                send: 0.5 + d,
            });
        }
        let room = place.room;
        Renderer {
            voices,
            reverb: Reverb::new(room.size_m, room.decay_s, room.damping),
            wet: room.wet,
            limiter: Limiter::new(),
            scratch: std::array::from_fn(|_| vec![0.0; BLOCK]),
            traces: None,
        }
    }

    /// Keeps each voice's level from now on (see [`Renderer::traces`]).
    pub(crate) fn trace_voices(&mut self) {
        self.traces = Some(vec![Trace::default(); self.voices.len()]);
    }

    /// The voices' levels, in the plan's layer order.
    pub fn traces(&self) -> &[Trace] {
        self.traces.as_deref().unwrap_or_default()
    }

    /// The next `frames` (at most [`BLOCK`]) stereo frames, interleaved
    /// into `out`.
    pub(crate) fn next_block(&mut self, frames: usize, out: &mut Vec<f32>) {
        let frames = frames.min(BLOCK);
        let [dry_l, dry_r, send_l, send_r, voice_l, voice_r] = &mut self.scratch;
        for buffer in [&mut *dry_l, &mut *dry_r, &mut *send_l, &mut *send_r] {
            buffer[..frames].fill(0.0);
        }
        let hop = (TRACE_HOP_S * f64::from(RATE)) as usize;
        for (index, voice) in self.voices.iter_mut().enumerate() {
            voice_l[..frames].fill(0.0);
            voice_r[..frames].fill(0.0);
            for layer in &mut voice.layers {
                layer.render(&mut voice_l[..frames], &mut voice_r[..frames]);
            }
            let (l, r) = (&mut voice_l[..frames], &mut voice_r[..frames]);
            if let Some(distance) = &mut voice.distance {
                distance.process(l, r);
            }
            // Plain multiply-adds over whole slices: the compiler
            // vectorizes them.
            let (gl, gr) = voice.gains;
            let (sl, sr) = (voice.send * self.wet * gl, voice.send * self.wet * gr);
            // Over slices (not indices into the Vecs), so the compiler
            // sees four separate arrays and vectorizes.
            let dry = dry_l[..frames].iter_mut().zip(&mut dry_r[..frames]);
            let send = send_l[..frames].iter_mut().zip(&mut send_r[..frames]);
            for (((dl, dr), (el, er)), (x, y)) in dry.zip(send).zip(l.iter().zip(r.iter())) {
                *dl += gl * x;
                *dr += gr * y;
                *el += sl * x;
                *er += sr * y;
            }
            if let Some(trace) = self.traces.as_mut().and_then(|t| t.get_mut(index)) {
                trace.add(l, r, (gl * MASTER_GAIN, gr * MASTER_GAIN), hop);
            }
        }
        self.reverb.process(
            (&send_l[..frames], &send_r[..frames]),
            (&mut dry_l[..frames], &mut dry_r[..frames]),
        );
        self.limiter
            .push_block(&dry_l[..frames], &dry_r[..frames], MASTER_GAIN, out);
    }

    /// The frames the limiter still holds back.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        self.limiter.flush(out);
    }
}

/// A look-ahead peak limiter in steps of 64 frames: the gain never lets a
/// sample past the ceiling and moves linearly within a step, so it never
/// clicks. Output lags input by one step.
struct Limiter {
    held: Vec<(f32, f32)>,
    /// The gain the held step needs (worked out when it came in).
    held_needs: f32,
    incoming: Vec<(f32, f32)>,
    gain: f32,
}

const LIMITER_STEP: usize = 64;
/// Gain recovery per step: about 1 dB per 20 ms.
const LIMITER_RELEASE: f32 = 1.0069;

impl Limiter {
    fn new() -> Limiter {
        Limiter {
            held: Vec::with_capacity(LIMITER_STEP),
            held_needs: 1.0,
            incoming: Vec::with_capacity(LIMITER_STEP),
            gain: 1.0,
        }
    }

    fn needed(step: &[(f32, f32)]) -> f32 {
        let peak = step
            .iter()
            .fold(0f32, |m, (l, r)| m.max(l.abs()).max(r.abs()));
        if peak > CEILING { CEILING / peak } else { 1.0 }
    }

    /// Takes a block of frames (`left` and `right` scaled by `gain`).
    fn push_block(&mut self, left: &[f32], right: &[f32], gain: f32, out: &mut Vec<f32>) {
        for (l, r) in left.iter().zip(right) {
            self.incoming.push((gain * l, gain * r));
            if self.incoming.len() == LIMITER_STEP {
                self.step(out);
            }
        }
    }

    /// Releases the held step and holds the incoming one in its place.
    fn step(&mut self, out: &mut Vec<f32>) {
        let next = Self::needed(&self.incoming);
        self.release(next, out);
        std::mem::swap(&mut self.held, &mut self.incoming);
        self.held_needs = next;
        self.incoming.clear();
    }

    /// Writes the held step with the gain moving to what both it and the
    /// step after it allow.
    fn release(&mut self, next_needed: f32, out: &mut Vec<f32>) {
        if self.held.is_empty() {
            // The first step: start at what it needs.
            self.gain = next_needed.min(1.0);
            return;
        }
        let end = self
            .held_needs
            .min(next_needed)
            .min(self.gain * LIMITER_RELEASE)
            .min(1.0);
        let start = self.gain.min(self.held_needs);
        let n = self.held.len() as f32;
        out.extend(self.held.iter().enumerate().flat_map(|(i, (l, r))| {
            let g = start + (end - start) * (i as f32 + 1.0) / n;
            [l * g, r * g]
        }));
        self.gain = end;
    }

    fn flush(&mut self, out: &mut Vec<f32>) {
        self.step(out);
        self.release(1.0, out);
        self.held.clear();
    }
}

/// Renders `frames` stereo frames of a plan, block by block, handing each
/// interleaved block to `sink`; `keep_going` is asked once a block.
pub fn render_into(
    plan: &ScenePlan,
    frames: usize,
    sink: &mut dyn FnMut(&[f32]),
    keep_going: &mut dyn FnMut(usize) -> Result<(), BackgroundError>,
) -> Result<(), BackgroundError> {
    render_sounds_into(Sounds::builtin(), plan, frames, sink, keep_going)
}

/// [`render_into`] over `sounds` (a library's recordings among them).
pub(crate) fn render_sounds_into(
    sounds: &Sounds,
    plan: &ScenePlan,
    frames: usize,
    sink: &mut dyn FnMut(&[f32]),
    keep_going: &mut dyn FnMut(usize) -> Result<(), BackgroundError>,
) -> Result<(), BackgroundError> {
    let mut renderer = Renderer::of(sounds, plan);
    let mut out = Vec::with_capacity(2 * (BLOCK + 2 * LIMITER_STEP));
    // The limiter lags one step: render that much further, then flush it.
    let target = frames + LIMITER_STEP;
    let (mut rendered, mut produced) = (0usize, 0usize);
    while produced < frames {
        let n = BLOCK.min(target - rendered);
        if n == 0 {
            renderer.finish(&mut out);
        } else {
            renderer.next_block(n, &mut out);
            rendered += n;
        }
        let take = (out.len() / 2).min(frames - produced);
        fade_ends(&mut out[..2 * take], produced, frames);
        sink(&out[..2 * take]);
        produced += take;
        out.clear();
        keep_going(produced)?;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Frames of the fades at a background's start and end: it neither
/// starts nor stops with a step.
const END_FADE_FRAMES: usize = 960;

/// Fades `block` (stereo frames from frame `first` of `total`) in over the
/// first and out over the last [`END_FADE_FRAMES`].
fn fade_ends(block: &mut [f32], first: usize, total: usize) {
    let fade = END_FADE_FRAMES.min(total / 2).max(1);
    // Most blocks lie between the fades: nothing to do.
    let frames = block.len() / 2;
    if first >= fade && first + frames + fade <= total {
        return;
    }
    for (k, frame) in block.chunks_exact_mut(2).enumerate() {
        let index = first + k;
        let from_end = total - 1 - index.min(total - 1);
        let gain = ((index.min(from_end) as f32 + 0.5) / fade as f32).min(1.0);
        if gain < 1.0 {
            frame.iter_mut().for_each(|v| *v *= gain);
        }
    }
}

/// A plan rendered whole, with each planned layer's level over time (for
/// `vivid background --plot`).
pub fn render_traced(sounds: &Sounds, plan: &ScenePlan, seconds: f64) -> (Vec<f32>, Vec<Trace>) {
    let frames = (seconds.max(0.0) * f64::from(RATE)).round() as usize;
    let mut renderer = Renderer::of(sounds, plan);
    renderer.trace_voices();
    let mut samples = Vec::with_capacity(2 * frames + 2 * BLOCK);
    let mut rendered = 0;
    while rendered < frames + LIMITER_STEP {
        let n = BLOCK.min(frames + LIMITER_STEP - rendered);
        renderer.next_block(n, &mut samples);
        rendered += n;
    }
    renderer.finish(&mut samples);
    samples.truncate(2 * frames);
    fade_ends(&mut samples, 0, frames);
    (samples, renderer.traces().to_vec())
}

/// A plan of `id` alone, close and in the centre, in a dry open place:
/// how a source is measured (its tests, its calibration in `vivid bench
/// background --engine soundscape`).
pub fn alone(id: &str) -> ScenePlan {
    ScenePlan {
        place: plan::DEFAULT_PLACE.into(),
        place_matched: None,
        level: Level::Moderate,
        layers: vec![PlannedLayer {
            source: id.into(),
            role: Role::Source,
            matched: None,
            gain_db: 0.0,
            pan: 0.0,
            distance: 0.0,
            density: 1.0,
            recordings: Vec::new(),
            variants: Vec::new(),
        }],
        unmatched: vec![],
        seed: 11,
        note: None,
    }
}

/// The whole of [`render_into`] as one interleaved vector.
pub fn render(plan: &ScenePlan, seconds: f64) -> Vec<f32> {
    render_sounds(Sounds::builtin(), plan, seconds)
}

/// The whole of [`render_sounds_into`] as one interleaved vector.
pub(crate) fn render_sounds(sounds: &Sounds, plan: &ScenePlan, seconds: f64) -> Vec<f32> {
    let frames = (seconds.max(0.0) * f64::from(RATE)).round() as usize;
    let mut samples = Vec::with_capacity(2 * frames);
    // Nothing here can fail: `keep_going` never stops it.
    let _ = render_sounds_into(
        sounds,
        plan,
        frames,
        &mut |block| samples.extend_from_slice(block),
        &mut |_| Ok(()),
    );
    samples
}

/// The soundscape behind the background engines' seam.
pub struct Soundscape {
    id: String,
    limits: LengthLimits,
    sounds: std::sync::Arc<Sounds>,
}

impl Soundscape {
    /// The engine, with the library in `library` loaded (each problem
    /// logged; the sources concerned keep their recipes).
    pub fn new(limits: LengthLimits, library: &library::LibrarySettings) -> Soundscape {
        let sounds = Sounds::load(library);
        for finding in &sounds.library.findings {
            tracing::warn!("sound library: {finding}");
        }
        Soundscape {
            id: format!("soundscape-{VERSION}"),
            limits,
            sounds: std::sync::Arc::new(sounds),
        }
    }
}

impl BackgroundEngine for Soundscape {
    type Recipe = ScenePlan;
    const KIND: EngineKind = EngineKind::Soundscape;

    fn id(&self) -> &str {
        &self.id
    }

    fn sample_rate(&self) -> u32 {
        RATE as u32
    }

    fn channels(&self) -> u16 {
        2
    }

    fn prepare(&self, request: &SceneRequest) -> Result<ScenePlan, BackgroundError> {
        let mut plan = plan::plan(&self.sounds.catalog, &input_of(request), request.seed);
        for layer in &mut plan.layers {
            layer.recordings = self.sounds.library.files_of(&layer.source);
        }
        Ok(plan)
    }

    fn generate(
        &mut self,
        plan: &ScenePlan,
        seconds: f64,
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError> {
        let frames = super::checked_frames(seconds, RATE as u32, 2, self.limits)?;
        observer.clips(1);
        observer.stage(0, Stage::Synthesizing);
        let mut samples = Vec::with_capacity(2 * frames);
        let one_second = RATE as usize;
        let mut next_check = one_second;
        render_sounds_into(
            &self.sounds,
            plan,
            frames,
            &mut |block| samples.extend_from_slice(block),
            &mut |done| {
                if done >= next_check {
                    next_check += 10 * one_second;
                    if let Some(reason) = observer.cancelled() {
                        return Err(BackgroundError::Cancelled(reason));
                    }
                }
                Ok(())
            },
        )?;
        Ok(samples)
    }

    /// Rendering is faster than reading the file back (a minute of
    /// 48 kHz stereo is 23 MB to read; a busy scene renders it in a
    /// fraction of a second): never cached.
    fn worth_caching(&self, _plan: &ScenePlan) -> bool {
        false
    }

    fn record(&self, seed: u64) -> EngineRecord {
        EngineRecord {
            engine: EngineKind::Soundscape,
            id: self.id.clone(),
            seed,
            details: serde_json::json!({
                "version": VERSION,
                "sample_rate": RATE as u32,
                "channels": 2,
                "catalog_sources": self.sounds.catalog.sources.len(),
                "library_files": self.sounds.library.sources.values().flat_map(|s| s.clips.iter().map(|c| c.path.clone())).collect::<Vec<_>>(),
                "library_problems": self.sounds.library.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            }),
        }
    }
}
