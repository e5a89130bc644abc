//! `vivid doctor`: one line per thing a working installation needs, each
//! with pass or fail and, when it fails, what to do about it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::models::{Depth, Manifest, check_all};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Worth knowing, not fatal (e.g. a folder that does not exist yet but
    /// will be created).
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    /// What was checked, e.g. `model voices/en_US-joe-medium.onnx`.
    pub(crate) subject: String,
    /// What was found.
    pub detail: String,
    /// What to do, for anything but a pass.
    pub fix: Option<String>,
}

impl Check {
    fn pass(subject: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Pass,
            subject: subject.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    fn not_ok(
        status: Status,
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status,
            subject: subject.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}: {}", self.status, self.subject, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

/// Runs every check against `config`.
pub fn run_checks(config: &Config, manifest: &Manifest) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(check_models(config, manifest));
    checks.push(check_describer(config));
    checks.push(check_embedder(config));
    checks.push(check_library(config));
    checks.push(check_background(config));
    checks.push(check_espeak_data());
    checks.push(check_playback(config));
    checks.extend(check_dirs(config));
    checks.extend(check_free_disk(config));
    checks.extend(check_metrics_file(config));
    checks.extend(check_triggers(config));
    checks
}

/// Where the drop-in that opens the unit to trigger devices goes.
pub(crate) const TRIGGERS_DROPIN: &str = "/etc/systemd/system/vivid.service.d/triggers.conf";

/// Each trigger's device: a missing one is a warning (it is used when it
/// appears), a wrong one (no such key, a line beyond its chip) fails.
fn check_triggers(config: &Config) -> Vec<Check> {
    use crate::serve::triggers::{DeviceCheck, check};
    let mut checks: Vec<Check> = config
        .triggers
        .iter()
        .map(|spec| {
            let subject = format!("trigger `{}` ({})", spec.name, spec.origin);
            match check(spec) {
                DeviceCheck::Present(detail) => Check::pass(subject, detail),
                DeviceCheck::Missing(detail) => Check::not_ok(
                    Status::Warn,
                    subject,
                    detail,
                    "plug the device in, or fix the trigger's device/chip in the config; the service watches for it",
                ),
                DeviceCheck::Wrong(detail) => Check::not_ok(
                    Status::Fail,
                    subject,
                    detail,
                    "fix the trigger in the config (its line is named above)",
                ),
            }
        })
        .collect();
    let unit_installed = [
        "/etc/systemd/system/vivid.service",
        "/usr/lib/systemd/system/vivid.service",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists());
    if !config.triggers.is_empty()
        && unit_installed
        && !std::path::Path::new(TRIGGERS_DROPIN).exists()
    {
        checks.push(Check::not_ok(
            Status::Warn,
            "trigger devices in the service unit",
            "triggers are configured, but the hardened unit allows only sound cards",
            format!(
                "sudo mkdir -p {dir} && vivid triggers --dropin | sudo tee {TRIGGERS_DROPIN} && sudo systemctl daemon-reload && sudo systemctl restart vivid",
                dir = "/etc/systemd/system/vivid.service.d"
            ),
        ));
    }
    checks
}

/// The metrics file's folder, when metrics are on: a warning, not a
/// failure (the service runs on without metrics).
fn check_metrics_file(config: &Config) -> Option<Check> {
    let path = config.service.metrics_file.as_ref()?;
    let subject = "metrics file";
    Some(match crate::serve::metrics::check_folder(path) {
        Ok(()) => Check::pass(subject, path.display().to_string()),
        Err(reason) => Check::not_ok(
            Status::Warn,
            subject,
            reason,
            "create the folder and let the vivid user write there, or unset service.metrics_file",
        ),
    })
}

fn check_models(config: &Config, manifest: &Manifest) -> Vec<Check> {
    check_all(manifest, &config.models_dir, Depth::Hash)
        .into_iter()
        .map(|c| {
            let subject = format!("model {}", c.file.install_as.display());
            if c.state.is_ok() {
                Check::pass(subject, format!("{} (sha256 ok)", c.path.display()))
            } else {
                Check::not_ok(
                    Status::Fail,
                    subject,
                    c.to_string(),
                    format!(
                        "run `vivid models fetch --models-dir {}`",
                        config.models_dir.display()
                    ),
                )
            }
        })
        .collect()
}

/// The background engine the settings choose, and why: `auto` says
/// whether it found a bundle of real weights; an explicit `audioldm2`
/// without a usable bundle fails. AudioLDM2's graphs are not loaded here
/// (a minute on a small board); its bundle.toml and file list are read.
fn check_background(config: &Config) -> Check {
    let subject = "background";
    let settings = config.background_settings(&crate::config::Overrides::default());
    match crate::background::open(&settings) {
        Ok(opened) => {
            let engine = opened.generator.kind().as_str();
            let detail = match opened.note {
                Some(note) => note,
                None if engine == "audioldm2" => format!(
                    "AudioLDM2 bundle {} ({})",
                    settings.audioldm2.bundle.display(),
                    opened.generator.report(settings.seed).id
                ),
                None => format!("{engine} engine"),
            };
            Check::pass(subject, detail)
        }
        Err(e) => Check::not_ok(
            Status::Fail,
            subject,
            e.to_string(),
            "set background.engine = \"soundscape\" (no weights needed), or make a bundle as the error says",
        ),
    }
}

/// The describer's model as the config names it (it may be one outside
/// the manifest): present and a GGUF file, when method `llm` needs it.
fn check_describer(config: &Config) -> Check {
    use crate::describe::Method;
    let subject = "describer";
    let method = config.describe.method;
    if method != Method::Llm {
        return Check::pass(
            subject,
            format!("method {} needs no language model", method.as_str()),
        );
    }
    let path = &config.describer_model;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut magic)
    });
    match read {
        Ok(()) if &magic == b"GGUF" => Check::pass(subject, format!("{} (GGUF)", path.display())),
        Ok(()) => Check::not_ok(
            Status::Fail,
            subject,
            format!("{} is not a GGUF model file", path.display()),
            "point describe.model at a GGUF file, or run `vivid models fetch`",
        ),
        Err(e) => Check::not_ok(
            Status::Fail,
            subject,
            format!("cannot read {}: {e}", path.display()),
            "run `vivid models fetch`, or set describe.model (captions fall back to the \
             text itself until then)",
        ),
    }
}

/// The sentence-embedding model of catalog mode: loadable, or a warning
/// (the describer then weighs words, setting and the language model only,
/// and chooses less well for texts that only imply their sounds).
fn check_embedder(config: &Config) -> Check {
    let subject = "embedder";
    if config.describe.method != crate::describe::Method::Llm
        || config
            .describer_settings(&crate::config::Overrides::default())
            .vocabulary
            .is_none()
    {
        return Check::pass(subject, "not used (the describer is not in catalog mode)");
    }
    let paths = config.embedder_paths(&crate::config::Overrides::default());
    match crate::describe::embed::SentenceEncoder::load(&paths.weights, &paths.tokenizer) {
        Ok(_) => Check::pass(
            subject,
            format!("{} (all-MiniLM-L6-v2)", paths.weights.display()),
        ),
        Err(e) => Check::not_ok(
            Status::Warn,
            subject,
            e.to_string(),
            "run `vivid models fetch` (until then the describer chooses sounds without the \
             meaning of the text: words, setting and the language model only)",
        ),
    }
}

/// The sound library: every folder loads, or a warning naming each file
/// that cannot play (its source falls back to its recipe); and how much
/// memory its decoded audio holds.
fn check_library(config: &Config) -> Check {
    use crate::background::soundscape::catalog::Catalog;
    use crate::background::soundscape::library::{Library, Severity};
    let subject = "sound library";
    if config.library_dirs.is_empty() {
        return Check::pass(
            subject,
            "none ([background.library] dirs is empty): recipes play",
        );
    }
    let settings = config
        .background_settings(&crate::config::Overrides::default())
        .library;
    let library = Library::load(&settings, Catalog::builtin());
    let errors: Vec<String> = library
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.to_string())
        .collect();
    let held = format!(
        "{} sources, {:.1} MiB of decoded audio held (limit {} MiB)",
        library.sources.len(),
        library.bytes as f64 / f64::from(1u32 << 20),
        settings.max_mb
    );
    if errors.is_empty() {
        Check::pass(subject, held)
    } else {
        Check::not_ok(
            Status::Warn,
            subject,
            format!("{held}; {}", errors.join("; ")),
            "fix what each line names (`vivid library check` gives details); until then those sources play their recipes",
        )
    }
}

/// Folders libespeak-ng looks in for its data, most specific first.
fn espeak_data_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("ESPEAK_DATA_PATH") {
        dirs.push(PathBuf::from(dir).join("espeak-ng-data"));
    }
    let multiarch = format!(
        "/usr/lib/{}-linux-gnu/espeak-ng-data",
        std::env::consts::ARCH
    );
    dirs.push(PathBuf::from(multiarch));
    dirs.push(PathBuf::from("/usr/share/espeak-ng-data"));
    dirs.push(PathBuf::from("/usr/local/share/espeak-ng-data"));
    dirs
}

fn check_espeak_data() -> Check {
    let subject = "espeak-ng data";
    // `phontab` and the English dictionary are what the default voice needs.
    match espeak_data_candidates()
        .into_iter()
        .find(|d| d.join("phontab").is_file())
    {
        Some(dir) if dir.join("en_dict").is_file() => {
            Check::pass(subject, dir.display().to_string())
        }
        Some(dir) => Check::not_ok(
            Status::Fail,
            subject,
            format!("{} has no en_dict", dir.display()),
            "reinstall the data: `apt-get install --reinstall espeak-ng-data`",
        ),
        None => Check::not_ok(
            Status::Fail,
            subject,
            "not found (looked for phontab in $ESPEAK_DATA_PATH, /usr/lib/*/espeak-ng-data, /usr/share/espeak-ng-data)",
            "install it: `apt-get install espeak-ng-data`",
        ),
    }
}

fn check_playback(config: &Config) -> Check {
    let device = &config.playback.device;
    let subject = format!("playback device `{device}`");
    if !config.playback.enabled {
        return Check::pass(subject, "not checked: playback is disabled in the config");
    }
    match probe_playback_device(device) {
        Ok(()) => Check::pass(subject, "opens for playback"),
        Err(reason) => Check::not_ok(
            Status::Fail,
            subject,
            format!("cannot be opened for playback: {reason}"),
            "list devices with `aplay -L` and set [playback] device, check the speaker is plugged in \
             and the service user is in the `audio` group, or set [playback] enabled = false",
        ),
    }
}

/// Opens and closes an ALSA PCM for playback. ALSA's own messages, which it
/// would otherwise print to stderr, are captured into the error.
fn probe_playback_device(device: &str) -> Result<(), String> {
    let captured = alsa::Output::local_error_handler().ok();
    let result = alsa::PCM::new(device, alsa::Direction::Playback, true);
    let alsa_said = captured
        .map(|out| out.borrow().to_string())
        .unwrap_or_default();
    match result {
        Ok(pcm) => {
            drop(pcm);
            Ok(())
        }
        Err(e) => {
            // ALSA explains itself in a cascade of lines; the first (the
            // cause) and the last (what failed) are the ones that help.
            let lines: Vec<&str> = alsa_said
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            match lines.as_slice() {
                [] => Err(e.to_string()),
                [only] => Err(format!("{e} ({only})")),
                [first, .., last] => Err(format!("{e} ({first}; ...; {last})")),
            }
        }
    }
}

fn check_dirs(config: &Config) -> Vec<Check> {
    let mut dirs: Vec<(&str, &Path)> = vec![("models folder", &config.models_dir)];
    let spool = crate::serve::spool::SpoolDirs::under(&config.spool_dir);
    dirs.extend(spool.all());
    dirs.push(("output folder", &config.output_dir));
    dirs.into_iter()
        .map(|(what, dir)| check_writable_dir(what, dir))
        .collect()
}

fn check_writable_dir(what: &str, dir: &Path) -> Check {
    let subject = format!("{what} {}", dir.display());
    let fix_perm = format!(
        "create it and give the vivid user write access: `install -d -o vivid {}` (or run deploy/install.sh)",
        dir.display()
    );
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Check::not_ok(
            Status::Fail,
            subject,
            "exists but is not a folder",
            format!("move the file away or point the config elsewhere; {fix_perm}"),
        ),
        Ok(_) if is_writable(dir) => Check::pass(subject, "writable"),
        Ok(_) => Check::not_ok(Status::Fail, subject, "not writable", fix_perm),
        Err(_) => match existing_ancestor(dir) {
            Some(anc) if anc.is_dir() && is_writable(&anc) => Check {
                status: Status::Warn,
                subject,
                detail: format!(
                    "does not exist yet; will be created (under {})",
                    anc.display()
                ),
                fix: None,
            },
            Some(anc) => Check::not_ok(
                Status::Fail,
                subject,
                format!(
                    "does not exist and {} is not a writable folder",
                    anc.display()
                ),
                fix_perm,
            ),
            None => Check::not_ok(Status::Fail, subject, "does not exist", fix_perm),
        },
    }
}

fn is_writable(dir: &Path) -> bool {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
}

fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

fn check_free_disk(config: &Config) -> Vec<Check> {
    let min_mb = config.system.min_free_disk_mb;
    let mut seen_fs = Vec::new();
    let mut checks = Vec::new();
    for dir in [&config.models_dir, &config.spool_dir, &config.output_dir] {
        let Some(probe) = dir.ancestors().find(|p| p.exists()).map(Path::to_path_buf) else {
            continue;
        };
        let subject = format!("free disk at {}", probe.display());
        let stat = match nix::sys::statvfs::statvfs(&probe) {
            Ok(stat) => stat,
            Err(e) => {
                checks.push(Check::not_ok(
                    Status::Warn,
                    subject,
                    format!("cannot tell: {e}"),
                    "check the file system is mounted",
                ));
                continue;
            }
        };
        if seen_fs.contains(&stat.filesystem_id()) {
            continue;
        }
        seen_fs.push(stat.filesystem_id());
        let free_mb = stat.blocks_available() as u64 * stat.fragment_size() as u64 / (1024 * 1024);
        if free_mb >= min_mb {
            checks.push(Check::pass(subject, format!("{free_mb} MiB free")));
        } else {
            checks.push(Check::not_ok(
                Status::Fail,
                subject,
                format!("{free_mb} MiB free, below the {min_mb} MiB minimum"),
                "free space (old outputs in the done folder are the usual culprit) or lower [system] min_free_disk_mb",
            ));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_in_place_of_folder_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("spool");
        std::fs::write(&file, b"").unwrap();
        let check = check_writable_dir("inbox", &file);
        assert_eq!(check.status, Status::Fail);
        assert!(check.fix.is_some());
    }

    #[test]
    fn missing_folder_under_writable_parent_warns() {
        let tmp = tempfile::tempdir().unwrap();
        let check = check_writable_dir("inbox", &tmp.path().join("a/b"));
        assert_eq!(check.status, Status::Warn, "{check}");
        let check = check_writable_dir("inbox", tmp.path());
        assert_eq!(check.status, Status::Pass, "{check}");
    }

    #[test]
    fn unknown_alsa_device_is_reported() {
        let err = probe_playback_device("vivid_no_such_device").unwrap_err();
        assert!(!err.is_empty());
    }
}
