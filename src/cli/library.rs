//! `vivid library check DIR...`: a sound library folder checked as the
//! soundscape will load it, file by file, with what to fix.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use vivid::background::soundscape::catalog::Catalog;
use vivid::background::soundscape::library::{Library, Severity};
use vivid::config::Config;

#[derive(Debug, Subcommand)]
pub(crate) enum LibraryCommand {
    /// Check library folders (default: [background.library] dirs): each
    /// file's rate, channels, length, clipping, loudness and loop seam,
    /// each library.toml's entries; names the file and what to fix. Exit
    /// status 1 when something cannot play.
    Check {
        /// The folders.
        dirs: Vec<PathBuf>,
        /// Print the findings and measurements as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn library(config: &Config, command: LibraryCommand) -> Result<ExitCode> {
    let LibraryCommand::Check { dirs, json } = command;
    let settings = config
        .background_settings(&vivid::config::Overrides {
            library_dirs: (!dirs.is_empty()).then_some(dirs),
            ..vivid::config::Overrides::default()
        })
        .library;
    if settings.dirs.is_empty() {
        anyhow::bail!(
            "no library folder to check: name one (vivid library check DIR) or set [background.library] dirs in the config"
        );
    }
    let library = Library::load(&settings, Catalog::builtin());
    let errors = library
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "files": library.files,
                "findings": library.findings,
                "sources": library.sources.keys().collect::<Vec<_>>(),
                "decoded_mib": library.bytes as f64 / f64::from(1u32 << 20),
            }))?
        );
    } else {
        for file in &library.files {
            println!(
                "{}  {}: {} Hz, {} ch, {:.1} s, {:.1} dBFS while it sounds, {:.2} % at full scale",
                file.id,
                file.file.display(),
                file.rate,
                file.channels,
                file.seconds,
                file.active_level_db,
                file.clipped_share * 100.0
            );
        }
        for finding in &library.findings {
            println!("{finding}");
        }
        println!(
            "{} sources from the library ({}), {:.1} MiB of audio; {} errors, {} warnings",
            library.sources.len(),
            library
                .sources
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            library.bytes as f64 / f64::from(1u32 << 20),
            errors,
            library.findings.len() - errors
        );
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
