//! `vivid serve`: watch the inbox, narrate each input in arrival order
//! with one pipeline whose models are loaded once, and move every job to
//! `done/` or `failed/` (see [`super::spool`]). systemd hears READY,
//! STATUS and WATCHDOG through sd-notify; SIGTERM stops after the current
//! job; SIGHUP reloads the config and keeps the old one when the new one
//! is bad. `status.json` in the spool folder tells `vivid status` what is
//! going on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::inbox::{Inbox, referenced_by_a_waiting_job, report_names_input};
use super::kiosk::Kiosk;
use super::now_unix;
use super::run::{JobDone, run_job};
use super::spool::{Claimed, Spool, SpoolDirs};
use super::status::{DiskWait, StatusWriter, status_path};
use crate::config::{Config, ConfigSource};
use crate::render::Renderer;

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
        let status = StatusWriter::new(status_path(&config), heartbeat);
        let (played_tx, played) = std::sync::mpsc::channel();
        let player = config.playback.enabled.then(|| {
            crate::output::play::Player::spawn(
                config.playback_settings(&crate::config::Overrides::default()),
                played_tx,
            )
        });
        let metrics = MetricsFile::open(&config);
        let controller = start_control(&config, &spool, player.as_ref());
        let mut status = status;
        status.attach_controller(controller);
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
        if let Some(problem) = models_problem {
            service.status.status.models_missing(problem);
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
        self.status.status.wait_for_disk(wait);
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
        self.status.status.wait_for_disk(DiskWait {
            job: claimed.name.clone(),
            folder,
            needed_bytes: needed,
            available_bytes: available,
            since_unix: now_unix(),
        });
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
                self.status.status.models_still_missing(format!("{e:#}"));
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
                    self.status.status.models_still_missing(format!("{e:#}"));
                }
            }
        }
        self.status.status.waiting_for_models();
        self.status
            .status
            .set_waiting(self.spool.waiting().map_or(0, |w| w.len()));
        self.status.write(false);
        self.inbox.wait(Duration::from_secs(1));
    }

    fn models_loaded(&mut self, renderer: Renderer) {
        if self.renderer.is_none() {
            tracing::info!("models loaded; the waiting texts are narrated now");
        }
        self.renderer = Some(renderer);
        self.status.status.models_loaded();
        self.status.write(true);
    }

    /// The oldest inbox file ready to narrate: closed by its writer and not
    /// a job file's text.
    fn next_input(&mut self) -> Result<Option<PathBuf>> {
        let waiting = self.spool.waiting()?;
        self.status.status.set_waiting(waiting.len());
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
        self.status.status.idle();
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
        self.status.status.working_on(claimed.name.clone());
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
        self.status.status.job_ended();
        match outcome {
            Err(e) if super::disk::is_disk_full(&e) => {
                self.requeue_for_disk(&claimed, &companions, needed, &e)?;
            }
            outcome => self.file_outcome(&claimed, &companions, outcome)?,
        }
        self.status
            .status
            .set_waiting(self.spool.waiting().map_or(0, |w| w.len()));
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
                self.status.status.job_done();
                self.disk_failures = 0;
                self.disk_retry_at = None;
                self.metrics.metrics.job_done(&done.report, now_unix());
                tracing::info!(job = %claimed.name, output = %done.wav.display(), "done");
                if done.play
                    && let Some(player) = &self.player
                {
                    self.kiosk.enqueued(player.enqueue(done.wav));
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
        self.status.status.job_failed(claimed.name.clone(), reason);
        Ok(())
    }

    /// Tells systemd and `vivid status` that the service stopped.
    fn stop(mut self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.status.status.stopped();
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
        super::control::ControlSettings::from_config(config),
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
    let mut renderer =
        Renderer::new(&config.render_settings(&crate::config::Overrides::default()))?;
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
