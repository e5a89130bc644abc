//! The whole pipeline for one text: describe → speak → background → mix →
//! WAV and a JSON report beside it. `vivid render` runs it; the service
//! will run the same function for every job.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::background::{self, Engine, MemoryMode, Observer, Request};
use crate::config::Config;
use crate::describe::{Describer, Description};
use crate::mix::{self, MixReport, MixSettings, SceneBackground};
use crate::output::wav::WavStream;
use crate::speech::{SpeakOptions, Voice};

/// The command that makes a bundle from real AudioLDM2 weights.
pub const MAKE_BUNDLE: &str = "python quantize/export.py cvssp/audioldm2 BUNDLE_DIR --seconds 10.24 \
     (see quantize/README.md), then set background.bundle = \"BUNDLE_DIR\"";

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

pub fn file_record(path: &Path) -> Result<FileRecord> {
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
    pub background_from_cache: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackgroundRecord {
    pub bundle: PathBuf,
    pub bundle_id: String,
    pub precision: String,
    pub steps: usize,
    pub scheduler: String,
    pub guidance: f32,
    pub negative: String,
    pub seed: u64,
    pub variations: usize,
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
    pub vivid_version: &'static str,
    pub input: FileRecord,
    pub output: PathBuf,
    pub describe_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describer_model: Option<FileRecord>,
    pub describe_seed: u32,
    pub voice: FileRecord,
    pub speaking_rate: f32,
    pub scenes: Vec<SceneRecord>,
    /// The background's settings; absent when there was no background.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<BackgroundRecord>,
    /// Why there is no background, and how to get one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_missing: Option<String>,
    pub mix: MixReport,
    pub seconds: StageSeconds,
}

/// Mix settings from the config.
pub fn mix_settings(config: &Config) -> MixSettings {
    let m = &config.mix;
    MixSettings {
        output_rate: m.output_rate,
        pre_roll_s: m.pre_roll_s,
        tail_s: m.tail_s,
        scene_crossfade_s: m.scene_crossfade_s,
        ducking: mix::DuckingSettings {
            mode: m.ducking,
            speech_over_background_lu: m.speech_over_background_lu,
            pause_rise_db: m.pause_rise_db,
            ..mix::DuckingSettings::default()
        },
        target_lufs: m.target_lufs,
        true_peak_dbtp: m.true_peak_dbtp,
    }
}

/// Renders `input` into `output` (WAV) and `output` with `.json` (the
/// report), both written atomically.
pub fn render(
    config: &Config,
    input: &Path,
    output: &Path,
    observer: &mut dyn RenderObserver,
) -> Result<RenderReport> {
    let text = crate::text::read_text(input, crate::text::DEFAULT_MAX_TEXT_BYTES)?;
    let record = file_record(input)?;
    let mut renderer = Renderer::new(config)?;
    renderer.render(
        &Job {
            text: &text,
            input: record,
            overrides: &crate::serve::job::Overrides::default(),
        },
        output,
        observer,
    )
}

/// One text to render.
pub struct Job<'a> {
    pub text: &'a str,
    /// The input file, for the report.
    pub input: FileRecord,
    pub overrides: &'a crate::serve::job::Overrides,
}

/// The pipeline with its models loaded once, for any number of texts.
pub struct Renderer {
    config: Config,
    describer: Describer,
    voice: Voice,
    engine: Option<Engine>,
    background_missing: Option<String>,
}

impl Renderer {
    /// Loads the voice and opens the background bundle (its graphs load
    /// on first use, or with [`Renderer::preload`]); the describer's model
    /// loads on first use too.
    pub fn new(config: &Config) -> Result<Renderer> {
        let voice = Voice::load(&config.voice).context(
            "loading the voice (hint: `vivid models verify` checks the default voice, \
             `vivid models fetch` installs it)",
        )?;
        let bundle = &config.background_bundle;
        let (engine, background_missing) = if bundle.join("bundle.toml").is_file() {
            let b = &config.background;
            let mode = if b.low_memory {
                MemoryMode::Low
            } else {
                MemoryMode::Resident
            };
            let mut engine = Engine::open(bundle, mode)
                .with_context(|| format!("opening the AudioLDM2 bundle {}", bundle.display()))?;
            engine.set_device(b.device)?;
            if engine.is_random_weights() {
                tracing::warn!(
                    bundle = %bundle.display(),
                    "the background bundle holds random weights (a test or benchmark bundle): the background is noise"
                );
            }
            (Some(engine), None)
        } else {
            let note = format!(
                "no AudioLDM2 bundle at {}: the narration is speech only. Make one from real weights with `{MAKE_BUNDLE}`",
                bundle.display()
            );
            tracing::warn!("{note}");
            (None, Some(note))
        };
        Ok(Renderer {
            config: config.clone(),
            describer: Describer::new(config.describe_settings()),
            voice,
            engine,
            background_missing,
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
        if let Some(engine) = &mut self.engine {
            engine.preload(&mut background::Unobserved)?;
        }
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Renders one text into `output` and its report beside it.
    pub fn render(
        &mut self,
        job: &Job<'_>,
        output: &Path,
        observer: &mut dyn RenderObserver,
    ) -> Result<RenderReport> {
        let config = self.config.clone();
        let overrides = job.overrides;
        let text = job.text;

        observer.render_stage(RenderStage::Describe);
        let started = Instant::now();
        let method = overrides.method.unwrap_or(config.describe.method);
        let settings = self.describer.settings_mut();
        let saved = (settings.caption.clone(), settings.seed);
        if let Some(caption) = &overrides.caption {
            settings.caption = Some(caption.clone());
        }
        if let Some(seed) = overrides.seed {
            settings.seed = seed;
        }
        let described = self.describer.describe_with(text, method);
        let settings = self.describer.settings_mut();
        (settings.caption, settings.seed) = saved;
        let description: Description = described.context("describing the text")?;
        let describer_model = (method == crate::describe::Method::Llm)
            .then(|| file_record(&self.describer.settings().model).ok())
            .flatten();
        let describe_s = started.elapsed().as_secs_f64();

        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Speak);
        let started = Instant::now();
        let job_voice;
        let (voice, voice_path) = match &overrides.voice {
            Some(name) => {
                let path = config.models_dir.join("voices").join(name);
                job_voice = Voice::load(&path)
                    .with_context(|| format!("loading the job's voice {}", path.display()))?;
                (&job_voice, path)
            }
            None => (&self.voice, config.voice.clone()),
        };
        let rate = overrides.rate.unwrap_or(config.speech.rate);
        let options = SpeakOptions {
            speaker: Some(config.speech.speaker),
            rate: Some(rate),
            ..SpeakOptions::default()
        };
        let silence =
            vec![0f32; (config.speech.sentence_silence * voice.sample_rate() as f32) as usize];
        let mut speech: Vec<f32> = Vec::new();
        let mut scene_starts = Vec::new();
        for scene in &description.scenes {
            scene_starts.push(speech.len() as f64 / f64::from(voice.sample_rate()));
            let scene_text = text.get(scene.span.clone()).unwrap_or_default();
            for sentence in voice
                .speak(scene_text, &options)
                .context("speaking the text")?
            {
                let sentence = sentence.context("speaking the text")?;
                if !speech.is_empty() {
                    speech.extend_from_slice(&silence);
                }
                speech.extend_from_slice(&sentence.samples);
            }
        }
        let speak_s = started.elapsed().as_secs_f64();
        let speech_s = speech.len() as f64 / f64::from(voice.sample_rate());

        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Background);
        let started = Instant::now();
        let mix_settings = mix_settings(&config);
        let mut scenes: Vec<SceneRecord> = description
            .scenes
            .iter()
            .zip(&scene_starts)
            .map(|(scene, start)| SceneRecord {
                char_span: scene.char_span.clone(),
                caption: scene.caption.clone(),
                method: scene.method.as_str(),
                fallback: scene.fallback.clone(),
                starts_at_s: mix_settings.pre_roll_s + start,
                background_seconds: None,
                background_from_cache: None,
            })
            .collect();
        let mut backgrounds = Vec::new();
        let mut background_record = None;
        if let Some(engine) = &mut self.engine {
            let b = &config.background;
            let seed = overrides.seed.map_or(b.seed, u64::from);
            let cache = background::cache::BackgroundCache::new(
                &config.background_cache_dir,
                b.cache_max_mb * 1024 * 1024,
            );
            let limits = background::long::LengthLimits {
                max_seconds: b.max_seconds,
            };
            for (index, scene) in description.scenes.iter().enumerate() {
                let (from, to) = mix::scene_span(&mix_settings, &scene_starts, speech_s, index);
                let request = Request {
                    caption: scene.caption.clone(),
                    negative: b.negative.clone(),
                    steps: b.steps,
                    scheduler: b.scheduler,
                    guidance: b.guidance,
                    seed,
                    init_latents: None,
                };
                let made = background::make_background(
                    engine,
                    &request,
                    (to - from).max(0.1),
                    b.variations,
                    limits,
                    &cache,
                    observer,
                )
                .with_context(|| {
                    format!(
                        "generating the background of scene {} (\"{}\")",
                        index + 1,
                        scene.caption
                    )
                })?;
                scenes[index].background_seconds =
                    Some(made.samples.len() as f64 / f64::from(made.sample_rate));
                scenes[index].background_from_cache = Some(made.cached);
                backgrounds.push(SceneBackground {
                    speech_start_s: scene_starts[index],
                    samples: made.samples,
                    sample_rate: made.sample_rate,
                });
            }
            background_record = Some(BackgroundRecord {
                bundle: config.background_bundle.clone(),
                bundle_id: engine.id().to_owned(),
                precision: engine.meta().precision.clone(),
                steps: b.steps,
                scheduler: b.scheduler.as_str().to_owned(),
                guidance: b.guidance,
                negative: b.negative.clone(),
                seed,
                variations: b.variations,
            });
        }
        let background_s = started.elapsed().as_secs_f64();

        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Mix);
        let started = Instant::now();
        let (samples, mix_report) =
            mix::mix(&speech, voice.sample_rate(), &backgrounds, &mix_settings)
                .context("mixing")?;
        let mix_s = started.elapsed().as_secs_f64();

        stop_if_cancelled(observer)?;
        observer.render_stage(RenderStage::Write);
        let started = Instant::now();
        let mut wav = WavStream::create(output, mix_report.output_rate)?;
        wav.write(&samples)?;
        wav.finish()?;
        let mut report = RenderReport {
            vivid_version: env!("CARGO_PKG_VERSION"),
            input: job.input.clone(),
            output: std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf()),
            describe_method: description.requested.as_str(),
            describer_model,
            describe_seed: description.seed,
            voice: file_record(&voice_path)?,
            speaking_rate: rate,
            scenes,
            background: background_record,
            background_missing: self.background_missing.clone(),
            mix: mix_report,
            seconds: StageSeconds {
                describe: describe_s,
                speak: speak_s,
                background: background_s,
                mix: mix_s,
                write: 0.0,
            },
        };
        report.seconds.write = started.elapsed().as_secs_f64();
        write_report(&sidecar_path(output), &report)?;
        Ok(report)
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
