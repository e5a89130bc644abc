//! Writing files so that a power cut never leaves a half-written file under
//! its final name: write a temporary sibling, fsync it, rename it over the
//! final name, fsync the folder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name beside its final path.
///
/// The temporary name is fixed (`.NAME.partial`), not random, so that what an
/// interrupted run left behind is found and overwritten by the next one
/// instead of piling up. Dropping an uncommitted `AtomicFile` removes it.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    file: File,
    committed: bool,
    temp_path: PathBuf,
    final_path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `final_path`, creating its folder if needed.
    pub fn create(final_path: &Path) -> io::Result<AtomicFile> {
        let dir = parent_dir(final_path);
        fs::create_dir_all(dir)?;
        let temp_path = partial_path(final_path)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)?;
        Ok(AtomicFile {
            file,
            committed: false,
            temp_path,
            final_path: final_path.to_path_buf(),
        })
    }

    /// The open file, for writers that need `Seek` (a WAV header is
    /// patched at the end).
    pub(crate) fn as_file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where the file is written until it is committed.
    #[cfg(test)]
    pub(crate) fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Flushes to disk and moves the file to its final name.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.temp_path, &self.final_path)?;
        self.committed = true;
        fsync_dir(parent_dir(&self.final_path))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Not committed: leave nothing behind under any name.
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// `dir/.NAME.partial` for `dir/NAME`.
pub(crate) fn partial_path(final_path: &Path) -> io::Result<PathBuf> {
    let name = final_path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", final_path.display()),
        )
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".partial");
    Ok(parent_dir(final_path).join(temp_name))
}

/// Rewrites an existing small file in place, without a temporary file:
/// for a status that must still be written when the file system is full
/// (the file's blocks are already its own). Not atomic: a reader may see
/// it half written, so only for files that are rewritten often.
pub(crate) fn overwrite_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Seek;
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_data()
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_moves_file_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/out.bin");
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"hello").unwrap();
        assert!(
            !target.exists(),
            "nothing under the final name before commit"
        );
        let temp = file.temp_path().to_path_buf();
        file.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert!(!temp.exists());
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"half").unwrap();
        let temp = file.temp_path().to_path_buf();
        drop(file);
        assert!(!target.exists());
        assert!(!temp.exists());
    }

    #[test]
    fn commit_replaces_an_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        fs::write(&target, b"old contents").unwrap();
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"old contents");
        file.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
