//! `vivid serve`: watch the inbox, narrate each input in arrival order
//! with one pipeline whose models are loaded once, and move every job to
//! `done/` or `failed/` (see [`super::spool`]). systemd hears READY,
//! STATUS and WATCHDOG through sd-notify; SIGTERM stops after the current
//! job; SIGHUP reloads the config and keeps the old one when the new one
//! is bad. `status.json` in the spool folder tells `vivid status` what is
//! going on.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::job::{JobFile, Overrides};
use super::spool::{Claimed, InputKind, Outputs, Spool, SpoolDirs, input_kind};
use crate::config::{Config, ConfigSource};
use crate::render::{FileRecord, Job, RenderObserver, RenderStage, Renderer};

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
    fn line(&self) -> String {
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
}

use super::now_unix;

/// The status file's path for a spool folder.
pub fn status_path(config: &Config) -> PathBuf {
    config.spool_dir.join("status.json")
}

struct StatusWriter {
    path: PathBuf,
    status: ServiceStatus,
    last_write: Option<Instant>,
    heartbeat: Arc<AtomicU64>,
    /// Playback and triggers, read at each write.
    controller: Option<Arc<super::control::Controller>>,
}

impl StatusWriter {
    fn write(&mut self, force: bool) {
        if let Some(controller) = &self.controller {
            let control = controller.status();
            // A change in playback or triggers is news: written at once.
            let changed = control != self.status.control;
            self.status.control = control;
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
        self.status.updated_unix = now_unix();
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

/// Reports render progress into the status, and stops a job past its
/// time bound.
struct JobObserver<'a> {
    status: &'a mut StatusWriter,
    progress: crate::background::ProgressLog,
    started: Instant,
    bound: Option<Duration>,
}

impl crate::background::Observer for JobObserver<'_> {
    fn clips(&mut self, count: usize) {
        self.progress.clips(count);
    }
    fn stage(&mut self, clip: usize, stage: crate::background::Stage) {
        self.progress.stage(clip, stage);
        self.status.status.stage = Some(format!("background {}", self.progress.status()));
        self.status.write(false);
    }
    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.progress.step(clip, done, total);
        self.status.status.stage = Some(format!("background {}", self.progress.status()));
        self.status.write(false);
    }
    fn cancelled(&self) -> Option<String> {
        let bound = self.bound?;
        (self.started.elapsed() > bound).then(|| {
            format!(
                "the job ran longer than service.job_timeout_s ({} s) and was stopped; a long text may need a larger bound, or split it into several files",
                bound.as_secs()
            )
        })
    }
}

impl RenderObserver for JobObserver<'_> {
    fn render_stage(&mut self, stage: RenderStage) {
        self.status.status.stage = Some(stage.label().to_owned());
        self.status.write(true);
    }
}

/// Runs the service until SIGTERM or SIGINT.
pub fn serve(config: Config) -> Result<()> {
    let mut service = Service::start(config)?;
    let ran = service.run();
    service.stop();
    ran
}

/// The service's flags that signal handlers raise.
struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))?;
        Ok(Signals { stop, reload })
    }
}

/// The inbox watcher and what it has told about files being written.
struct Inbox {
    // Kept alive: dropping it stops the events.
    _watcher: notify::RecommendedWatcher,
    woken: std::sync::mpsc::Receiver<Option<notify::Event>>,
    writing: Writing,
}

impl Inbox {
    fn watch(inbox: &Path) -> Result<Inbox> {
        let (wake, woken) = std::sync::mpsc::channel::<Option<notify::Event>>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let _ = wake.send(event.ok());
            })
            .context("starting the inbox watcher (inotify)")?;
        notify::Watcher::watch(&mut watcher, inbox, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", inbox.display()))?;
        Ok(Inbox {
            _watcher: watcher,
            woken,
            writing: Writing::default(),
        })
    }

    /// Takes in the events so far.
    fn drain(&mut self) {
        while let Ok(event) = self.woken.try_recv() {
            self.writing.note(event);
        }
    }

    /// Waits for the next event, or `most` to notice signals.
    fn wait(&mut self, most: Duration) {
        if let Ok(event) = self.woken.recv_timeout(most) {
            self.writing.note(event);
        }
        self.drain();
    }
}

/// The running service: one pipeline, the spool, and what systemd and
/// `vivid status` are told.
struct Service {
    source: ConfigSource,
    config: Config,
    spool: Spool,
    /// None while the models cannot be loaded (see [`Service::wait_for_models`]).
    renderer: Option<Renderer>,
    signals: Signals,
    inbox: Inbox,
    status: StatusWriter,
    player: Option<crate::output::play::Player>,
    played: std::sync::mpsc::Receiver<crate::output::play::Played>,
    kiosk: Kiosk,
    metrics: MetricsFile,
    /// Set after a job was put back because the disk filled up: not to
    /// be tried again before then (backoff).
    disk_retry_at: Option<Instant>,
    /// Disk-full failures in a row, for the backoff.
    disk_failures: u32,
    /// While the models cannot be loaded: when to try again.
    models_retry_at: Instant,
}

/// How often a service waiting for its models tries to load them again
/// (a reload, `systemctl reload vivid`, tries at once).
const MODELS_RETRY: Duration = Duration::from_secs(30);

/// Whether the next job's outputs fit on the spool's file system.
enum Room {
    Fits {
        needed: u64,
    },
    /// Not now: wait for space.
    Wait(DiskWait),
    /// Never, not even on the empty file system: the reason.
    Never(String),
}

/// Longest wait between retries of a job the disk could not take.
const DISK_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The first wait; it doubles with each disk-full failure in a row.
const DISK_BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// Space an error report needs.
const ERROR_REPORT_BYTES: u64 = 64 * 1024;

/// The metrics file and what goes into it.
struct MetricsFile {
    path: Option<PathBuf>,
    metrics: super::metrics::Metrics,
    written: Option<Instant>,
    /// A failed write is logged once, not every minute.
    warned: bool,
}

/// How often the metrics file is rewritten while idle.
const METRICS_EVERY: Duration = Duration::from_secs(60);

impl Service {
    /// Recovers what a previous run left, loads every model, starts
    /// watching and tells systemd it is ready.
    fn start(config: Config) -> Result<Service> {
        let spool = Spool::open(&SpoolDirs::under(&config.spool_dir))?;
        let (finished, requeued) = spool
            .recover(report_names_input)
            .context("recovering the jobs a previous run left")?;
        if finished + requeued > 0 {
            tracing::info!(finished, requeued, "recovered unfinished jobs");
        }
        let (renderer, models_problem) = match load_renderer(&config) {
            Ok(renderer) => (Some(renderer), None),
            Err(e) => {
                tracing::error!("{}", models_problem_line(&e));
                (None, Some(format!("{e:#}")))
            }
        };
        let signals = Signals::register()?;
        let inbox = Inbox::watch(&spool.dirs().inbox)?;
        let heartbeat = Arc::new(AtomicU64::new(now_unix()));
        start_watchdog(Arc::clone(&heartbeat), Arc::clone(&signals.stop));
        let status = StatusWriter {
            path: status_path(&config),
            status: ServiceStatus {
                pid: std::process::id(),
                started_unix: now_unix(),
                ..ServiceStatus::default()
            },
            last_write: None,
            heartbeat,
            controller: None,
        };
        let (played_tx, played) = std::sync::mpsc::channel();
        let player = config
            .playback
            .enabled
            .then(|| crate::output::play::Player::spawn(config.playback_settings(), played_tx));
        let metrics = MetricsFile::open(&config);
        let controller = start_control(&config, &spool, player.as_ref());
        let mut status = status;
        status.controller = Some(controller);
        let mut service = Service {
            source: config.source.clone(),
            config,
            spool,
            renderer,
            signals,
            inbox,
            status,
            player,
            played,
            kiosk: Kiosk::default(),
            metrics,
            disk_retry_at: None,
            disk_failures: 0,
            models_retry_at: Instant::now() + MODELS_RETRY,
        };
        service.status.status.models = models_problem;
        if service.status.status.models.is_some() {
            service.status.status.state = ServiceState::WaitingForModels;
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(inbox = %service.spool.dirs().inbox.display(), "waiting for texts");
        service.status.write(true);
        service.write_metrics(true);
        Ok(service)
    }

    /// Narrates what arrives until a stop signal.
    fn run(&mut self) -> Result<()> {
        while !self.signals.stop.load(Ordering::Relaxed) {
            if self.signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if self.renderer.is_none() {
                self.wait_for_models();
                continue;
            }
            match self.next_input()? {
                Some(next) => match self.room_for(&next) {
                    Room::Fits { needed } => self.narrate(&next, needed)?,
                    Room::Wait(wait) => self.wait_for_disk(wait),
                    Room::Never(reason) => self.fail_unclaimed(&next, &reason)?,
                },
                None => self.idle(),
            }
            self.write_metrics(false);
        }
        Ok(())
    }

    /// Whether `next`'s outputs fit on the spool's file system now, later,
    /// or never.
    fn room_for(&self, next: &Path) -> Room {
        let folder = &self.spool.dirs().processing;
        let input_bytes = std::fs::symlink_metadata(next).map_or(0, |m| m.len());
        let needed = super::disk::estimate_output_bytes(input_bytes, &self.config);
        let space = match super::disk::space(folder) {
            Ok(space) => space,
            Err(e) => {
                tracing::debug!("cannot tell the free space of {}: {e}", folder.display());
                return Room::Fits { needed };
            }
        };
        let name = next
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let backing_off = self.disk_retry_at.is_some_and(|at| Instant::now() < at);
        if needed > space.usable_when_empty && !backing_off {
            use super::disk::human_bytes;
            return Room::Never(format!(
                "its outputs need about {} and the spool's file system ({}) holds {} even when empty; split the text into smaller files, or give paths.spool_dir a larger file system",
                human_bytes(needed),
                folder.display(),
                human_bytes(space.usable_when_empty)
            ));
        }
        if space.available < needed || backing_off {
            return Room::Wait(DiskWait {
                job: name,
                folder: folder.clone(),
                needed_bytes: needed,
                available_bytes: space.available,
                since_unix: self
                    .status
                    .status
                    .disk
                    .as_ref()
                    .map_or_else(now_unix, |d| d.since_unix),
            });
        }
        Room::Fits { needed }
    }

    /// The next job waits for disk space: status, systemd and the journal
    /// say so (the journal once per wait), then the usual idle wait.
    fn wait_for_disk(&mut self, wait: DiskWait) {
        let started = self.status.status.disk.is_none();
        if started {
            tracing::warn!("{}", wait.line());
        }
        self.status.status.state = ServiceState::WaitingForDisk;
        self.status.status.disk = Some(wait);
        self.status.write(started);
        if started {
            self.write_metrics(true);
        }
        if let Some(player) = &self.player {
            self.kiosk.maybe_play(&self.config, &self.spool, player);
        }
        self.inbox.wait(Duration::from_secs(1));
    }

    /// Fails an input before it runs (it can never fit).
    fn fail_unclaimed(&mut self, next: &Path, reason: &str) -> Result<()> {
        let Ok(claimed) = self.spool.claim(next) else {
            return Ok(());
        };
        self.fail(&claimed, &anyhow::anyhow!("{reason}"))
    }

    /// A job the disk could not take goes back to the queue, first in
    /// line, its half-written outputs removed; the service waits for
    /// space (with backoff) and runs it again.
    fn requeue_for_disk(
        &mut self,
        claimed: &Claimed,
        companions: &[Claimed],
        needed: u64,
        error: &anyhow::Error,
    ) -> Result<()> {
        tracing::warn!(
            job = %claimed.name,
            "the disk is full ({error:#}); the job goes back to the queue and waits for space"
        );
        let removed = self.spool.remove_partial_outputs();
        if let Err(e) = removed {
            tracing::warn!("{:#}", anyhow::Error::from(e));
        }
        for companion in companions {
            self.spool.requeue(companion)?;
        }
        self.spool.requeue(claimed)?;
        self.metrics.metrics.job_requeued_for_disk();
        let backoff = DISK_BACKOFF_FIRST.saturating_mul(1 << self.disk_failures.min(10));
        self.disk_failures += 1;
        self.disk_retry_at = Some(Instant::now() + backoff.min(DISK_BACKOFF_MAX));
        let folder = self.spool.dirs().processing.clone();
        let available = super::disk::space(&folder).map_or(0, |s| s.available);
        self.status.status.disk = Some(DiskWait {
            job: claimed.name.clone(),
            folder,
            needed_bytes: needed,
            available_bytes: available,
            since_unix: now_unix(),
        });
        self.status.status.state = ServiceState::WaitingForDisk;
        Ok(())
    }

    /// Rewrites the metrics file: now when `now`, else when a minute has
    /// passed since the last time.
    fn write_metrics(&mut self, now: bool) {
        let due = now
            || self
                .metrics
                .written
                .is_none_or(|t| t.elapsed() >= METRICS_EVERY);
        if !due || self.metrics.path.is_none() {
            return;
        }
        let status = &self.status.status;
        let counters = self.player.as_ref().map(|p| p.counters());
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let gauges = super::metrics::Gauges {
            queue_length: status.waiting,
            waiting_for_disk: status.disk.is_some(),
            disk_needed_bytes: status.disk.as_ref().map_or(0, |d| d.needed_bytes),
            disk_available_bytes: super::disk::space(&self.spool.dirs().processing)
                .map_or(0, |s| s.available),
            cache_bytes: crate::background::cache::BackgroundCache::new(
                &self.config.background_cache_dir,
                0,
            )
            .size_bytes(),
            playback_underruns: counters.map_or(0, |c| load(&c.underruns)),
            playback_reopens: counters.map_or(0, |c| load(&c.reopens)),
        };
        self.metrics.write(&gauges);
    }

    /// Swaps in the config file's current settings, or keeps the old ones
    /// when the new ones cannot run.
    fn reload(&mut self) {
        let loaded = reload_config(&self.source).and_then(|new| {
            let renderer = load_renderer(&new)?;
            Ok((new, renderer))
        });
        match loaded {
            Ok((config, renderer)) => {
                tracing::info!("config reloaded");
                if config.triggers != self.config.triggers
                    || config.control != self.config.control
                    || config.control_socket != self.config.control_socket
                {
                    tracing::warn!(
                        "[control] and [[trigger]] changes take effect when the service restarts (systemctl restart vivid)"
                    );
                }
                self.models_loaded(renderer);
                self.metrics = MetricsFile::open(&config).carrying_on(&self.metrics);
                self.config = config;
            }
            Err(e) if self.renderer.is_none() => {
                tracing::error!("still {}", models_problem_line(&e));
                self.status.status.models = Some(format!("{e:#}"));
            }
            Err(e) => tracing::error!("new config kept out, the old one runs on: {e:#}"),
        }
    }

    /// No models yet: texts wait in the inbox; the models are tried again
    /// every [`MODELS_RETRY`] (and at once on a reload).
    fn wait_for_models(&mut self) {
        if Instant::now() >= self.models_retry_at {
            self.models_retry_at = Instant::now() + MODELS_RETRY;
            match load_renderer(&self.config) {
                Ok(renderer) => return self.models_loaded(renderer),
                Err(e) => {
                    tracing::debug!("models still missing: {e:#}");
                    self.status.status.models = Some(format!("{e:#}"));
                }
            }
        }
        self.status.status.state = ServiceState::WaitingForModels;
        self.status.status.waiting = self.spool.waiting().map_or(0, |w| w.len());
        self.status.write(false);
        self.inbox.wait(Duration::from_secs(1));
    }

    fn models_loaded(&mut self, renderer: Renderer) {
        if self.renderer.is_none() {
            tracing::info!("models loaded; the waiting texts are narrated now");
        }
        self.renderer = Some(renderer);
        self.status.status.models = None;
        self.status.status.state = ServiceState::Idle;
        self.status.write(true);
    }

    /// The oldest inbox file ready to narrate: closed by its writer and not
    /// a job file's text.
    fn next_input(&mut self) -> Result<Option<PathBuf>> {
        let waiting = self.spool.waiting()?;
        self.status.status.waiting = waiting.len();
        self.kiosk.settle(&self.played);
        self.inbox.drain();
        Ok(waiting.into_iter().find(|p| {
            !self.inbox.writing.is_open(p) && !referenced_by_a_waiting_job(&self.spool, p)
        }))
    }

    /// Nothing to narrate: kiosk rounds, then wait for the watcher (or a
    /// second, to notice signals).
    fn idle(&mut self) {
        // A job waiting for space may have been taken out of the inbox.
        self.status.status.disk = None;
        self.status.status.state = ServiceState::Idle;
        self.status.write(false);
        if let Some(player) = &self.player {
            self.kiosk.maybe_play(&self.config, &self.spool, player);
        }
        self.inbox.wait(Duration::from_secs(1));
    }

    /// Claims one input, narrates it and files it into done/ or failed/;
    /// or back into the inbox when the disk filled up meanwhile.
    fn narrate(&mut self, next: &Path, needed: u64) -> Result<()> {
        let claimed = match self.spool.claim(next) {
            Ok(claimed) => claimed,
            Err(e) => {
                // Gone meanwhile (its writer renamed it away): not ours.
                tracing::debug!("{:#}", anyhow::Error::from(e));
                return Ok(());
            }
        };
        self.status.status.disk = None;
        self.status.status.state = ServiceState::Working;
        self.status.status.current = Some(claimed.name.clone());
        self.status.write(true);
        tracing::info!(job = %claimed.name, "narrating");
        let mut companions = Vec::new();
        let Some(renderer) = self.renderer.as_mut() else {
            return Ok(());
        };
        let outcome = run_job(
            &self.spool,
            &self.config,
            renderer,
            &claimed,
            &mut companions,
            &mut self.status,
        );
        self.status.status.current = None;
        self.status.status.stage = None;
        self.status.status.state = ServiceState::Idle;
        match outcome {
            Err(e) if super::disk::is_disk_full(&e) => {
                self.requeue_for_disk(&claimed, &companions, needed, &e)?;
            }
            outcome => self.file_outcome(&claimed, &companions, outcome)?,
        }
        self.status.status.waiting = self.spool.waiting().map_or(0, |w| w.len());
        self.status.write(true);
        self.write_metrics(true);
        if self.status.status.waiting == 0 {
            // Idle until the next file: the memory the job freed goes back.
            crate::compute::release_freed_memory();
        }
        Ok(())
    }

    /// Files a finished job (and a job file's text) into done/ or failed/.
    fn file_outcome(
        &mut self,
        claimed: &Claimed,
        companions: &[Claimed],
        outcome: Result<JobDone>,
    ) -> Result<()> {
        for companion in companions {
            // A job's text file goes where its job goes.
            let folder = if outcome.is_ok() {
                &self.spool.dirs().done
            } else {
                &self.spool.dirs().failed
            };
            self.spool.file_into(companion, folder)?;
        }
        match outcome {
            Ok(done) => {
                self.status.status.done += 1;
                self.disk_failures = 0;
                self.disk_retry_at = None;
                self.metrics.metrics.job_done(&done.report, now_unix());
                tracing::info!(job = %claimed.name, output = %done.wav.display(), "done");
                if done.play
                    && let Some(player) = &self.player
                {
                    self.kiosk.queued += usize::from(player.enqueue(done.wav));
                }
                Ok(())
            }
            Err(e) => self.fail(claimed, &e),
        }
    }

    /// Files a job into failed/ with its reason, and remembers the reason
    /// for `vivid status`. When the error report cannot be written for
    /// lack of space, the job goes back to the queue instead.
    fn fail(&mut self, claimed: &Claimed, error: &anyhow::Error) -> Result<()> {
        let reason = format!("{error:#}");
        tracing::error!(job = %claimed.name, "failed: {reason}");
        match self.spool.fail(claimed, &reason) {
            Ok(_) => {}
            Err(e) if e.is_disk_full() => {
                let error = anyhow::Error::from(e).context("writing the error report");
                return self.requeue_for_disk(claimed, &[], ERROR_REPORT_BYTES, &error);
            }
            Err(e) => {
                return Err(
                    anyhow::Error::from(e).context(format!("moving {} to failed/", claimed.name))
                );
            }
        }
        self.metrics.metrics.job_failed(now_unix());
        let status = &mut self.status.status;
        status.failed += 1;
        status.last_errors.push((claimed.name.clone(), reason));
        let excess = status.last_errors.len().saturating_sub(5);
        status.last_errors.drain(..excess);
        Ok(())
    }

    /// Tells systemd and `vivid status` that the service stopped.
    fn stop(mut self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.status.status.state = ServiceState::Stopped;
        self.status.write(true);
        // Playback still queued is not waited for: a stop must not hang on
        // a sound card that is gone.
        drop(self.player.take());
        // The socket file goes with the service (a crash leaves it; the
        // next start takes it over).
        let _ = std::fs::remove_file(&self.config.control_socket);
        tracing::info!("stopped");
    }
}

impl MetricsFile {
    /// The metrics file the config names (none when unset); a folder that
    /// cannot take it is a warning, and the service runs on.
    fn open(config: &Config) -> MetricsFile {
        let path = config.service.metrics_file.clone();
        let mut metrics = super::metrics::Metrics::new(now_unix());
        if let Some(path) = &path {
            if let Err(reason) = super::metrics::check_folder(path) {
                tracing::warn!("metrics: {reason}");
            }
            metrics.set_models(loaded_models(config));
        }
        MetricsFile {
            path,
            metrics,
            written: None,
            warned: false,
        }
    }

    /// This file with the counters of `old` (a config reload keeps them).
    fn carrying_on(mut self, old: &MetricsFile) -> MetricsFile {
        let models = self.metrics.models().to_vec();
        self.metrics = old.metrics.clone();
        self.metrics.set_models(models);
        self
    }

    fn write(&mut self, gauges: &super::metrics::Gauges) {
        let Some(path) = &self.path else { return };
        self.written = Some(Instant::now());
        match super::metrics::write(path, &self.metrics.render(gauges)) {
            Ok(()) => self.warned = false,
            Err(e) if !self.warned => {
                self.warned = true;
                tracing::warn!("cannot write the metrics file {}: {e}", path.display());
            }
            Err(_) => {}
        }
    }
}

/// The model files the config loads, hashed, for the metrics' info.
fn loaded_models(config: &Config) -> Vec<super::metrics::ModelInfo> {
    let mut models = Vec::new();
    let mut add = |role, path: &Path| {
        if let Ok(record) = crate::render::file_record(path) {
            models.push(super::metrics::ModelInfo {
                role,
                path: record.path.display().to_string(),
                sha256: record.sha256,
            });
        }
    };
    add("voice", &config.voice);
    if config.describe.method == crate::describe::Method::Llm {
        add("describer", &config.describer_model);
        add("embedder", &config.embedder_model);
    }
    if config.background.engine != crate::background::EngineChoice::Soundscape {
        add("background", &config.background_bundle.join("bundle.toml"));
    }
    models
}

/// Inbox files someone is still writing, from inotify's events.
#[derive(Default)]
struct Writing {
    open: std::collections::HashMap<PathBuf, Instant>,
}

/// A file created or written to without a close event since is left alone
/// until this long after the last write: a hard link or a copy whose close
/// was missed must not hold a job forever, and a writer that pauses longer
/// than this should write under a temporary name.
const WRITING_GIVE_UP: Duration = Duration::from_secs(10);

impl Writing {
    fn note(&mut self, event: Option<notify::Event>) {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
        let Some(event) = event else { return };
        match event.kind {
            EventKind::Create(CreateKind::File | CreateKind::Any)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                for path in event.paths {
                    self.open.insert(path, Instant::now());
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            | EventKind::Remove(_) => {
                for path in event.paths {
                    self.open.remove(&path);
                }
            }
            _ => {}
        }
    }

    fn is_open(&self, path: &Path) -> bool {
        self.open
            .get(path)
            .is_some_and(|since| since.elapsed() < WRITING_GIVE_UP)
    }
}

/// Kiosk mode: rounds of every finished narration while the inbox is
/// empty. Playback failures are logged by the player and never touch the
/// jobs.
#[derive(Default)]
struct Kiosk {
    /// Items sent to the player and not yet reported played.
    queued: usize,
    last_round: Option<Instant>,
}

impl Kiosk {
    fn settle(&mut self, played: &std::sync::mpsc::Receiver<crate::output::play::Played>) {
        self.queued = self.queued.saturating_sub(played.try_iter().count());
    }

    fn maybe_play(&mut self, config: &Config, spool: &Spool, player: &crate::output::play::Player) {
        let interval = config.service.kiosk_interval_s;
        if interval == 0 || self.queued > 0 {
            return;
        }
        if self
            .last_round
            .is_some_and(|t| t.elapsed() < Duration::from_secs(interval))
        {
            return;
        }
        let mut wavs: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&spool.dirs().done)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "wav"))
                    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
                    .collect()
            })
            .unwrap_or_default();
        if wavs.is_empty() {
            return;
        }
        wavs.sort();
        self.last_round = Some(Instant::now());
        for (_, wav) in wavs {
            self.queued += usize::from(player.enqueue(wav));
        }
    }
}

fn reload_config(source: &ConfigSource) -> Result<Config> {
    Ok(Config::load(source.clone())?)
}

/// Opens the control socket and starts the triggers' threads. Neither
/// stops the service when it cannot start: narration goes on, and the
/// journal and the status say what is wrong.
fn start_control(
    config: &Config,
    spool: &Spool,
    player: Option<&crate::output::play::Player>,
) -> Arc<super::control::Controller> {
    let controller = Arc::new(super::control::Controller::new(
        player.map(|p| p.transport()),
        spool.dirs().done.clone(),
        config.control_settings(),
    ));
    match super::control::serve(&config.control_socket, Arc::clone(&controller)) {
        Ok(()) => tracing::info!(socket = %config.control_socket.display(), "control socket open"),
        Err(e) => tracing::error!(
            "{}; `vivid control` will not reach this service",
            crate::error_chain(&e)
        ),
    }
    super::triggers::start(&config.triggers, &controller);
    controller
}

/// Loads every model the service needs (so it fails at start, not at
/// the first job).
fn load_renderer(config: &Config) -> Result<Renderer> {
    let mut renderer = Renderer::new(config)?;
    renderer.preload()?;
    Ok(renderer)
}

/// The journal's line for models that cannot be loaded: what and what to do.
fn models_problem_line(error: &anyhow::Error) -> String {
    format!(
        "the models cannot be loaded ({error:#}); texts wait in the inbox until they can. \
         Install them as the service user with `vivid models fetch` \
         (or `vivid models fetch --wheels DIR --offline` from a USB stick); vivid tries again every {} s \
         and at `systemctl reload vivid`",
        MODELS_RETRY.as_secs()
    )
}

/// Pings systemd's watchdog (when the unit sets WatchdogSec) while the
/// service shows signs of life: the status heartbeat, which every stage,
/// background step and idle second refreshes. A job stuck longer than the
/// watchdog interval stops the pings; systemd restarts vivid and the job
/// is recovered.
fn start_watchdog(heartbeat: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("vivid-watchdog".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let age = now_unix().saturating_sub(heartbeat.load(Ordering::Relaxed));
                if Duration::from_secs(age) < interval {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                std::thread::sleep(interval / 3);
            }
        });
}

/// Whether `path` is the text file of a job file still in the inbox (it
/// waits for its job instead of being narrated on its own).
fn referenced_by_a_waiting_job(spool: &Spool, path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(&spool.dirs().inbox) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        input_kind(&p) == InputKind::Job
            && std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| JobFile::parse(&p, &t).ok())
                .is_some_and(|job| job.file.as_deref() == Some(name.as_str()))
    })
}

/// Whether a report in done/ is the one of input `name`.
fn report_names_input(report: &Path, name: &str) -> bool {
    std::fs::read_to_string(report)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["input"]["path"].as_str().map(str::to_owned))
        .is_some_and(|p| Path::new(&p).file_name().is_some_and(|n| n == name))
}

/// Refuses what must not be read: links, and files over the size limit.
fn check_input(path: &Path, name: &str, max_bytes: u64) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("reading {name}"))?;
    if meta.file_type().is_symlink() {
        bail!(
            "{name} is a symbolic link; vivid does not follow links out of the inbox. Copy the file itself into the inbox"
        );
    }
    if !meta.is_file() {
        bail!("{name} is not a regular file");
    }
    if meta.nlink() > 1 {
        bail!(
            "{name} has other hard links; vivid does not read files linked from outside the inbox. Copy the file itself into the inbox"
        );
    }
    if meta.len() > max_bytes {
        bail!(
            "{name} is {} bytes; the limit is {max_bytes} (service.max_input_bytes)",
            meta.len()
        );
    }
    Ok(())
}

fn beside_in_processing(companions: &[Claimed]) -> PathBuf {
    companions
        .last()
        .map(|c| c.path.clone())
        .unwrap_or_default()
}

/// A claimed input's text, the file it came from and what its job file
/// asks; the text file a job file names is claimed into `companions`.
fn read_input(
    spool: &Spool,
    claimed: &Claimed,
    companions: &mut Vec<Claimed>,
    max_bytes: u64,
) -> Result<(String, PathBuf, Overrides)> {
    check_input(&claimed.path, &claimed.name, max_bytes)?;
    Ok(match input_kind(&claimed.path) {
        InputKind::Text => (
            crate::text::read_text(&claimed.path, max_bytes)?,
            claimed.path.clone(),
            Overrides::default(),
        ),
        InputKind::Job => {
            let source = crate::text::read_text(&claimed.path, max_bytes)?;
            let job = JobFile::parse(Path::new(&claimed.name), &source)?;
            let text = match (&job.text, &job.file) {
                (Some(text), _) => text.clone(),
                (None, Some(file)) => {
                    let beside = spool.dirs().inbox.join(file);
                    check_input(&beside, file, max_bytes)?;
                    // The text file is part of this job: it moves with it.
                    companions.push(spool.claim(&beside)?);
                    crate::text::read_text(&beside_in_processing(companions), max_bytes)?
                }
                (None, None) => bail!("the job file has no text"),
            };
            (text, claimed.path.clone(), job.overrides())
        }
        InputKind::Other => bail!(
            "{} is not a .txt text or a .toml job file; vivid narrates UTF-8 .txt files and .toml job files",
            claimed.name
        ),
    })
}

/// A job narrated into done/.
struct JobDone {
    wav: PathBuf,
    /// Whether to play it now.
    play: bool,
    report: crate::render::RenderReport,
}

/// Narrates one claimed job into done/.
fn run_job(
    spool: &Spool,
    config: &Config,
    renderer: &mut Renderer,
    claimed: &Claimed,
    companions: &mut Vec<Claimed>,
    status: &mut StatusWriter,
) -> Result<JobDone> {
    let (text, input_path, overrides) =
        read_input(spool, claimed, companions, config.service.max_input_bytes)?;
    let input: FileRecord = crate::render::file_record(&input_path)?;
    let stem = overrides.output.clone().unwrap_or_else(|| claimed.stem());
    let wav = spool.dirs().processing.join(format!(".{stem}.wav.out"));
    let report_path = crate::render::sidecar_path(&wav);
    let mut observer = JobObserver {
        status,
        progress: crate::background::ProgressLog::new(),
        started: Instant::now(),
        bound: (config.service.job_timeout_s > 0)
            .then(|| Duration::from_secs(config.service.job_timeout_s)),
    };
    let report = renderer.render(
        &Job {
            text: &text,
            input,
            overrides: &overrides.render,
        },
        &wav,
        &mut observer,
    )?;
    let named = Claimed {
        path: claimed.path.clone(),
        name: match &overrides.output {
            Some(output) => format!(
                "{output}.{}",
                Path::new(&claimed.name)
                    .extension()
                    .map_or("txt".into(), |e| e.to_string_lossy().into_owned())
            ),
            None => claimed.name.clone(),
        },
    };
    let final_wav = spool.complete(
        &named,
        Outputs {
            wav: &wav,
            report: &report_path,
        },
    )?;
    let play = overrides.play.unwrap_or(config.playback.enabled);
    Ok(JobDone {
        wav: final_wav,
        play,
        report,
    })
}
