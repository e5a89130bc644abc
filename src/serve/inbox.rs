//! The inbox: the watcher (inotify) that wakes the service and tells which
//! files are still being written, and what an input may be and holds
//! (a text, or a job file with its text inline or beside it).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::job::{JobFile, Overrides};
use super::spool::{Claimed, InputKind, Spool, input_kind};

/// The inbox watcher and what it has told about files being written.
pub(super) struct Inbox {
    // Kept alive: dropping it stops the events.
    _watcher: notify::RecommendedWatcher,
    woken: std::sync::mpsc::Receiver<Option<notify::Event>>,
    pub(super) writing: Writing,
}

impl Inbox {
    pub(super) fn watch(inbox: &Path) -> Result<Inbox> {
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
    pub(super) fn drain(&mut self) {
        while let Ok(event) = self.woken.try_recv() {
            self.writing.note(event);
        }
    }

    /// Waits for the next event, or `most` to notice signals.
    pub(super) fn wait(&mut self, most: Duration) {
        if let Ok(event) = self.woken.recv_timeout(most) {
            self.writing.note(event);
        }
        self.drain();
    }
}

/// Inbox files someone is still writing, from inotify's events.
#[derive(Default)]
pub(super) struct Writing {
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

    pub(super) fn is_open(&self, path: &Path) -> bool {
        self.open
            .get(path)
            .is_some_and(|since| since.elapsed() < WRITING_GIVE_UP)
    }
}

/// Whether `path` is the text file of a job file still in the inbox (it
/// waits for its job instead of being narrated on its own).
pub(super) fn referenced_by_a_waiting_job(spool: &Spool, path: &Path) -> bool {
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
pub(super) fn report_names_input(report: &Path, name: &str) -> bool {
    std::fs::read_to_string(report)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["input"]["path"].as_str().map(str::to_owned))
        .is_some_and(|p| Path::new(&p).file_name().is_some_and(|n| n == name))
}

/// Refuses what must not be read: links, and files over the size limit.
pub(super) fn check_input(path: &Path, name: &str, max_bytes: u64) -> Result<()> {
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

pub(super) fn beside_in_processing(companions: &[Claimed]) -> PathBuf {
    companions
        .last()
        .map(|c| c.path.clone())
        .unwrap_or_default()
}

/// A claimed input's text, the file it came from and what its job file
/// asks; the text file a job file names is claimed into `companions`.
pub(super) fn read_input(
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
