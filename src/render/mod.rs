//! The whole pipeline for one text: describe → speak → background → mix →
//! WAV and a JSON report beside it. `vivid render` runs it; the service
//! runs the same [`Renderer`] for every job. Each stage is one method
//! returning a typed value; the stages themselves know nothing of each
//! other. The renderer takes [`RenderSettings`], resolved by the config;
//! it never reads the config itself.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::background::{
    self, Background, EngineRecord, Generator, Observer, SceneRecipe, SceneRequest,
};
use crate::describe::{CallOptions, Describer, Description, Method};
use crate::mix::{self, MixReport, SceneBackground};
use crate::output::wav::WavStream;
use crate::speech::{VOICE_HINT, Voice};

mod settings;

pub use settings::{
    RenderSettings, SpeechSettings, catalog_vocabulary, catalog_vocabulary_with,
    describe_vocabulary,
};

/// The stages, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStage {
    Describe,
    Speak,
    Background,
    Mix,
    Write,
}

impl RenderStage {
    pub fn label(self) -> &'static str {
        match self {
            RenderStage::Describe => "describing the scenes",
            RenderStage::Speak => "speaking",
            RenderStage::Background => "generating the background",
            RenderStage::Mix => "mixing",
            RenderStage::Write => "writing",
        }
    }
}

/// Watches a render: the stage, and the background's own progress.
pub trait RenderObserver: Observer {
    fn render_stage(&mut self, _stage: RenderStage) {}
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

pub(crate) fn file_record(path: &Path) -> Result<FileRecord> {
    Ok(FileRecord {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        sha256: crate::models::sha256_file(path)
            .with_context(|| format!("reading {}", path.display()))?,
        bytes: std::fs::metadata(path)?.len(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct SceneRecord {
    pub char_span: std::ops::Range<usize>,
    pub caption: String,
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Where the scene's first sentence starts in the output, in seconds.
    pub starts_at_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) background_from_cache: Option<bool>,
    /// Catalog mode: the place and sources the describer chose, each with
    /// its evidence (the text or the model), or the place's bed alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<crate::describe::CatalogChoice>,
    /// What the background engine played for this scene (for the
    /// soundscape: place, sources with their ids, unmatched phrases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<SceneRecipe>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSeconds {
    pub describe: f64,
    pub speak: f64,
    pub background: f64,
    pub mix: f64,
    pub write: f64,
}

/// The JSON report written beside the WAV.
#[derive(Debug, Clone, Serialize)]
pub struct RenderReport {
    pub(crate) vivid_version: &'static str,
    pub input: FileRecord,
    pub output: PathBuf,
    pub(crate) describe_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describer_model: Option<FileRecord>,
    pub describe_seed: u32,
    pub voice: FileRecord,
    pub speaking_rate: f32,
    /// The seed of the voice's noise (`speech.seed`).
    pub speech_seed: u64,
    pub scenes: Vec<SceneRecord>,
    /// The background engine and its settings.
    pub background: EngineRecord,
    /// Why `auto` chose the engine it did, when that is worth saying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_note: Option<String>,
    pub mix: MixReport,
    pub seconds: StageSeconds,
}

/// Renders `input` into `output` (WAV) and `output` with `.json` (the
/// report), both written atomically.
pub fn render(
    settings: &RenderSettings,
    input: &Path,
    output: &Path,
    observer: &mut dyn RenderObserver,
) -> Result<RenderReport> {
    let text = crate::text::read_text(input, crate::text::DEFAULT_MAX_TEXT_BYTES)?;
    let record = file_record(input)?;
    let mut renderer = Renderer::new(settings)?;
    renderer.render(
        &Job {
            text: &text,
            input: record,
            settings,
        },
        output,
        observer,
    )
}

/// One text to render.
pub(crate) struct Job<'a> {
    pub text: &'a str,
    /// The input file, for the report.
    pub input: FileRecord,
    /// The job's settings: the renderer's own, or with a job's overrides
    /// (`Config::render_settings`). A voice other than the renderer's is
    /// loaded for the job; the describer's model and the background
    /// engine are the renderer's.
    pub settings: &'a RenderSettings,
}

/// The speech of a whole text, and where each scene starts in it.
struct Speech {
    samples: Vec<f32>,
    sample_rate: u32,
    scene_starts_s: Vec<f64>,
    voice: PathBuf,
    rate: f32,
    seed: u64,
}

impl Speech {
    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// The pipeline with its models loaded once, for any number of texts.
pub(crate) struct Renderer {
    describer: Describer,
    voice: Voice,
    background: Box<dyn Generator>,
    background_note: Option<String>,
}

impl Renderer {
    /// Loads the voice and opens the background engine (AudioLDM2's graphs
    /// load on first use, or with [`Renderer::preload`]); the describer's
    /// model loads on first use too.
    pub fn new(settings: &RenderSettings) -> Result<Renderer> {
        let voice = Voice::load(&settings.speech.voice, settings.speech.seed)
            .context(format!("loading the voice ({VOICE_HINT})"))?;
        let background_settings = &settings.background;
        let opened = background::open(background_settings).with_context(|| {
            format!(
                "opening the background engine ({})",
                background_settings.audioldm2.bundle.display()
            )
        })?;
        // The engine actually opened decides `auto` (a bundle that cannot
        // be used falls back to the soundscape).
        let mut describe_settings = settings.describe.clone();
        describe_settings.vocabulary = describe_vocabulary(
            settings.vocabulary,
            opened.generator.kind(),
            &background_settings.library.dirs,
        );
        Ok(Renderer {
            describer: Describer::new(describe_settings),
            voice,
            background: opened.generator,
            background_note: opened.note,
        })
    }

    /// Loads every model now (a service does, to fail at start rather
    /// than at the first job).
    pub fn preload(&mut self) -> Result<()> {
        if let Err(e) = self.describer.load() {
            // The describer falls back to the text itself per scene; a
            // missing model is reported, not fatal.
            tracing::warn!("describer model: {e}");
        }
        self.background.load(&mut background::Unobserved)?;
        Ok(())
    }

    /// Renders one text into `output` and its report beside it.
    pub fn render(
        &mut self,
        job: &Job<'_>,
        output: &Path,
        observer: &mut dyn RenderObserver,
    ) -> Result<RenderReport> {
        let clock = Instant::now();
        let (description, describer_model) = self.describe(job, observer)?;
        let describe_s = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let speech = self.speak(job, &description, observer)?;
        let speak_s = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let backgrounds = self.backgrounds(job, &description, &speech, observer)?;
        let background_s = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let (samples, mix_report) = self.mix(job, &speech, &backgrounds, observer)?;
        let mix_s = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Write);
        let mut wav =
            WavStream::create_channels(output, mix_report.output_rate, mix_report.channels)?;
        wav.write(&samples)?;
        wav.finish()?;
        let scenes = Self::scene_records(
            job.settings.mix.pre_roll_s,
            &description,
            &speech,
            backgrounds,
        );
        let mut report = RenderReport {
            vivid_version: env!("CARGO_PKG_VERSION"),
            input: job.input.clone(),
            output: std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf()),
            describe_method: description.requested.as_str(),
            describer_model,
            describe_seed: description.seed,
            voice: file_record(&speech.voice)?,
            speaking_rate: speech.rate,
            speech_seed: speech.seed,
            scenes,
            background: self.background.report(job.settings.background.seed),
            background_note: self.background_note.clone(),
            mix: mix_report,
            seconds: StageSeconds {
                describe: describe_s,
                speak: speak_s,
                background: background_s,
                mix: mix_s,
                write: 0.0,
            },
        };
        report.seconds.write = clock.elapsed().as_secs_f64();
        write_report(&sidecar_path(output), &report)?;
        Ok(report)
    }

    /// Mixes the speech over the scenes' backgrounds.
    fn mix(
        &self,
        job: &Job<'_>,
        speech: &Speech,
        backgrounds: &[Background],
        observer: &mut dyn RenderObserver,
    ) -> Result<(Vec<f32>, mix::MixReport)> {
        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Mix);
        let scene_backgrounds: Vec<SceneBackground> = backgrounds
            .iter()
            .zip(&speech.scene_starts_s)
            .map(|(b, start)| SceneBackground {
                speech_start_s: *start,
                samples: b.samples.clone(),
                sample_rate: b.sample_rate,
                channels: b.channels,
            })
            .collect();
        mix::mix(
            &speech.samples,
            speech.sample_rate,
            &scene_backgrounds,
            &job.settings.mix,
        )
        .context("mixing")
    }

    /// Describes the text's scenes with the job's method, caption and seed.
    fn describe(
        &mut self,
        job: &Job<'_>,
        observer: &mut dyn RenderObserver,
    ) -> Result<(Description, Option<FileRecord>)> {
        observer.render_stage(RenderStage::Describe);
        let s = job.settings;
        let options = CallOptions {
            method: Some(s.describe.method),
            caption: s.describe.caption.clone(),
            seed: Some(s.describe.seed),
            sounds: s.sounds.clone(),
            place: s.place.clone(),
        };
        let description = self
            .describer
            .describe_call(job.text, &options)
            .context("describing the text")?;
        let model = (description.requested == Method::Llm)
            .then(|| file_record(&self.describer.settings().model).ok())
            .flatten();
        Ok((description, model))
    }

    /// Speaks every scene, sentence by sentence, with the configured
    /// silence between sentences; notes where each scene starts.
    fn speak(
        &mut self,
        job: &Job<'_>,
        description: &Description,
        observer: &mut dyn RenderObserver,
    ) -> Result<Speech> {
        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Speak);
        let speech = &job.settings.speech;
        let job_voice;
        let voice = if speech.voice == self.voice.model_path && speech.seed == self.voice.seed {
            &self.voice
        } else {
            job_voice = Voice::load(&speech.voice, speech.seed)
                .with_context(|| format!("loading the job's voice {}", speech.voice.display()))?;
            &job_voice
        };
        let options = &speech.options;
        let sample_rate = voice.sample_rate();
        let silence = vec![0f32; (speech.sentence_silence * sample_rate as f32) as usize];
        let mut samples: Vec<f32> = Vec::new();
        let mut scene_starts_s = Vec::new();
        for scene in &description.scenes {
            scene_starts_s.push(samples.len() as f64 / f64::from(sample_rate));
            let scene_text = job.text.get(scene.span.clone()).unwrap_or_default();
            for sentence in voice
                .speak(scene_text, options)
                .context("speaking the text")?
            {
                let sentence = sentence.context("speaking the text")?;
                if !samples.is_empty() {
                    samples.extend_from_slice(&silence);
                }
                samples.extend_from_slice(&sentence.samples);
            }
        }
        Ok(Speech {
            samples,
            sample_rate,
            scene_starts_s,
            voice: speech.voice.clone(),
            rate: options.rate.unwrap_or(1.0),
            seed: voice.seed,
        })
    }

    /// One background per scene, as long as the scene lasts in the mix.
    fn backgrounds(
        &mut self,
        job: &Job<'_>,
        description: &Description,
        speech: &Speech,
        observer: &mut dyn RenderObserver,
    ) -> Result<Vec<Background>> {
        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Background);
        let (text, seed) = (job.text, job.settings.background.seed);
        let cache = job.settings.background.cache();
        let mut made = Vec::with_capacity(description.scenes.len());
        for (index, scene) in description.scenes.iter().enumerate() {
            let (from, to) = mix::scene_span(
                &job.settings.mix,
                &speech.scene_starts_s,
                speech.seconds(),
                index,
            );
            let request = scene_request(scene, text, seed);
            let background = self
                .background
                .make(&request, (to - from).max(0.1), &cache, observer)
                .with_context(|| {
                    format!(
                        "generating the background of scene {} (\"{}\")",
                        index + 1,
                        scene.caption
                    )
                })?;
            made.push(background);
        }
        Ok(made)
    }

    fn scene_records(
        pre_roll_s: f64,
        description: &Description,
        speech: &Speech,
        backgrounds: Vec<Background>,
    ) -> Vec<SceneRecord> {
        description
            .scenes
            .iter()
            .zip(&speech.scene_starts_s)
            .zip(backgrounds)
            .map(|((scene, start), background)| SceneRecord {
                char_span: scene.char_span.clone(),
                caption: scene.caption.clone(),
                method: scene.method.as_str(),
                fallback: scene.fallback.clone(),
                starts_at_s: pre_roll_s + start,
                background_seconds: Some(background.seconds()),
                background_from_cache: background.cached,
                choice: scene.choice().cloned(),
                background: Some(background.recipe),
            })
            .collect()
    }
}

/// What the background engine is asked for a described scene: in
/// catalog mode the chosen place and source ids (or the place's bed
/// alone), else the model's place and sound phrases, or the caption;
/// with the scene's part of the narration `text`.
pub(crate) fn scene_request(
    scene: &crate::describe::SceneCaption,
    text: &str,
    seed: u64,
) -> SceneRequest {
    let scene_text = text.get(scene.span.clone()).unwrap_or_default().to_owned();
    use crate::describe::LlmMade;
    let (place, sounds, level, bed_only) = match &scene.made {
        Some(LlmMade::Catalog { sounds, choice, .. }) => (
            choice.place.clone(),
            sounds.clone(),
            choice.level,
            choice.bed_only,
        ),
        // The caption's phrases, or the answer's where the caption kept
        // none.
        Some(LlmMade::Free { answer, sounds, .. }) => (
            Some(answer.place.clone()),
            if sounds.is_empty() {
                answer.sounds.clone()
            } else {
                sounds.clone()
            },
            Some(answer.level),
            false,
        ),
        None => (None, Vec::new(), None, false),
    };
    SceneRequest {
        caption: scene.caption.clone(),
        place,
        sounds,
        level: level.map(scene_level),
        bed_only,
        text: scene_text,
        seed,
    }
}

/// The describer's ambience level as the background's.
fn scene_level(level: crate::describe::AmbienceLevel) -> background::Level {
    use crate::describe::AmbienceLevel;
    match level {
        AmbienceLevel::Quiet => background::Level::Quiet,
        AmbienceLevel::Moderate => background::Level::Moderate,
        AmbienceLevel::Busy => background::Level::Busy,
    }
}

fn stop_if_cancelled(observer: &dyn RenderObserver) -> Result<()> {
    match observer.cancelled() {
        Some(reason) => anyhow::bail!("{reason}"),
        None => Ok(()),
    }
}

/// `OUT.wav` → `OUT.json`.
pub fn sidecar_path(output: &Path) -> PathBuf {
    output.with_extension("json")
}

fn write_report(path: &Path, report: &RenderReport) -> Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec_pretty(report)?;
    let mut file = crate::fsutil::AtomicFile::create(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(&json)
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    file.commit()
        .with_context(|| format!("writing {}", path.display()))
}
