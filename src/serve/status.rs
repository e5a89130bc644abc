//! What the service tells systemd and `vivid status`: its state, the
//! queue, the current job and stage, the last failures, a wait for disk
//! space or models (`status.json` in the spool folder, and systemd's
//! STATUS line). The service changes it only through its methods.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::now_unix;
use crate::config::Config;

/// What the service is doing, as `status.json` writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    #[default]
    Idle,
    Working,
    /// The next job's outputs do not fit on the spool's file system now.
    WaitingForDisk,
    /// The models cannot be loaded yet (a fresh install before `vivid
    /// models fetch`): texts wait in the inbox.
    WaitingForModels,
    Stopped,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Idle => "idle",
            ServiceState::Working => "working",
            ServiceState::WaitingForDisk => "waiting for disk space",
            ServiceState::WaitingForModels => "waiting for models",
            ServiceState::Stopped => "stopped",
        }
    }
}

/// The wait for disk space, as `status.json` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskWait {
    /// The input that waits (first in the queue).
    pub job: String,
    /// A folder on the file system that is short of space.
    pub folder: PathBuf,
    pub needed_bytes: u64,
    pub available_bytes: u64,
    pub since_unix: u64,
}

impl DiskWait {
    pub(super) fn line(&self) -> String {
        use super::disk::human_bytes;
        format!(
            "waiting for disk space: {} needs {}, {} free in {}",
            self.job,
            human_bytes(self.needed_bytes),
            human_bytes(self.available_bytes),
            self.folder.display()
        )
    }
}

/// What `status.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub pid: u32,
    pub started_unix: u64,
    pub updated_unix: u64,
    pub state: ServiceState,
    pub waiting: usize,
    pub current: Option<String>,
    pub stage: Option<String>,
    pub done: u64,
    pub failed: u64,
    /// The last few failures: input and reason.
    pub last_errors: Vec<(String, String)>,
    /// Set while waiting for disk space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskWait>,
    /// Set while the models cannot be loaded: why, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<String>,
    /// What plays, the last trigger and each trigger's device.
    #[serde(default)]
    pub control: super::control::ControlStatus,
}

impl ServiceStatus {
    /// The one line systemd shows (`systemctl status`).
    pub fn line(&self) -> String {
        if let Some(disk) = &self.disk {
            return format!("{} waiting; {}", self.waiting, disk.line());
        }
        if self.models.is_some() {
            return format!(
                "{} waiting; waiting for models (vivid models fetch)",
                self.waiting
            );
        }
        match (&self.current, &self.stage) {
            (Some(job), Some(stage)) => {
                format!("{} waiting; {job}: {stage}", self.waiting)
            }
            _ => format!("{} waiting; idle", self.waiting),
        }
    }

    /// Now at `stage` of the current job.
    pub(super) fn set_stage(&mut self, stage: String) {
        self.stage = Some(stage);
    }

    pub(super) fn set_waiting(&mut self, waiting: usize) {
        self.waiting = waiting;
    }

    /// Waiting for space on the spool's file system.
    pub(super) fn wait_for_disk(&mut self, wait: DiskWait) {
        self.state = ServiceState::WaitingForDisk;
        self.disk = Some(wait);
    }

    /// The models cannot be loaded: why, and what to do.
    pub(super) fn models_missing(&mut self, problem: String) {
        self.state = ServiceState::WaitingForModels;
        self.models = Some(problem);
    }

    /// Still waiting for the models: the reason may have changed.
    pub(super) fn models_still_missing(&mut self, problem: String) {
        self.models = Some(problem);
    }

    pub(super) fn waiting_for_models(&mut self) {
        self.state = ServiceState::WaitingForModels;
    }

    pub(super) fn models_loaded(&mut self) {
        self.models = None;
        self.state = ServiceState::Idle;
    }

    /// Nothing to narrate (a job waiting for space may have gone).
    pub(super) fn idle(&mut self) {
        self.disk = None;
        self.state = ServiceState::Idle;
    }

    pub(super) fn working_on(&mut self, job: String) {
        self.disk = None;
        self.state = ServiceState::Working;
        self.current = Some(job);
    }

    /// The current job ended (done, failed or put back).
    pub(super) fn job_ended(&mut self) {
        self.current = None;
        self.stage = None;
        self.state = ServiceState::Idle;
    }

    pub(super) fn job_done(&mut self) {
        self.done += 1;
    }

    /// A job failed: counted, and kept among the last five failures.
    pub(super) fn job_failed(&mut self, job: String, reason: String) {
        self.failed += 1;
        self.last_errors.push((job, reason));
        let excess = self.last_errors.len().saturating_sub(5);
        self.last_errors.drain(..excess);
    }

    pub(super) fn stopped(&mut self) {
        self.state = ServiceState::Stopped;
    }

    /// Playback and triggers now; whether they changed.
    pub(super) fn set_control(&mut self, control: super::control::ControlStatus) -> bool {
        let changed = control != self.control;
        self.control = control;
        changed
    }

    pub(super) fn touch(&mut self, now_unix: u64) {
        self.updated_unix = now_unix;
    }
}

/// The status file's path for a spool folder.
pub fn status_path(config: &Config) -> PathBuf {
    config.spool_dir.join("status.json")
}

pub(super) struct StatusWriter {
    path: PathBuf,
    pub(super) status: ServiceStatus,
    last_write: Option<Instant>,
    heartbeat: Arc<AtomicU64>,
    /// Playback and triggers, read at each write.
    controller: Option<Arc<super::control::Controller>>,
}

impl StatusWriter {
    /// The status of a service starting now, written to `path`; each
    /// write beats `heartbeat` for the watchdog.
    pub(super) fn new(path: PathBuf, heartbeat: Arc<AtomicU64>) -> StatusWriter {
        StatusWriter {
            path,
            status: ServiceStatus {
                pid: std::process::id(),
                started_unix: now_unix(),
                ..ServiceStatus::default()
            },
            last_write: None,
            heartbeat,
            controller: None,
        }
    }

    /// Playback and triggers are read from `controller` at each write.
    pub(super) fn attach_controller(&mut self, controller: Arc<super::control::Controller>) {
        self.controller = Some(controller);
    }

    pub(super) fn write(&mut self, force: bool) {
        if let Some(controller) = &self.controller {
            // A change in playback or triggers is news: written at once.
            let changed = self.status.set_control(controller.status());
            return self.write_now(force || changed);
        }
        self.write_now(force);
    }

    fn write_now(&mut self, force: bool) {
        self.heartbeat.store(now_unix(), Ordering::Relaxed);
        if !force
            && self
                .last_write
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_write = Some(Instant::now());
        self.status.touch(now_unix());
        let line = self.status.line();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
        use std::io::Write;
        let json = serde_json::to_vec_pretty(&self.status).unwrap_or_default();
        let written = crate::fsutil::AtomicFile::create(&self.path)
            .and_then(|mut f| {
                f.write_all(&json)?;
                f.commit()
            })
            .or_else(|e| {
                // A full file system has no room for the temporary copy;
                // the status file's own blocks still take the news.
                if super::disk::io_is_disk_full(&e) {
                    crate::fsutil::overwrite_in_place(&self.path, &json)
                } else {
                    Err(e)
                }
            });
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", self.path.display());
        }
    }
}
