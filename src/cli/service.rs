//! `vivid status` and `vivid doctor` (`vivid serve` is the service itself).

use anyhow::{Context, Result};
use std::process::ExitCode;
use vivid::config::{CONFIG_ENV, Config, SYSTEM_CONFIG};
use vivid::doctor::{self, Status};
use vivid::models::Manifest;

pub(crate) fn run_doctor(config: &Config, manifest: &Manifest) -> Result<ExitCode> {
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

pub(crate) fn status(config: &Config) -> Result<ExitCode> {
    use vivid::serve::service::{ServiceState, ServiceStatus, status_path};
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
    let alive = std::path::Path::new(&format!("/proc/{}", s.pid)).exists()
        && s.state != ServiceState::Stopped;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if alive {
        println!(
            "vivid serve (pid {}) up {} s: {}",
            s.pid,
            now.saturating_sub(s.started_unix),
            s.state.as_str()
        );
    } else {
        println!(
            "vivid serve is not running (last seen {} s ago)",
            now.saturating_sub(s.updated_unix)
        );
    }
    println!("waiting: {}", s.waiting);
    if let Some(disk) = &s.disk {
        println!(
            "waiting for disk space since {} s: {} needs {}, {} free in {} (free some space; the job starts by itself)",
            now.saturating_sub(disk.since_unix),
            disk.job,
            vivid::serve::disk::human_bytes(disk.needed_bytes),
            vivid::serve::disk::human_bytes(disk.available_bytes),
            disk.folder.display()
        );
    }
    if let Some(problem) = &s.models {
        println!(
            "waiting for models: {problem}\n  install them as the service user with `vivid models fetch` \
             (or `--wheels DIR --offline` from a USB stick); the service tries again every 30 s"
        );
    }
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
