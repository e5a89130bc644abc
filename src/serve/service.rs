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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::job::{JobFile, Overrides};
use super::spool::{Claimed, InputKind, Outputs, Spool, SpoolDirs, input_kind};
use crate::config::{Config, ConfigSource};
use crate::render::{FileRecord, Job, RenderObserver, RenderStage, Renderer};

/// What the service is doing, as `status.json` writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    #[default]
    Idle,
    Working,
    Stopped,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Idle => "idle",
            ServiceState::Working => "working",
            ServiceState::Stopped => "stopped",
        }
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
}

impl ServiceStatus {
    fn line(&self) -> String {
        match (&self.current, &self.stage) {
            (Some(job), Some(stage)) => {
                format!("{} waiting; {job}: {stage}", self.waiting)
            }
            _ => format!("{} waiting; idle", self.waiting),
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The status file's path for a spool folder.
pub fn status_path(config: &Config) -> PathBuf {
    config.spool_dir.join("status.json")
}

struct StatusWriter {
    path: PathBuf,
    status: ServiceStatus,
    last_write: Option<Instant>,
    heartbeat: Arc<AtomicU64>,
}

impl StatusWriter {
    fn write(&mut self, force: bool) {
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
        let written = crate::fsutil::AtomicFile::create(&self.path).and_then(|mut f| {
            f.write_all(&json)?;
            f.commit()
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
    renderer: Renderer,
    signals: Signals,
    inbox: Inbox,
    status: StatusWriter,
    player: Option<crate::output::play::Player>,
    played: std::sync::mpsc::Receiver<crate::output::play::Played>,
    kiosk: Kiosk,
}

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
        let mut renderer = Renderer::new(&config)?;
        renderer.preload()?;
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
        };
        let (played_tx, played) = std::sync::mpsc::channel();
        let player = config
            .playback
            .enabled
            .then(|| crate::output::play::Player::spawn(config.playback_settings(), played_tx));
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
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(inbox = %service.spool.dirs().inbox.display(), "waiting for texts");
        service.status.write(true);
        Ok(service)
    }

    /// Narrates what arrives until a stop signal.
    fn run(&mut self) -> Result<()> {
        while !self.signals.stop.load(Ordering::Relaxed) {
            if self.signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            match self.next_input()? {
                Some(next) => self.narrate(&next)?,
                None => self.idle(),
            }
        }
        Ok(())
    }

    /// Swaps in the config file's current settings, or keeps the old ones
    /// when the new ones cannot run.
    fn reload(&mut self) {
        let loaded = reload_config(&self.source).and_then(|new| {
            let mut renderer = Renderer::new(&new)?;
            renderer.preload()?;
            Ok((new, renderer))
        });
        match loaded {
            Ok((config, renderer)) => {
                tracing::info!("config reloaded");
                self.renderer = renderer;
                self.config = config;
            }
            Err(e) => tracing::error!("new config kept out, the old one runs on: {e:#}"),
        }
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
        self.status.status.state = ServiceState::Idle;
        self.status.write(false);
        if let Some(player) = &self.player {
            self.kiosk.maybe_play(&self.config, &self.spool, player);
        }
        self.inbox.wait(Duration::from_secs(1));
    }

    /// Claims one input, narrates it and files it into done/ or failed/.
    fn narrate(&mut self, next: &Path) -> Result<()> {
        let claimed = match self.spool.claim(next) {
            Ok(claimed) => claimed,
            Err(e) => {
                // Gone meanwhile (its writer renamed it away): not ours.
                tracing::debug!("{:#}", anyhow::Error::from(e));
                return Ok(());
            }
        };
        self.status.status.state = ServiceState::Working;
        self.status.status.current = Some(claimed.name.clone());
        self.status.write(true);
        tracing::info!(job = %claimed.name, "narrating");
        let mut companions = Vec::new();
        let outcome = run_job(
            &self.spool,
            &self.config,
            &mut self.renderer,
            &claimed,
            &mut companions,
            &mut self.status,
        );
        for companion in &companions {
            // A job's text file goes where its job goes.
            let folder = if outcome.is_ok() {
                &self.spool.dirs().done
            } else {
                &self.spool.dirs().failed
            };
            self.spool.file_into(companion, folder)?;
        }
        match outcome {
            Ok((wav, play)) => {
                self.status.status.done += 1;
                tracing::info!(job = %claimed.name, output = %wav.display(), "done");
                if play && let Some(player) = &self.player {
                    self.kiosk.queued += usize::from(player.enqueue(wav));
                }
            }
            Err(e) => self.fail(&claimed, &e)?,
        }
        self.status.status.current = None;
        self.status.status.stage = None;
        self.status.status.state = ServiceState::Idle;
        self.status.status.waiting = self.spool.waiting().map_or(0, |w| w.len());
        self.status.write(true);
        if self.status.status.waiting == 0 {
            // Idle until the next file: the memory the job freed goes back.
            crate::compute::release_freed_memory();
        }
        Ok(())
    }

    /// Files a job into failed/ with its reason, and remembers the reason
    /// for `vivid status`.
    fn fail(&mut self, claimed: &Claimed, error: &anyhow::Error) -> Result<()> {
        let reason = format!("{error:#}");
        tracing::error!(job = %claimed.name, "failed: {reason}");
        self.spool
            .fail(claimed, &reason)
            .with_context(|| format!("moving {} to failed/", claimed.name))?;
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
        tracing::info!("stopped");
    }
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

/// Narrates one claimed job into done/; returns the WAV and whether to
/// play it.
fn run_job(
    spool: &Spool,
    config: &Config,
    renderer: &mut Renderer,
    claimed: &Claimed,
    companions: &mut Vec<Claimed>,
    status: &mut StatusWriter,
) -> Result<(PathBuf, bool)> {
    let max_bytes = config.service.max_input_bytes;
    check_input(&claimed.path, &claimed.name, max_bytes)?;
    let (text, input_path, overrides) = match input_kind(&claimed.path) {
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
    };
    let input: FileRecord = crate::render::file_record(&input_path)?;
    let stem = overrides.output.clone().unwrap_or_else(|| claimed.stem());
    let wav = spool.dirs().processing.join(format!(".{stem}.wav.out"));
    let report = crate::render::sidecar_path(&wav);
    let mut observer = JobObserver {
        status,
        progress: crate::background::ProgressLog::new(),
        started: Instant::now(),
        bound: (config.service.job_timeout_s > 0)
            .then(|| Duration::from_secs(config.service.job_timeout_s)),
    };
    renderer.render(
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
            report: &report,
        },
    )?;
    let play = overrides.play.unwrap_or(config.playback.enabled);
    Ok((final_wav, play))
}
