//! The job folders on disk and every move between them.
//!
//! `inbox/` → `processing/` → `done/` (input, WAV, JSON report) or
//! `failed/` (input and `NAME.error.txt`). Every move is a rename within
//! one file system and every output is written under a temporary name
//! first, so after a power cut at any moment each input is in exactly one
//! folder and no final name holds a half-written file. [`Spool::recover`]
//! runs at start: a job left in `processing/` is finished if its outputs
//! are already in `done/`, and otherwise goes back to the inbox to be done
//! again. Names already taken in `done/` or `failed/` get a `-2`, `-3`, …
//! suffix; nothing is overwritten.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use thiserror::Error;

use crate::fsutil::{AtomicFile, fsync_dir};

#[derive(Debug, Error)]
pub(crate) enum SpoolError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot move it to {to}")]
    Move {
        path: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SpoolError {
    /// Whether the file system (or quota) was full.
    pub(crate) fn is_disk_full(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } | SpoolError::Move { source, .. } => {
                super::disk::io_is_disk_full(source)
            }
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The job folders below the spool directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SpoolDirs {
    pub inbox: PathBuf,
    pub processing: PathBuf,
    pub done: PathBuf,
    pub failed: PathBuf,
}

impl SpoolDirs {
    pub fn under(root: &Path) -> Self {
        Self {
            inbox: root.join("inbox"),
            processing: root.join("processing"),
            done: root.join("done"),
            failed: root.join("failed"),
        }
    }

    pub fn all(&self) -> [(&'static str, &Path); 4] {
        [
            ("inbox", &self.inbox),
            ("processing", &self.processing),
            ("done", &self.done),
            ("failed", &self.failed),
        ]
    }
}

/// What kind of input a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A text to narrate.
    Text,
    /// A job file (text and per-job settings).
    Job,
    /// Anything else: failed with a reason, never ignored forever.
    Other,
}

/// Whether an inbox name is still being written by someone: hidden files,
/// `*.part`, `*.tmp` and editor backups `*~` are left alone until they are
/// renamed.
pub(crate) fn is_temporary(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with('~')
}

pub(crate) fn input_kind(path: &Path) -> InputKind {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("txt") => InputKind::Text,
        Some("toml") => InputKind::Job,
        _ => InputKind::Other,
    }
}

/// A job taken from the inbox, now in `processing/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimed {
    /// Where the input is now.
    pub path: PathBuf,
    /// Its file name as it arrived.
    pub name: String,
}

impl Claimed {
    /// The name outputs are given: the input's stem.
    pub fn stem(&self) -> String {
        Path::new(&self.name)
            .file_stem()
            .map_or_else(|| "job".to_owned(), |s| s.to_string_lossy().into_owned())
    }
}

/// The outputs of a finished job, written under temporary names.
#[derive(Debug)]
pub(crate) struct Outputs<'a> {
    pub wav: &'a Path,
    pub report: &'a Path,
}

#[derive(Debug, Clone)]
pub(crate) struct Spool {
    dirs: SpoolDirs,
}

impl Spool {
    /// The spool in `dirs`, its folders created.
    pub fn open(dirs: &SpoolDirs) -> Result<Spool, SpoolError> {
        for (_, dir) in dirs.all() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        Ok(Spool { dirs: dirs.clone() })
    }

    pub fn dirs(&self) -> &SpoolDirs {
        &self.dirs
    }

    /// Complete inputs waiting in the inbox, oldest first (modification
    /// time, then name). Symbolic links and other non-files are listed too,
    /// so they can be failed with a reason; temporary names are not.
    pub fn waiting(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let inbox = &self.dirs.inbox;
        let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(inbox).map_err(|e| io_error(inbox, e))? {
            let entry = entry.map_err(|e| io_error(inbox, e))?;
            if is_temporary(&entry.file_name()) {
                continue;
            }
            // The link itself, never what it points to.
            let meta = std::fs::symlink_metadata(entry.path()).map_err(|e| io_error(inbox, e))?;
            if meta.is_dir() {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((modified, entry.path()));
        }
        found.sort();
        Ok(found.into_iter().map(|(_, p)| p).collect())
    }

    /// Moves an inbox file to `processing/`.
    pub(crate) fn claim(&self, inbox_file: &Path) -> Result<Claimed, SpoolError> {
        let name = file_name(inbox_file);
        let target = free_name(&self.dirs.processing, &name);
        rename(inbox_file, &target)?;
        Ok(Claimed { path: target, name })
    }

    /// Moves the outputs into `done/` under the job's name (a free one),
    /// then the input beside them. Returns the WAV's final path.
    pub(crate) fn complete(
        &self,
        job: &Claimed,
        outputs: Outputs<'_>,
    ) -> Result<PathBuf, SpoolError> {
        let stem = free_stem(&self.dirs.done, &job.stem(), &["wav", "json"]);
        let wav = self.dirs.done.join(format!("{stem}.wav"));
        let report = self.dirs.done.join(format!("{stem}.json"));
        // The report goes last of the outputs: a report in done/ means the
        // WAV is there too (recovery relies on it).
        rename(outputs.wav, &wav)?;
        rename(outputs.report, &report)?;
        let input = free_name(&self.dirs.done, &job.name);
        rename(&job.path, &input)?;
        Ok(wav)
    }

    /// Writes `NAME.error.txt` into `failed/` and moves the input beside it.
    /// Returns the error file's path.
    pub fn fail(&self, job: &Claimed, reason: &str) -> Result<PathBuf, SpoolError> {
        let input = free_name(&self.dirs.failed, &job.name);
        let error = self
            .dirs
            .failed
            .join(format!("{}.error.txt", file_name(&input)));
        let mut file = AtomicFile::create(&error).map_err(|e| io_error(&error, e))?;
        writeln!(
            file,
            "vivid could not narrate {}.\n\n{reason}\n\nFix the file and copy it into the inbox again ({}).",
            job.name,
            self.dirs.inbox.display()
        )
        .map_err(|e| io_error(&error, e))?;
        file.commit().map_err(|e| io_error(&error, e))?;
        rename(&job.path, &input)?;
        Ok(error)
    }

    /// Puts a claimed input back into the inbox, where it keeps its place
    /// in the queue (the modification time, which a rename keeps).
    pub(crate) fn requeue(&self, claimed: &Claimed) -> Result<PathBuf, SpoolError> {
        let target = free_name(&self.dirs.inbox, &claimed.name);
        rename(&claimed.path, &target)?;
        Ok(target)
    }

    /// Removes the half-written outputs of the job that was running
    /// (outputs are written under dot-names in `processing/`).
    pub(crate) fn remove_partial_outputs(&self) -> Result<usize, SpoolError> {
        let processing = &self.dirs.processing;
        let mut removed = 0;
        for entry in std::fs::read_dir(processing).map_err(|e| io_error(processing, e))? {
            let path = entry.map_err(|e| io_error(processing, e))?.path();
            if file_name(&path).starts_with('.') {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves a claimed file into `folder` (done/ or failed/) under a free
    /// name.
    pub(crate) fn file_into(
        &self,
        claimed: &Claimed,
        folder: &Path,
    ) -> Result<PathBuf, SpoolError> {
        let target = free_name(folder, &claimed.name);
        rename(&claimed.path, &target)?;
        Ok(target)
    }

    /// Puts every job a crash left in `processing/` where it belongs:
    /// finished when `done/` already holds its report (the crash came
    /// between the last two renames), otherwise back in the inbox. Returns
    /// (finished, requeued).
    pub fn recover(
        &self,
        report_names_input: impl Fn(&Path, &str) -> bool,
    ) -> Result<(usize, usize), SpoolError> {
        let processing = &self.dirs.processing;
        let (mut finished, mut requeued) = (0, 0);
        let entries: Vec<PathBuf> = std::fs::read_dir(processing)
            .map_err(|e| io_error(processing, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        for path in entries {
            let name = file_name(&path);
            if name.starts_with('.') {
                // A half-written output of the interrupted job.
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                continue;
            }
            let stem = Path::new(&name)
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            let done_report = self.dirs.done.join(format!("{stem}.json"));
            if done_report.is_file() && report_names_input(&done_report, &name) {
                rename(&path, &free_name(&self.dirs.done, &name))?;
                finished += 1;
            } else {
                rename(&path, &free_name(&self.dirs.inbox, &name))?;
                requeued += 1;
            }
        }
        Ok((finished, requeued))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "job".to_owned(), |n| n.to_string_lossy().into_owned())
}

fn rename(from: &Path, to: &Path) -> Result<(), SpoolError> {
    std::fs::rename(from, to).map_err(|source| SpoolError::Move {
        path: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })?;
    for dir in [from.parent(), to.parent()].into_iter().flatten() {
        fsync_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    Ok(())
}

/// `dir/NAME`, or `dir/STEM-2.EXT`, `-3`, … when taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if std::fs::symlink_metadata(&candidate).is_err() {
        return candidate;
    }
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    (2..)
        .map(|n| match &ext {
            Some(ext) => dir.join(format!("{stem}-{n}.{ext}")),
            None => dir.join(format!("{stem}-{n}")),
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .unwrap_or(candidate)
}

/// A stem for which none of `STEM.EXT` exists in `dir`.
fn free_stem(dir: &Path, stem: &str, extensions: &[&str]) -> String {
    let free = |s: &str| {
        extensions
            .iter()
            .all(|e| std::fs::symlink_metadata(dir.join(format!("{s}.{e}"))).is_err())
    };
    if free(stem) {
        return stem.to_owned();
    }
    (2..)
        .map(|n| format!("{stem}-{n}"))
        .find(|s| free(s))
        .unwrap_or_else(|| stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> (tempfile::TempDir, Spool) {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(&SpoolDirs::under(tmp.path())).unwrap();
        (tmp, spool)
    }

    #[test]
    fn temporary_names_wait_and_inputs_come_oldest_first() {
        let (_tmp, spool) = spool();
        let inbox = spool.dirs().inbox.clone();
        for name in [".hidden.txt", "a.txt.part", "b.tmp", "c.txt~"] {
            std::fs::write(inbox.join(name), "x").unwrap();
        }
        std::fs::write(inbox.join("z.txt"), "first").unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        std::fs::File::options()
            .append(true)
            .open(inbox.join("z.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::write(inbox.join("a.txt"), "second").unwrap();
        let names: Vec<String> = spool
            .waiting()
            .unwrap()
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(names, ["z.txt", "a.txt"]);
        assert_eq!(input_kind(Path::new("x.TXT")), InputKind::Text);
        assert_eq!(input_kind(Path::new("x.toml")), InputKind::Job);
        assert_eq!(input_kind(Path::new("x.pdf")), InputKind::Other);
    }

    #[test]
    fn a_job_moves_through_and_names_are_never_reused() {
        let (tmp, spool) = spool();
        let d = spool.dirs().clone();
        for round in 0..2 {
            std::fs::write(d.inbox.join("hall.txt"), format!("text {round}")).unwrap();
            let job = spool.claim(&d.inbox.join("hall.txt")).unwrap();
            assert!(job.path.starts_with(&d.processing));
            let wav = tmp.path().join("out.wav.partial");
            let report = tmp.path().join("out.json.partial");
            std::fs::write(&wav, format!("wav {round}")).unwrap();
            std::fs::write(&report, format!("json {round}")).unwrap();
            let final_wav = spool
                .complete(
                    &job,
                    Outputs {
                        wav: &wav,
                        report: &report,
                    },
                )
                .unwrap();
            let expected = if round == 0 { "hall.wav" } else { "hall-2.wav" };
            assert_eq!(final_wav, d.done.join(expected));
        }
        assert_eq!(
            std::fs::read_to_string(d.done.join("hall.txt")).unwrap(),
            "text 0"
        );
        assert_eq!(
            std::fs::read_to_string(d.done.join("hall-2.txt")).unwrap(),
            "text 1"
        );
        assert_eq!(
            std::fs::read_to_string(d.done.join("hall-2.wav")).unwrap(),
            "wav 1"
        );
        assert_eq!(std::fs::read_dir(&d.processing).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&d.inbox).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_job_keeps_its_input_and_says_why() {
        let (_tmp, spool) = spool();
        let d = spool.dirs().clone();
        std::fs::write(d.inbox.join("bad.txt"), b"\xff\xfe").unwrap();
        let job = spool.claim(&d.inbox.join("bad.txt")).unwrap();
        let error = spool
            .fail(&job, "bad.txt is not UTF-8 text (byte 0)")
            .unwrap();
        assert_eq!(error, d.failed.join("bad.txt.error.txt"));
        let text = std::fs::read_to_string(&error).unwrap();
        assert!(
            text.contains("not UTF-8") && text.contains("inbox"),
            "{text}"
        );
        assert_eq!(
            std::fs::read(d.failed.join("bad.txt")).unwrap(),
            b"\xff\xfe"
        );
    }

    #[test]
    fn recovery_finishes_or_requeues_what_a_crash_left() {
        let (_tmp, spool) = spool();
        let d = spool.dirs().clone();
        // Crashed after the outputs reached done/: finished.
        std::fs::write(d.processing.join("one.txt"), "1").unwrap();
        std::fs::write(d.done.join("one.wav"), "wav").unwrap();
        std::fs::write(d.done.join("one.json"), "{\"input\": \"one.txt\"}").unwrap();
        // Crashed mid-render: back to the inbox.
        std::fs::write(d.processing.join("two.txt"), "2").unwrap();
        let names_input = |report: &Path, name: &str| {
            std::fs::read_to_string(report).is_ok_and(|r| r.contains(name))
        };
        assert_eq!(spool.recover(names_input).unwrap(), (1, 1));
        assert_eq!(
            std::fs::read_to_string(d.done.join("one.txt")).unwrap(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(d.inbox.join("two.txt")).unwrap(),
            "2"
        );
        assert_eq!(std::fs::read_dir(&d.processing).unwrap().count(), 0);
    }
}
