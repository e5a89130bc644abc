//! `vivid play`.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vivid::config::Config;

#[derive(Debug, Args)]
pub(crate) struct PlayArgs {
    /// WAV files to play, in order (through the same play queue the
    /// service uses).
    #[arg(required = true)]
    pub(crate) inputs: Vec<PathBuf>,
    /// ALSA device (default: playback.device).
    #[arg(long, value_name = "PCM")]
    pub(crate) device: Option<String>,
    /// Volume 0 to 1 (default: playback.volume).
    #[arg(long, value_name = "V")]
    pub(crate) volume: Option<f32>,
}

pub(crate) fn play(config: &Config, args: PlayArgs) -> Result<ExitCode> {
    use vivid::output::play::{AlsaSink, play_file};
    if let Some(volume) = args.volume {
        anyhow::ensure!(
            (0.0..=1.0).contains(&volume),
            "--volume {volume} is outside 0 to 1"
        );
    }
    let settings = config.playback_settings(&vivid::config::Overrides {
        device: args.device,
        volume: args.volume,
        ..vivid::config::Overrides::default()
    });
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
