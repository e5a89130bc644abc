//! The `vivid` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use vivid::config::Config;
use vivid::models::Manifest;

mod cli;

use cli::bench::BenchCommand;
use cli::models::ModelsCommand;
use cli::*;

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
    /// Tell the running service what to play: play NAME, next, previous,
    /// stop, pause, resume, status (through its control socket).
    Control(ControlArgs),
    /// List the configured buttons and sensors and whether their devices
    /// are there; --dropin prints the unit drop-in they need.
    Triggers(TriggersArgs),
    /// Narrate a text file: describe its scenes, speak it, generate the
    /// backgrounds, mix, and write OUT.wav with a JSON report (OUT.json).
    Render(RenderArgs),
    /// Generate a background from a caption and write it as a WAV file:
    /// the soundscape (48 kHz stereo) or AudioLDM2 (a bundle's rate, mono).
    Background(BackgroundArgs),
    /// List the soundscape's catalog: every sound source and place, and
    /// whether a source plays its recipe or the library's recordings.
    Sounds(SoundsArgs),
    /// The sound library: folders of your own recordings that play in
    /// place of the soundscape's recipes, or as new sources.
    #[command(subcommand)]
    Library(cli::library::LibraryCommand),
    /// Measure speed and memory against the reference implementations.
    #[command(subcommand)]
    Bench(BenchCommand),
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
        Command::Sounds(args) => sounds(&config, args),
        Command::Library(command) => cli::library::library(&config, command),
        Command::Render(args) => render(&config, args),
        Command::Play(args) => play(&config, args),
        Command::Serve => {
            vivid::serve::service::serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => status(&config),
        Command::Control(args) => control(&config, args),
        Command::Triggers(args) => triggers(&config, args),
        Command::Bench(command) => cli::bench::run(config, command),
    }
}
