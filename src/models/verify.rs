//! Checking installed model files against the manifest.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ModelFile};

/// How thoroughly to look at a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Presence and size only: instant, for listings.
    Size,
    /// Size and sha256 of the whole file.
    Hash,
}

/// What was found for one manifest file.
#[derive(Debug)]
pub enum FileState {
    Ok,
    Missing,
    /// Present but not a regular file (a folder, a dangling link).
    NotAFile,
    WrongSize {
        actual: u64,
    },
    WrongHash {
        actual: String,
    },
    Unreadable(io::Error),
}

impl FileState {
    pub fn is_ok(&self) -> bool {
        matches!(self, FileState::Ok)
    }
}

#[derive(Debug)]
pub struct FileCheck<'m> {
    pub file: &'m ModelFile,
    pub path: PathBuf,
    pub state: FileState,
}

impl fmt::Display for FileCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.state {
            FileState::Ok => write!(f, "{path}: ok"),
            FileState::Missing => write!(f, "{path}: missing"),
            FileState::NotAFile => write!(f, "{path}: not a regular file"),
            FileState::WrongSize { actual } => write!(
                f,
                "{path}: {actual} bytes, expected {} ({})",
                self.file.size,
                if *actual < self.file.size {
                    "truncated or partly written"
                } else {
                    "not the expected file"
                }
            ),
            FileState::WrongHash { actual } => write!(
                f,
                "{path}: sha256 {actual} does not match the manifest's {} (file is corrupt or was replaced)",
                self.file.sha256
            ),
            FileState::Unreadable(e) => write!(f, "{path}: cannot read: {e}"),
        }
    }
}

/// Checks one manifest file in `models_dir`.
pub fn check_file<'m>(models_dir: &Path, file: &'m ModelFile, depth: Depth) -> FileCheck<'m> {
    let path = models_dir.join(&file.install_as);
    let state = file_state(&path, file, depth);
    FileCheck { file, path, state }
}

/// Checks every file of the manifest, in manifest order.
pub fn check_all<'m>(
    manifest: &'m Manifest,
    models_dir: &Path,
    depth: Depth,
) -> Vec<FileCheck<'m>> {
    manifest
        .files()
        .map(|file| check_file(models_dir, file, depth))
        .collect()
}

fn file_state(path: &Path, file: &ModelFile, depth: Depth) -> FileState {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return FileState::Missing,
        Err(e) => return FileState::Unreadable(e),
    };
    if !meta.is_file() {
        return FileState::NotAFile;
    }
    if meta.len() != file.size {
        return FileState::WrongSize { actual: meta.len() };
    }
    if depth == Depth::Size {
        return FileState::Ok;
    }
    match sha256_file(path) {
        Ok(actual) if actual.eq_ignore_ascii_case(&file.sha256) => FileState::Ok,
        Ok(actual) => FileState::WrongHash { actual },
        Err(e) => FileState::Unreadable(e),
    }
}

/// Lower-case hex sha256 of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
