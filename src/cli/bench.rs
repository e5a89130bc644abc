//! `vivid bench`: the arguments of each benchmark, mapped onto
//! [`vivid::bench::report`]'s options.

use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vivid::bench::report;
use vivid::config::Config;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Text to speech: vivid (tract) against piper-tts 1.8 (onnxruntime) on
    /// the same sentences, one thread and all threads. Needs
    /// `pip install piper-tts==1.8.0` for the reference.
    Tts(BenchTtsArgs),
    /// The describer on its two development sets (46 texts that name their
    /// sounds, 78 that imply them, 16 of those in German, French, Spanish
    /// and Chinese): texts with a fitting source, the share of played
    /// sources that fit, the place, latency, cold start and peak memory;
    /// catalog mode whole and with each part of its evidence left out, for
    /// each model given, against method 2 (the text itself).
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
    /// Each soundscape class against real recordings of its sound (a
    /// folder of one sub-folder a class: rain/, wind/, hooves/, ...; the
    /// tests fetch one with tests/references): the references told apart
    /// with each held out, then vivid's render of each class's caption and
    /// the class it lies nearest. Exit status 1 when a render lies nearer
    /// another class than its own.
    Realism(BenchRealismArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchRealismArgs {
    /// The folder of reference recordings.
    #[arg(long, value_name = "DIR")]
    pub(crate) references: PathBuf,
    /// Print the results as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchCompareArgs {
    /// The bundle.
    #[arg(long, value_name = "DIR")]
    pub(crate) bundle: PathBuf,
    /// The component to compare: clap_text, t5_encoder, projection, gpt2,
    /// unet, vae_decoder or vocoder.
    #[arg(long, value_name = "NAME")]
    pub(crate) graph: String,
    /// The other side: cuda, or cpu (vivid's own CPU ops against tract's).
    #[arg(long, value_name = "DEVICE", default_value = "cuda")]
    pub(crate) device: vivid::background::audioldm2::graph::ComputeDevice,
    /// The graph's float inputs, in bundle.toml's order, as .npy (e.g.
    /// latents_final_scaled.npy from `vivid background --record`); without
    /// them, seeded samples of the declared shapes.
    #[arg(long, value_name = "FILE.npy")]
    pub(crate) input: Vec<PathBuf>,
    /// Largest difference, relative to the CPU's peak, still counted as
    /// rounding.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) tolerance: f32,
    /// Print every node, not only where they part and the worst.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchRenderArgs {
    /// AudioLDM2 bundle for the background (default: background.bundle).
    #[arg(long, value_name = "DIR")]
    pub(crate) bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchBackgroundArgs {
    /// soundscape: the soundscape engine (speed a core, memory at two
    /// lengths, against fundsp's own reverb); audioldm2 (the default): the
    /// bundle given with --bundle.
    #[arg(long, value_name = "ENGINE", default_value = "audioldm2")]
    pub(crate) engine: vivid::background::EngineChoice,
    /// The AudioLDM2 bundle to measure.
    #[arg(long, value_name = "DIR", required_if_eq("engine", "audioldm2"))]
    pub(crate) bundle: Option<PathBuf>,
    /// DPM-Solver++ steps of the timed clip.
    #[arg(long, default_value_t = 25)]
    pub(crate) steps: usize,
    /// DDIM steps to project a whole clip for (from the measured step).
    #[arg(long, default_value_t = 200)]
    pub(crate) ddim_steps: usize,
    /// Measure the low-memory mode (peak memory and clip time only).
    #[arg(long)]
    pub(crate) low_memory: bool,
    /// Python with diffusers, torch and onnxruntime (quantize/requirements.txt)
    /// for the references; without it only vivid is measured.
    #[arg(long, value_name = "PYTHON")]
    pub(crate) python: Option<String>,
    /// The diffusers pipeline folder the bundle was exported from (for the
    /// diffusers reference).
    #[arg(long, value_name = "DIR")]
    pub(crate) pipeline: Option<PathBuf>,
    /// Where vivid and the diffusers reference run: cpu, or cuda (a build
    /// with `--features cuda-background`; the onnxruntime reference is
    /// then left out, it runs on the CPU only).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub(crate) device: vivid::background::audioldm2::graph::ComputeDevice,
    /// Instead: time every op of one UNet pass, the VAE and the vocoder on
    /// one CPU thread and print the seconds per kind of op.
    #[arg(long)]
    pub(crate) profile: bool,
    /// Run the two guidance halves as one UNet batch of 2, or as two runs
    /// of 1 (default: 2 on the GPU, 1 on the CPU; 2 needs a UNet exported
    /// with a free batch axis).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(crate) unet_batch: Option<u8>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchDescribeArgs {
    /// GGUF model to measure; may be given more than once (default:
    /// describe.model from the config). Each runs in its own process so
    /// its peak memory is its own.
    #[arg(long, value_name = "PATH")]
    pub(crate) model: Vec<PathBuf>,
    /// Print every caption.
    #[arg(long)]
    pub(crate) captions: bool,

    /// Internal: measure one model in this process and print JSON.
    #[arg(long, hide = true, value_name = "PATH")]
    pub(crate) single: Option<PathBuf>,
    /// Also measure free captions (for AudioLDM2's free-text prompts).
    #[arg(long)]
    pub(crate) free: bool,
    /// Write every text's evidence (every source's and place's scores) of
    /// the first model's full run to FILE, one JSON line a text.
    #[arg(long, value_name = "FILE")]
    pub(crate) dump: Option<PathBuf>,
    /// Internal, with --single: full, no-model, no-meaning, no-setting,
    /// words or free.
    #[arg(long, hide = true, default_value = "full", value_parser = ["full", "no-model", "no-meaning", "no-setting", "words", "free"])]
    pub(crate) variant: String,
}

#[derive(Debug, Args)]
pub(crate) struct BenchTtsArgs {
    /// Piper voice model; default: speech.voice from the config.
    #[arg(long, value_name = "PATH")]
    pub(crate) voice: Option<PathBuf>,
    /// Python with piper-tts installed.
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Also print where tract spends its time, by op, for one sentence.
    #[arg(long)]
    pub(crate) profile: bool,
}

/// Runs one benchmark.
pub(crate) fn run(config: Config, command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Tts(a) => report::tts(
            &config,
            report::TtsOptions {
                voice: a.voice,
                python: a.python,
                profile: a.profile,
            },
        ),
        BenchCommand::Describe(a) => report::describe(
            &config,
            report::DescribeOptions {
                model: a.model,
                captions: a.captions,
                single: a.single,
                variant: report::DescribeVariant::ALL
                    .iter()
                    .find(|(n, _)| *n == a.variant)
                    .map_or(report::DescribeVariant::Full, |(_, v)| *v),
                free: a.free,
                dump: a.dump,
            },
        ),
        BenchCommand::Background(a) => report::background(report::BackgroundOptions {
            engine: a.engine,
            bundle: a.bundle,
            steps: a.steps,
            ddim_steps: a.ddim_steps,
            low_memory: a.low_memory,
            python: a.python,
            pipeline: a.pipeline,
            device: a.device,
            profile: a.profile,
            unet_batch: a.unet_batch,
        }),
        BenchCommand::Compare(a) => report::compare(report::CompareOptions {
            bundle: a.bundle,
            graph: a.graph,
            device: a.device,
            input: a.input,
            tolerance: a.tolerance,
            all: a.all,
        }),
        BenchCommand::Realism(a) => report::realism(&a.references, a.json),
        BenchCommand::Render(a) => {
            report::render(&config, report::RenderOptions { bundle: a.bundle })
        }
    }
}
