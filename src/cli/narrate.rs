//! `vivid speak`, `vivid describe` and `vivid render`.

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::process::ExitCode;
use vivid::config::{Config, Overrides};
use vivid::describe::{Describer, Method};
use vivid::output::wav::WavStream;
use vivid::speech::Voice;
use vivid::text::{DEFAULT_MAX_TEXT_BYTES, read_text};

#[derive(Debug, Args)]
pub(crate) struct SpeakArgs {
    /// Text file to speak (UTF-8), or - for standard input.
    pub(crate) input: PathBuf,
    /// WAV file to write.
    #[arg(short, long, value_name = "OUT.wav")]
    pub(crate) output: PathBuf,
    /// Piper voice model (.onnx with its .onnx.json beside it); default:
    /// speech.voice from the config.
    #[arg(long, value_name = "PATH")]
    pub(crate) voice: Option<PathBuf>,
    /// Speaking rate: 1.0 as trained, 1.2 is 20% faster (0.25 to 4).
    #[arg(long, value_name = "R")]
    pub(crate) rate: Option<f32>,
    /// Speaker of a multi-speaker voice.
    #[arg(long, value_name = "N")]
    pub(crate) speaker: Option<i64>,
    /// Seed of the voice's noise (default: speech.seed): the same text,
    /// voice and seed give the same samples.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// Text file to describe (UTF-8), or - for standard input.
    pub(crate) input: PathBuf,
    /// llm: the language model describes the scene (default from the
    /// config); text: the text itself; fixed: the caption given.
    #[arg(long, value_name = "METHOD")]
    pub(crate) method: Option<Method>,
    /// The caption for --method fixed (default: describe.caption).
    #[arg(long, value_name = "TEXT")]
    pub(crate) caption: Option<String>,
    /// GGUF language model (default: describe.model from the config).
    #[arg(long, value_name = "PATH")]
    pub(crate) model: Option<PathBuf>,
    /// all-MiniLM-L6-v2 safetensors of the semantic evidence, with its
    /// NAME.tokenizer.json beside it (default: describe.embedder).
    #[arg(long, value_name = "PATH")]
    pub(crate) embedder: Option<PathBuf>,
    /// Sampling seed (default: describe.seed).
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u32>,
    /// catalog: choose among the soundscape's places and sources; free:
    /// write sound phrases (for AudioLDM2); auto (default:
    /// describe.vocabulary): catalog with the soundscape.
    #[arg(long, value_name = "VOCABULARY")]
    pub(crate) vocabulary: Option<vivid::describe::VocabularyChoice>,
    /// Print the whole record as JSON: scenes with spans, captions, the
    /// model's answers, fallbacks and timings.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// UTF-8 text file to narrate.
    pub(crate) input: PathBuf,
    /// Output WAV (default: the input's name in paths.output_dir).
    #[arg(short, long, value_name = "OUT.wav")]
    pub(crate) output: Option<PathBuf>,
    /// Background engine: auto, soundscape or audioldm2 (default:
    /// background.engine).
    #[arg(long, value_name = "ENGINE")]
    pub(crate) engine: Option<vivid::background::EngineChoice>,
    /// AudioLDM2 bundle folder (default: background.audioldm2.bundle);
    /// implies --engine audioldm2.
    #[arg(long, value_name = "DIR")]
    pub(crate) bundle: Option<PathBuf>,
    /// Play the narration when it is written (playback.device). A playback
    /// failure is reported but does not fail the render.
    #[arg(long)]
    pub(crate) play: bool,
    /// Also draw the mix (levels, ducking gain, scene changes, loudness
    /// target) into this PNG.
    #[arg(long, value_name = "OUT.png")]
    pub(crate) plot: Option<PathBuf>,
}

pub(crate) fn speak(config: &Config, args: SpeakArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let text = read_text(&args.input, DEFAULT_MAX_TEXT_BYTES)?;
    let settings = config.speech_settings(&Overrides {
        voice: args.voice,
        rate: args.rate,
        speaker: args.speaker,
        speech_seed: args.seed,
        ..Overrides::default()
    });
    let voice = Voice::load(&settings.voice, settings.seed)
        .with_context(|| format!("loading the voice ({})", vivid::speech::VOICE_HINT))?;
    let mut wav = WavStream::create(&args.output, voice.sample_rate())?;
    let mut sentences = 0;
    for sentence in voice
        .speak(&text, &settings.options)
        .with_context(|| format!("speaking {}", args.input.display()))?
    {
        let sentence = sentence.with_context(|| format!("speaking {}", args.input.display()))?;
        if sentences > 0 {
            wav.write_silence(settings.sentence_silence)?;
        }
        wav.write(&sentence.samples)?;
        sentences += 1;
        tracing::info!(sentence = sentences, phonemes = %sentence.phonemes, "spoken");
    }
    let seconds = wav.duration();
    wav.finish()?;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {}: {sentences} sentences, {seconds:.1} s of speech in {elapsed:.1} s",
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Progress of a render on the terminal: the stage, then the background's
/// denoising steps.
pub(crate) struct RenderProgress {
    pub(crate) bar: ProgressBar,
    pub(crate) background: super::progress::BackgroundBar,
    pub(crate) started: std::time::Instant,
}

impl vivid::background::Observer for RenderProgress {
    fn clips(&mut self, count: usize) {
        self.background.clips(count);
    }
    fn stage(&mut self, clip: usize, stage: vivid::background::Stage) {
        self.background.stage(clip, stage);
    }
    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.background.step(clip, done, total);
    }
}

impl vivid::render::RenderObserver for RenderProgress {
    fn render_stage(&mut self, stage: vivid::render::RenderStage) {
        tracing::info!(
            elapsed_s = format!("{:.1}", self.started.elapsed().as_secs_f32()),
            "{}",
            stage.label()
        );
        self.bar.set_message(stage.label());
    }
}

pub(crate) fn render(config: &Config, args: RenderArgs) -> Result<ExitCode> {
    let overrides = Overrides {
        engine: args.engine,
        bundle: args.bundle,
        ..Overrides::default()
    };
    let settings = config.render_settings(&overrides);
    let output = match args.output {
        Some(path) => path,
        None => {
            let stem = args
                .input
                .file_stem()
                .map_or_else(|| "narration".into(), |s| s.to_string_lossy().into_owned());
            config.output_dir.join(format!("{stem}.wav"))
        }
    };
    let bar = super::progress::bar("{spinner} {elapsed_precise} {bar:20} {msg}");
    let mut progress = RenderProgress {
        bar: bar.clone(),
        background: super::progress::BackgroundBar::new(bar.clone()),
        started: std::time::Instant::now(),
    };
    let report = vivid::render::render(&settings, &args.input, &output, &mut progress)?;
    bar.finish_and_clear();
    if let Some(note) = &report.background_note {
        eprintln!("vivid: {note}");
    }
    eprintln!(
        "wrote {} ({:.1} s: {:.1} s of speech over a {} background, {} scene(s), {:.1} LUFS, true peak {:.1} dBTP{}) and {}",
        output.display(),
        report.mix.duration_s,
        report.mix.speech_s,
        report.background.engine.as_str(),
        report.scenes.len(),
        report.mix.integrated_lufs,
        report.mix.true_peak_dbtp,
        report
            .mix
            .speech_over_background_lu
            .map(|d| format!(", speech {d:.1} LU over the background"))
            .unwrap_or_default(),
        vivid::render::sidecar_path(&output).display()
    );
    if let Some(png) = &args.plot {
        let marks: Vec<vivid::mix::plot::SceneMark<'_>> = report
            .scenes
            .iter()
            .map(|s| vivid::mix::plot::SceneMark {
                at_s: s.starts_at_s,
                caption: &s.caption,
            })
            .collect();
        vivid::mix::plot::draw(png, &report.mix, &marks, settings.mix.target_lufs)
            .map_err(|e| anyhow::anyhow!("{e} (the narration itself was written)"))?;
        eprintln!("drew the mix into {}", png.display());
    }
    if args.play {
        let mut sink = vivid::output::play::AlsaSink::new(config.playback_settings(&overrides));
        if let Err(e) = vivid::output::play::play_file(&mut sink, &output) {
            eprintln!("vivid: warning: the narration was written but could not be played: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a scene got its sounds: each chosen source and the place with the
/// evidence that chose it and its total, the setting, what was missing.
fn print_choice(choice: &vivid::describe::CatalogChoice) {
    let evidence = |from: Option<vivid::describe::vocabulary::Evidence>| {
        from.map(|f| format!("{f:?}").to_lowercase())
            .unwrap_or_else(|| "-".to_owned())
    };
    for source in &choice.sources {
        let total = source
            .scores
            .as_ref()
            .map_or(String::new(), |s| format!(" {:.2}", s.total));
        println!(
            "  source {} ({}{total})",
            source.id,
            evidence(Some(source.from))
        );
    }
    if choice.bed_only {
        println!("  no source: the place's bed alone");
    }
    if let Some(place) = &choice.place {
        let total = choice
            .place_scores
            .as_ref()
            .map_or(String::new(), |s| format!(" {:.2}", s.total));
        println!("  place {place} ({}{total})", evidence(choice.place_from));
    }
    if !choice.setting.cues.is_empty() {
        let cues: Vec<String> = choice
            .setting
            .cues
            .iter()
            .map(|c| format!("{c:?}").to_lowercase())
            .collect();
        println!("  setting: {}", cues.join(", "));
    }
    for warning in &choice.warnings {
        println!("  missing evidence: {warning}");
    }
}

pub(crate) fn describe(config: &Config, args: DescribeArgs) -> Result<ExitCode> {
    let text = read_text(&args.input, DEFAULT_MAX_TEXT_BYTES)?;
    let settings = config.describer_settings(&Overrides {
        method: args.method,
        caption: args.caption,
        describer_model: args.model,
        embedder_model: args.embedder,
        vocabulary: args.vocabulary,
        describe_seed: args.seed,
        ..Overrides::default()
    });
    let mut describer = Describer::new(settings);
    let description = describer
        .describe(&text)
        .with_context(|| format!("describing {}", args.input.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&description)?);
    } else {
        for (index, scene) in description.scenes.iter().enumerate() {
            println!(
                "scene {} (characters {}..{}, {}, {:.1} s): {}",
                index + 1,
                scene.char_span.start,
                scene.char_span.end,
                scene.method.as_str(),
                scene.seconds,
                scene.caption
            );
            if let Some(choice) = scene.choice() {
                print_choice(choice);
            }
        }
    }
    for scene in description.fallbacks() {
        if let Some(reason) = &scene.fallback {
            eprintln!(
                "vivid: warning: characters {}..{} fell back to the text itself: {reason}",
                scene.char_span.start, scene.char_span.end
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
