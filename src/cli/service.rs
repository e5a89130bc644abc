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
    use vivid::serve::status::{ServiceState, ServiceStatus, status_path};
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
    print_control(&s.control);
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

#[derive(Debug, clap::Args)]
pub(crate) struct ControlArgs {
    /// The request: play NAME, next, previous, stop, pause, resume or
    /// status (README, "Buttons, sensors and the control socket").
    #[arg(required = true, value_name = "REQUEST")]
    pub(crate) request: Vec<String>,
    /// The service's socket (default: control.socket from the config).
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<std::path::PathBuf>,
    /// Print the service's answer as it came (one JSON line).
    #[arg(long)]
    pub(crate) json: bool,
}

/// `vivid control`: one request to the running service.
pub(crate) fn control(config: &Config, args: ControlArgs) -> Result<ExitCode> {
    let socket = args.socket.unwrap_or_else(|| config.control_socket.clone());
    let line = args.request.join(" ");
    // Refused here what the service would refuse, with the same words.
    line.parse::<vivid::serve::control::Action>()
        .map_err(|reason| anyhow::anyhow!("{reason}"))?;
    let answer = vivid::serve::control::request(&socket, &line).map_err(|e| {
        let hint = match &e {
            vivid::serve::control::ControlError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "only root and the vivid group may use it: `sudo adduser $USER vivid`, then log in again"
                }
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    "is the service running? `systemctl status vivid`"
                }
                _ => "`vivid status` shows whether the service runs",
            },
            _ => "`journalctl -u vivid` may say more",
        };
        anyhow::anyhow!("{} ({hint})", vivid::error_chain(&e))
    })?;
    if args.json {
        println!("{answer}");
    } else if answer["ok"] == true {
        let status: vivid::serve::control::ControlStatus =
            serde_json::from_value(answer.clone()).unwrap_or_default();
        print_control(&status);
    }
    if answer["ok"] == true {
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = answer["error"].as_str().unwrap_or("refused");
        if !args.json {
            eprintln!("vivid: control: {reason}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Playback, the last trigger and each trigger's device, for people.
fn print_control(status: &vivid::serve::control::ControlStatus) {
    match (&status.playing, status.paused) {
        (Some(name), true) => println!("playing: {name} (paused)"),
        (Some(name), false) => println!("playing: {name}"),
        (None, _) => println!("playing: nothing"),
    }
    if !status.queued.is_empty() {
        println!("queued: {}", status.queued.join(", "));
    }
    if let Some(last) = &status.last_trigger {
        let ago = vivid::serve::now_unix().saturating_sub(last.unix);
        println!(
            "last trigger: {} from {}, {ago} s ago ({})",
            last.action, last.source, last.outcome
        );
    }
    for trigger in &status.triggers {
        println!(
            "trigger {}: {} — {}",
            trigger.name, trigger.input, trigger.state
        );
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct TriggersArgs {
    /// Print the systemd drop-in that lets the service reach input devices
    /// and GPIO chips (install it as /etc/systemd/system/vivid.service.d/triggers.conf).
    #[arg(long)]
    pub(crate) dropin: bool,
}

/// `vivid triggers`: the configured triggers and their devices now.
pub(crate) fn triggers(config: &Config, args: TriggersArgs) -> Result<ExitCode> {
    use vivid::serve::triggers::{DeviceCheck, check, unit_dropin};
    if args.dropin {
        print!(
            "{}",
            unit_dropin(|group| nix::unistd::Group::from_name(group)
                .ok()
                .flatten()
                .is_some())
        );
        return Ok(ExitCode::SUCCESS);
    }
    if config.triggers.is_empty() {
        println!("no [[trigger]] tables in {}", config.source);
        return Ok(ExitCode::SUCCESS);
    }
    let mut wrong = false;
    for spec in &config.triggers {
        let (mark, detail) = match check(spec) {
            DeviceCheck::Present(d) => ("ok     ", d),
            DeviceCheck::Missing(d) => ("missing", d),
            DeviceCheck::Wrong(d) => {
                wrong = true;
                ("wrong  ", d)
            }
        };
        println!(
            "{mark} {}: {} → {} (hold-off {:.1} s; {})\n        {detail}",
            spec.name,
            spec.input.describe(),
            spec.action,
            spec.min_interval.as_secs_f32(),
            spec.origin
        );
    }
    Ok(if wrong {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
