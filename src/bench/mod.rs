//! `vivid bench`: speed and memory of each stage, measured against the
//! reference implementation in the same run, so the printed ratios compare
//! like with like on whatever machine runs them.

pub mod realism;
pub mod report;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::compute::{peak_rss_kb, set_compute_threads};
use crate::speech::{SpeakOptions, Voice};

/// The benchmark's sentences: the speech parity set (numbers, dates,
/// names, one very long sentence).
pub(crate) const TTS_SENTENCES: &str = include_str!("../../tests/fixtures/speech/sentences.txt");
/// A 60-word paragraph for time-to-first-audio.
pub(crate) const TTS_PARAGRAPH: &str = "The harbour was quiet that morning. Fog lay over the water \
    and the fishing boats waited at their moorings, ropes creaking as the tide turned. Somewhere \
    beyond the breakwater a bell rang twice. The keeper climbed the stairs of the lighthouse, \
    trimmed the wick, and watched the grey light spread slowly across the bay while gulls \
    circled above the empty quay.";
const PIPER_SCRIPT: &str = include_str!("../../tests/bench/piper_tts.py");

/// One configuration's measurements.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TtsRun {
    pub(crate) load_s: f64,
    pub(crate) audio_s: f64,
    pub(crate) compute_s: f64,
    pub(crate) first_audio_s: Option<f64>,
    pub(crate) peak_rss_kb: u64,
}

impl TtsRun {
    /// Real-time factor: compute seconds per second of audio.
    pub(crate) fn rtf(&self) -> f64 {
        self.compute_s / self.audio_s.max(1e-9)
    }
}

pub fn sentences() -> Vec<&'static str> {
    TTS_SENTENCES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// A voice with its load time and each bucket's optimize time.
pub(crate) struct LoadedVoice {
    pub voice: Voice,
    pub(crate) load_s: f64,
    /// (bucket, seconds) for every default bucket.
    pub optimize: Vec<(usize, f64)>,
}

/// Loads the voice and builds every bucket's plan, timing both.
pub(crate) fn load_voice(model: &Path) -> Result<LoadedVoice> {
    let t0 = Instant::now();
    let voice = Voice::load(model, 0)?;
    let load_s = t0.elapsed().as_secs_f64();
    let mut optimize = Vec::new();
    tracing::info!(rss_mib = peak_rss_kb() / 1024, "voice loaded");
    for bucket in crate::speech::DEFAULT_BUCKETS {
        let t0 = Instant::now();
        voice.model.plan(*bucket)?;
        optimize.push((*bucket, t0.elapsed().as_secs_f64()));
        tracing::info!(bucket, rss_mib = peak_rss_kb() / 1024, "plan built");
    }
    Ok(LoadedVoice {
        voice,
        load_s,
        optimize,
    })
}

/// Times vivid on the benchmark texts with `threads` kernel threads.
pub(crate) fn run_vivid_tts(voice: &Voice, threads: usize, load_s: f64) -> Result<TtsRun> {
    set_compute_threads(threads);
    let opts = SpeakOptions {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..SpeakOptions::default()
    };
    let texts = sentences();
    // Warm-up: every text once, so the decoder plans of every frame bucket
    // the texts need are built before timing (a service builds each once;
    // the build time is reported per bucket apart). The reference warms up
    // too.
    for text in texts.iter().chain([&TTS_PARAGRAPH]) {
        for audio in voice.speak(text, &opts)? {
            audio?;
        }
    }
    let mut audio_s = 0.0;
    let t0 = Instant::now();
    for text in &texts {
        for audio in voice.speak(text, &opts)? {
            audio_s += audio?.samples.len() as f64 / f64::from(voice.sample_rate());
        }
    }
    let compute_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let first_audio_s = match voice.speak(TTS_PARAGRAPH, &opts)?.next() {
        Some(first) => {
            first?;
            Some(t0.elapsed().as_secs_f64())
        }
        None => None,
    };
    Ok(TtsRun {
        load_s,
        audio_s,
        compute_s,
        first_audio_s,
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Times piper-tts (onnxruntime) in a Python subprocess.
pub(crate) fn run_piper_tts(python: &str, model: &Path, threads: usize) -> Result<TtsRun> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("piper_tts.py");
    std::fs::write(&script, PIPER_SCRIPT)?;
    let texts = dir.path().join("texts.json");
    std::fs::write(&texts, serde_json::to_string(&sentences())?)?;
    run_reference(
        python,
        &[
            script.as_os_str(),
            model.as_os_str(),
            threads.to_string().as_ref(),
            texts.as_os_str(),
            TTS_PARAGRAPH.as_ref(),
        ],
        "the piper-tts reference failed (is `pip install piper-tts==1.8.0` done?)",
    )
}

/// Runs a reference script and reads the JSON object it prints last.
fn run_reference<T: serde::de::DeserializeOwned>(
    python: &str,
    args: &[&std::ffi::OsStr],
    failed: &str,
) -> Result<T> {
    let output = Command::new(python)
        .args(args)
        .output()
        .with_context(|| format!("running {python}"))?;
    if !output.status.success() {
        bail!(
            "{failed}: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("reading the reference's report {line:?}"))
}

/// The describer's development set (tests/fixtures/describe/devset.toml):
/// texts that name their sounds.
pub(crate) const DESCRIBE_DEVSET: &str = include_str!("../../tests/fixtures/describe/devset.toml");
/// The allusive development set (tests/fixtures/describe/allusive.toml):
/// poems, novels, myths and tours whose sounds are implied, in five
/// languages.
pub(crate) const DESCRIBE_ALLUSIVE: &str =
    include_str!("../../tests/fixtures/describe/allusive.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevSet {
    #[serde(rename = "text")]
    pub texts: Vec<DevText>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevText {
    pub kind: String,
    pub text: String,
    /// Groups of alternatives, `a|b|c`, matched as word beginnings (the
    /// first set's free captions).
    #[serde(default)]
    pub expect: Vec<String>,
    /// The soundscape catalog's sources a listener would accept.
    pub sources: Vec<String>,
    /// The allusive set: the catalog's places that fit...
    #[serde(default)]
    pub places: Vec<String>,
    /// ...sources that would be wrong...
    #[serde(default)]
    pub wrong: Vec<String>,
    /// ...the kind of setting, and the language.
    #[serde(default)]
    pub setting: Option<String>,
    #[serde(default = "english")]
    pub lang: String,
}

fn english() -> String {
    "en".to_owned()
}

/// Which development set a text is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetName {
    /// Texts that name their sounds.
    Named,
    /// Texts that imply them.
    Allusive,
}

impl DevSet {
    pub fn builtin() -> Result<DevSet> {
        toml::from_str(DESCRIBE_DEVSET).context("parsing the built-in describer dev set")
    }

    pub fn allusive() -> Result<DevSet> {
        toml::from_str(DESCRIBE_ALLUSIVE).context("parsing the built-in allusive dev set")
    }
}

impl DevText {
    /// True when `caption` names one of the expected sounds.
    pub(crate) fn names_expected_sound(&self, caption: &str) -> bool {
        let words: Vec<String> = caption
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        self.expect.iter().any(|group| {
            group
                .split('|')
                .any(|alt| words.iter().any(|w| w.starts_with(alt)))
        })
    }
}

/// One caption of the dev set, scored.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct ScoredCaption {
    pub set: SetName,
    #[serde(default = "english")]
    pub lang: String,
    /// The place the soundscape plays, and whether the set lists it
    /// (texts of the allusive set only).
    #[serde(default)]
    pub place: String,
    #[serde(default)]
    pub(crate) place_fits: Option<bool>,
    /// Sources played that the set calls wrong.
    #[serde(default)]
    pub(crate) wrong_played: usize,
    /// Every source's evidence (with --dump only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
    pub caption: String,
    /// Made by the method asked for (not a fallback).
    pub method_kept: bool,
    pub keeps_rules: bool,
    pub(crate) names_expected: bool,
    /// Sound sources named (llm only) and how many of them are expected
    /// ones: a caption of five sources, one relevant, should not score as
    /// well as one of three relevant ones.
    pub sources: usize,
    pub(crate) sources_expected: usize,
    pub seconds: f64,
    #[serde(default)]
    pub llm: Option<crate::describe::LlmStats>,
    /// The model's sound phrases that keep the caption rules (llm only)
    /// that a soundscape catalog source matches, and those none does.
    #[serde(default)]
    pub(crate) catalog_matched: usize,
    #[serde(default)]
    pub(crate) catalog_unmatched: Vec<String>,
    /// The catalog sources the soundscape plays for this caption (its
    /// plan's foreground layers), each with where it came from in catalog
    /// mode, and whether the dev set lists it as fitting.
    #[serde(default)]
    pub played: Vec<PlayedSource>,
    /// The scene is the place's bed alone (catalog mode found nothing).
    #[serde(default)]
    pub bed_only: bool,
    /// A bed of the scene's place that the dev set lists as fitting.
    #[serde(default)]
    pub(crate) bed_fits: bool,
    /// Catalog mode: the sources the model itself chose (not played; the
    /// text's own are), scored the same way, to measure the model.
    #[serde(default)]
    pub(crate) model_picks: Vec<PlayedSource>,
}

/// One source the soundscape plays for a dev-set caption.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct PlayedSource {
    pub id: String,
    pub fits: bool,
    /// Catalog mode: chosen from the text's words or by the model.
    pub from: Option<crate::describe::vocabulary::Evidence>,
}

impl ScoredCaption {
    pub fn good(&self) -> bool {
        self.keeps_rules && self.names_expected
    }
}

/// A candidate's run over the dev set.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct DescribeRun {
    pub label: String,
    pub(crate) load_s: f64,
    pub(crate) peak_rss_kb: u64,
    pub captions: Vec<ScoredCaption>,
}

impl DescribeRun {
    /// Prompt evaluation and generation speed, tokens per second, over the
    /// whole run (the cached prompt prefix not counted).
    pub fn throughput(&self) -> Option<(f64, f64)> {
        let stats: Vec<_> = self.captions.iter().filter_map(|c| c.llm).collect();
        if stats.is_empty() {
            return None;
        }
        let evaluated: usize = stats.iter().map(|s| s.evaluated_tokens).sum();
        let prompt_s: f64 = stats.iter().map(|s| s.prompt_s).sum();
        let answered: usize = stats.iter().map(|s| s.answer_tokens).sum();
        let answer_s: f64 = stats.iter().map(|s| s.answer_s).sum();
        Some((evaluated as f64 / prompt_s, answered as f64 / answer_s))
    }

    /// Mean evaluated prompt tokens and answer tokens per caption.
    pub fn mean_tokens(&self) -> Option<(f64, f64)> {
        let stats: Vec<_> = self.captions.iter().filter_map(|c| c.llm).collect();
        let n = stats.len() as f64;
        (!stats.is_empty()).then(|| {
            (
                stats.iter().map(|s| s.evaluated_tokens).sum::<usize>() as f64 / n,
                stats.iter().map(|s| s.answer_tokens).sum::<usize>() as f64 / n,
            )
        })
    }

    /// Share of all named sound sources that are expected ones (llm only).
    pub fn sources_on_target(&self) -> Option<f64> {
        let sources: usize = self.captions.iter().map(|c| c.sources).sum();
        let expected: usize = self.captions.iter().map(|c| c.sources_expected).sum();
        (sources > 0).then(|| expected as f64 / sources as f64)
    }

    /// Share of the model's sound phrases the soundscape's catalog
    /// matches (llm only), and the phrases none matched.
    pub fn catalog_match(&self) -> Option<(f64, Vec<&str>)> {
        let matched: usize = self.captions.iter().map(|c| c.catalog_matched).sum();
        let unmatched: Vec<&str> = self
            .captions
            .iter()
            .flat_map(|c| c.catalog_unmatched.iter().map(String::as_str))
            .collect();
        let total = matched + unmatched.len();
        (total > 0).then(|| (matched as f64 / total as f64, unmatched))
    }

    /// The same run restricted to some of its captions (one set, one
    /// language).
    pub fn subset(&self, pick: impl Fn(&ScoredCaption) -> bool) -> DescribeRun {
        DescribeRun {
            captions: self.captions.iter().filter(|c| pick(c)).cloned().collect(),
            ..self.clone()
        }
    }

    /// Share of texts whose played place the set lists (texts that list
    /// places only); `None` when none do.
    pub fn place_share(&self) -> Option<f64> {
        let judged: Vec<bool> = self.captions.iter().filter_map(|c| c.place_fits).collect();
        (!judged.is_empty())
            .then(|| judged.iter().filter(|f| **f).count() as f64 / judged.len() as f64)
    }

    pub fn good_share(&self) -> f64 {
        self.share(ScoredCaption::good)
    }

    /// Share of texts where the soundscape plays at least one fitting
    /// source.
    pub fn fitting_share(&self) -> f64 {
        self.share(|c| c.played.iter().any(|p| p.fits))
    }

    /// Share of the sources played that fit over the whole run, and how
    /// many were played; `None` when none were.
    pub fn played_precision(&self) -> Option<(f64, usize)> {
        let played: Vec<&PlayedSource> = self.captions.iter().flat_map(|c| &c.played).collect();
        let fitting = played.iter().filter(|p| p.fits).count();
        (!played.is_empty()).then(|| (fitting as f64 / played.len() as f64, played.len()))
    }

    pub fn share(&self, pick: impl Fn(&ScoredCaption) -> bool) -> f64 {
        let n = self.captions.len().max(1) as f64;
        self.captions.iter().filter(|c| pick(c)).count() as f64 / n
    }

    /// The `q` quantile (0..=1) of caption latency, nearest rank.
    pub(crate) fn latency_quantile(&self, q: f64) -> f64 {
        let mut times: Vec<f64> = self.captions.iter().map(|c| c.seconds).collect();
        times.sort_by(f64::total_cmp);
        if times.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1]
    }
}

/// Describes every dev-set text with `settings` (the whole text as one
/// scene) and scores the captions.
pub fn run_describe_devset(
    label: &str,
    settings: crate::describe::DescribeSettings,
    dump: bool,
) -> Result<DescribeRun> {
    use crate::describe::{Describer, caption};
    let sets = [
        (SetName::Named, DevSet::builtin()?),
        (SetName::Allusive, DevSet::allusive()?),
    ];
    let method = settings.method;
    let mut describer = Describer::new(settings);
    let t0 = Instant::now();
    describer
        .load()
        .with_context(|| format!("loading {label}"))?;
    let load_s = t0.elapsed().as_secs_f64();
    let mut captions = Vec::new();
    for (set, item) in sets
        .iter()
        .flat_map(|(name, set)| set.texts.iter().map(move |t| (*name, t)))
    {
        let t0 = Instant::now();
        let description = describer.describe(&item.text)?;
        let seconds = t0.elapsed().as_secs_f64();
        let scene = description
            .scenes
            .first()
            .context("a dev-set text gave no scene")?;
        // The phrases the soundscape is given: the answer's sounds that
        // keep the caption rules (speech, crowds and music are dropped
        // before any engine sees them).
        let phrases = scene.sounds();
        let catalog = crate::background::soundscape::catalog::Catalog::builtin();
        let (matched, unmatched): (Vec<&String>, Vec<&String>) = phrases
            .iter()
            .partition(|p| crate::background::soundscape::plan::match_source(catalog, p).is_some());
        let (played, bed_fits, place) = played_sources(scene, item);
        let evidence = if dump && scene.choice().is_some() {
            Some(serde_json::to_value(
                describer.gather_evidence(&item.text).0,
            )?)
        } else {
            None
        };
        let model_picks = match (scene.choice(), scene.answer()) {
            (Some(_), Some(answer)) => answer
                .sounds
                .iter()
                .filter_map(|phrase| {
                    let (source, _) =
                        crate::background::soundscape::plan::match_source(catalog, phrase)?;
                    Some(PlayedSource {
                        id: source.id.clone(),
                        fits: item.sources.contains(&source.id),
                        from: Some(crate::describe::vocabulary::Evidence::Model),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        captions.push(ScoredCaption {
            set,
            lang: item.lang.clone(),
            place_fits: (!item.places.is_empty()).then(|| item.places.contains(&place)),
            place,
            wrong_played: played.iter().filter(|p| item.wrong.contains(&p.id)).count(),
            evidence,
            model_picks,
            played,
            bed_fits,
            bed_only: scene.choice().is_some_and(|c| c.bed_only),
            catalog_matched: matched.len(),
            catalog_unmatched: unmatched.into_iter().cloned().collect(),
            method_kept: scene.method == method,
            keeps_rules: caption::rule_breaks(&scene.caption, &item.text).is_empty(),
            names_expected: item.names_expected_sound(&scene.caption),
            sources: scene.sounds().len(),
            sources_expected: scene
                .sounds()
                .iter()
                .filter(|s| item.names_expected_sound(s))
                .count(),
            llm: scene.llm_stats(),
            caption: scene.caption.clone(),
            seconds,
        });
    }
    Ok(DescribeRun {
        label: label.to_owned(),
        load_s,
        peak_rss_kb: peak_rss_kb(),
        captions,
    })
}

/// The sources the soundscape plays for a scene, as the renderer asks
/// for them (catalog mode: the chosen ids and place; otherwise the
/// answer's phrases, or the caption itself), scored against the dev set.
/// Also whether one of the place's beds fits, and the place.
fn played_sources(
    scene: &crate::describe::SceneCaption,
    item: &DevText,
) -> (Vec<PlayedSource>, bool, String) {
    use crate::background::soundscape::{catalog::Catalog, plan};
    let request = crate::render::scene_request(scene, &item.text, 1);
    let input = crate::background::soundscape::input_of(&request);
    let planned = plan::plan(Catalog::builtin(), &input, 1);
    let bed_fits = planned
        .layers
        .iter()
        .any(|l| l.role == plan::Role::Bed && item.sources.contains(&l.source));
    let played = planned
        .layers
        .iter()
        .filter(|l| l.role == plan::Role::Source)
        .map(|l| PlayedSource {
            fits: item.sources.contains(&l.source),
            from: scene
                .choice()
                .and_then(|c| c.sources.iter().find(|s| s.id == l.source).map(|s| s.from)),
            id: l.source.clone(),
        })
        .collect();
    (played, bed_fits, planned.place)
}

const AUDIOLDM2_SCRIPT: &str = include_str!("../../tests/bench/audioldm2_reference.py");
const AUDIOLDM2_RUNNER: &str = include_str!("../../quantize/runner.py");

/// The caption every background benchmark generates (the reference
/// script's too).
pub(crate) const BACKGROUND_CAPTION: &str =
    "Waves lapping against boats, seagulls calling and ropes creaking in a harbour.";

/// A reference's figures (`tests/bench/audioldm2_reference.py`).
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceBackgroundRun {
    pub(crate) load_s: f64,
    /// One classifier-free-guidance step (two UNet evaluations).
    pub(crate) unet_step_s: f64,
    pub(crate) clip_s: f64,
    pub seconds: f64,
    pub(crate) peak_rss_kb: u64,
}

/// Runs the reference benchmark: `kind` is "diffusers" (with the diffusers
/// pipeline folder) or "ort" (with the bundle).
pub(crate) fn run_reference_background(
    python: &str,
    kind: &str,
    path: &Path,
    threads: usize,
    steps: usize,
) -> Result<ReferenceBackgroundRun> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("audioldm2_reference.py");
    std::fs::write(&script, AUDIOLDM2_SCRIPT)?;
    std::fs::write(dir.path().join("runner.py"), AUDIOLDM2_RUNNER)?;
    run_reference(
        python,
        &[
            script.as_os_str(),
            kind.as_ref(),
            path.as_os_str(),
            threads.to_string().as_ref(),
            steps.to_string().as_ref(),
        ],
        &format!(
            "the {kind} reference failed (is `pip install -r quantize/requirements.txt` done?)"
        ),
    )
}

/// vivid's figures for one bundle.
#[derive(Debug, Clone)]
pub(crate) struct BackgroundBench {
    pub(crate) load_s: f64,
    /// (threads, seconds per classifier-free-guidance UNet step).
    pub(crate) unet_step_s: Vec<(usize, f64)>,
    pub steps: usize,
    pub(crate) clip_s: f64,
    pub(crate) conditioning_s: f64,
    pub(crate) denoising_s: f64,
    pub(crate) decoding_s: f64,
    pub seconds: f64,
    pub timings: Vec<crate::background::audioldm2::graph::GraphTiming>,
    pub kernels: Vec<(String, std::collections::BTreeMap<String, usize>)>,
    pub(crate) peak_rss_kb: u64,
    /// The UNet's batch: 2 when both guidance halves ran as one.
    pub unet_batch: usize,
}

/// Times of each stage of a generation.
#[derive(Default)]
struct StageClock {
    current: Option<(crate::background::Stage, Instant)>,
    spent: Vec<(crate::background::Stage, f64)>,
}

impl StageClock {
    fn close(&mut self) {
        if let Some((stage, since)) = self.current.take() {
            self.spent.push((stage, since.elapsed().as_secs_f64()));
        }
    }

    fn total(&self, stage: crate::background::Stage) -> f64 {
        self.spent
            .iter()
            .filter(|(s, _)| *s == stage)
            .map(|(_, t)| t)
            .sum()
    }
}

impl crate::background::Observer for StageClock {
    fn stage(&mut self, _clip: usize, stage: crate::background::Stage) {
        self.close();
        self.current = Some((stage, Instant::now()));
    }
}

/// Loads `bundle`, times the UNet step at each thread count, then one whole
/// clip of `steps` DPM-Solver++ steps at the last thread count.
pub(crate) fn run_vivid_background(
    bundle: &Path,
    steps: usize,
    threads: &[usize],
    mode: crate::background::audioldm2::MemoryMode,
    device: crate::background::audioldm2::graph::ComputeDevice,
    guidance_in_one_batch: Option<bool>,
) -> Result<BackgroundBench> {
    use crate::background::Stage;
    use crate::background::audioldm2::{Engine, MemoryMode, Request, SchedulerKind};
    let all = *threads.last().unwrap_or(&1);
    set_compute_threads(all);
    let t0 = Instant::now();
    let mut engine = Engine::open(bundle, mode)?;
    engine.set_device(device)?;
    engine.set_guidance_in_one_batch(guidance_in_one_batch);
    if mode == MemoryMode::Resident {
        engine.preload(&mut crate::background::Unobserved)?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    tracing::info!(load_s, rss_mib = peak_rss_kb() / 1024, "bundle loaded");
    let mut unet_step_s = Vec::new();
    if mode == MemoryMode::Resident {
        for &n in threads {
            set_compute_threads(n);
            // One untimed step first: tract sizes its scratch space then.
            engine.time_unet_step(1)?;
            let seconds = engine.time_unet_step(3)?;
            tracing::info!(threads = n, seconds, "UNet step");
            unet_step_s.push((n, seconds));
        }
    }
    set_compute_threads(all);
    let request = Request {
        caption: BACKGROUND_CAPTION.to_owned(),
        negative: "Low quality.".to_owned(),
        steps,
        scheduler: SchedulerKind::Dpm,
        guidance: 3.5,
        seed: 0,
        init_latents: None,
    };
    if device == crate::background::audioldm2::graph::ComputeDevice::Cuda {
        // One untimed short clip first: tract-cuda compiles and caches its
        // kernels on first use (diffusers' side is warmed up likewise).
        let warm_up = Request {
            steps: 2,
            ..request.clone()
        };
        engine.clip(&warm_up, 0, &mut crate::background::Unobserved)?;
        // The timed clip conditions afresh: a whole clip, text stages too.
        engine.forget_conditioning();
    }
    engine.reset_timings();
    let mut clock = StageClock::default();
    let t0 = Instant::now();
    let audio = engine.clip(&request, 0, &mut clock)?;
    let clip_s = t0.elapsed().as_secs_f64();
    clock.close();
    Ok(BackgroundBench {
        load_s,
        unet_step_s,
        steps,
        clip_s,
        conditioning_s: clock.total(Stage::Conditioning),
        denoising_s: clock.total(Stage::Denoising),
        decoding_s: clock.total(Stage::Decoding),
        seconds: audio.len() as f64 / f64::from(engine.sample_rate()),
        timings: engine.timings(),
        kernels: engine.kernels(),
        peak_rss_kb: peak_rss_kb(),
        unet_batch: engine.unet_batch().unwrap_or(1),
    })
}

/// A narration of about 30 seconds for `vivid bench render`.
pub(crate) const RENDER_TEXT: &str = "The harbour was quiet that morning. Fog lay over the water \
    and the fishing boats waited at their moorings, ropes creaking as the tide turned. \
    Somewhere beyond the breakwater a bell rang twice.\n\nIn the market square the first \
    traders were setting up their stalls. A cart rattled over the cobbles, a dog barked at the \
    pigeons, and the smell of fresh bread drifted from the bakery on the corner while the \
    church clock struck seven.\n";

/// Seconds to resample and mix one minute of narration (speech at 22.05
/// kHz over a 16 kHz background, two scenes) into 48 kHz, measured on
/// synthetic audio; median of three runs.
pub(crate) fn time_mix_per_minute() -> Result<(f64, f64)> {
    use crate::audio::resample::resample;
    use crate::mix::{MixSettings, SceneBackground, mix, scene_span};
    let speech: Vec<f32> = crate::audio::noise::gaussian(1, 22_050 * 60)
        .iter()
        .enumerate()
        .map(|(i, v)| if (i / 22_050) % 4 == 3 { 0.0 } else { 0.1 * v })
        .collect();
    let settings = MixSettings::default();
    let starts = [0.0, 30.0];
    let backgrounds: Vec<SceneBackground> = (0..2)
        .map(|i| {
            let (a, b) = scene_span(&settings, &starts, 60.0, i);
            SceneBackground {
                speech_start_s: starts[i],
                samples: crate::audio::noise::gaussian(i as u64 + 2, ((b - a) * 16_000.0) as usize)
                    .iter()
                    .map(|v| 0.05 * v)
                    .collect(),
                sample_rate: 16_000,
                channels: 1,
            }
        })
        .collect();
    let mut resample_times = Vec::new();
    let mut mix_times = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        resample(&speech, 22_050, 48_000)?;
        resample_times.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        mix(&speech, 22_050, &backgrounds, &settings)?;
        mix_times.push(t0.elapsed().as_secs_f64());
    }
    resample_times.sort_by(f64::total_cmp);
    mix_times.sort_by(f64::total_cmp);
    Ok((resample_times[1], mix_times[1]))
}

/// The soundscape benchmark's scenes: a quiet, a moderate and a busy one
/// (five sources and the place's beds, with its reverb).
pub(crate) fn soundscape_scenes() -> Vec<(&'static str, crate::background::soundscape::ScenePlan)> {
    use crate::background::soundscape::{Level, SceneInput, catalog::Catalog, plan::plan};
    let scene = |place: &str, sounds: &[&str], level: Level| {
        plan(
            Catalog::builtin(),
            &SceneInput {
                caption: String::new(),
                place: Some(place.into()),
                sounds: sounds.iter().map(|s| s.to_string()).collect(),
                level: Some(level),
                bed_only: false,
                text: String::new(),
            },
            1,
        )
    };
    vec![
        (
            "quiet church, a clock",
            scene("church", &["a clock ticking"], Level::Quiet),
        ),
        (
            "moderate forest, birds, a stream, an owl",
            scene(
                "forest",
                &["birds chirping", "a babbling stream", "an owl hooting"],
                Level::Moderate,
            ),
        ),
        (
            "busy harbour, 5 sources",
            scene(
                "harbour",
                &[
                    "gulls calling",
                    "ropes creaking",
                    "a ship's bell",
                    "oars splashing",
                    "a steam engine chugging",
                ],
                Level::Busy,
            ),
        ),
    ]
}

/// Renders `seconds` of a plan into a sink that keeps nothing (as a
/// stream to a file or a device would), returning the seconds it took.
pub(crate) fn time_soundscape(
    plan: &crate::background::soundscape::ScenePlan,
    seconds: f64,
) -> f64 {
    time_sounds(
        crate::background::soundscape::Sounds::builtin(),
        plan,
        seconds,
    )
}

/// [`time_soundscape`] with `sounds` (a library's recordings among them).
pub(crate) fn time_sounds(
    sounds: &crate::background::soundscape::Sounds,
    plan: &crate::background::soundscape::ScenePlan,
    seconds: f64,
) -> f64 {
    let frames = (seconds * 48_000.0) as usize;
    let mut checksum = 0f64;
    let started = Instant::now();
    // Nothing stops the render: `keep_going` always says yes.
    let _ = crate::background::soundscape::render_sounds_into(
        sounds,
        plan,
        frames,
        &mut |block| checksum += f64::from(block[0]),
        &mut |_| Ok(()),
    );
    let spent = started.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    spent
}

/// A sound library in `dir` for the busy scene: the gulls as three
/// recorded calls (events) and the lapping water as a 60 s recording
/// (a bed), both made from vivid's own recipes so they pass the
/// library's checks; as a museum's recordings would serve them.
pub(crate) fn write_bench_library(dir: &Path) -> Result<()> {
    use crate::background::soundscape::{alone, render};
    let write = |name: &str, id: &str, seconds: f64| -> Result<()> {
        let x = render(&alone(id), seconds);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let path = dir.join(name);
        let mut wav = hound::WavWriter::create(&path, spec)
            .with_context(|| format!("writing {}", path.display()))?;
        // The render is interleaved stereo already.
        for v in x {
            wav.write_sample((v.clamp(-1.0, 1.0) * 32_767.0) as i16)?;
        }
        wav.finalize()?;
        Ok(())
    };
    for k in 1..=3 {
        write(&format!("gull-{k}.wav"), "seagulls", 3.0)?;
    }
    write("lapping.wav", "water-lapping", 60.0)?;
    std::fs::write(
        dir.join("library.toml"),
        "[[sound]]\nid = \"seagulls\"\nfiles = [\"gull-1.wav\", \"gull-2.wav\", \"gull-3.wav\"]\nas = \"events\"\n\n\
         [[sound]]\nid = \"water-lapping\"\nfiles = [\"lapping.wav\"]\nas = \"bed\"\n",
    )?;
    Ok(())
}

/// fundsp's own 32-line stereo reverb over `seconds` of noise, the
/// reference the soundscape's room is measured against in the same run.
pub(crate) fn time_fundsp_reverb(seconds: f64) -> f64 {
    use fundsp::prelude32::{BufferVec, reverb_stereo};
    let mut unit = reverb_stereo(12.0, 1.5, 0.5);
    unit.set_sample_rate(48_000.0);
    let mut input = BufferVec::new(2);
    for i in 0..64 {
        input.set_f32(0, i, ((i * 7919) % 13) as f32 / 13.0 - 0.5);
        input.set_f32(1, i, ((i * 104_729) % 17) as f32 / 17.0 - 0.5);
    }
    let mut output = BufferVec::new(2);
    let blocks = (seconds * 48_000.0 / 64.0) as usize;
    let started = Instant::now();
    let mut checksum = 0f32;
    for _ in 0..blocks {
        unit.process(64, &input.buffer_ref(), &mut output.buffer_mut());
        checksum += output.at_f32(0, 0);
    }
    std::hint::black_box(checksum);
    started.elapsed().as_secs_f64()
}
