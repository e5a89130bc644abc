//! The service on a small tmpfs spool: a full disk is waited out (before
//! a job and in the middle of one) and loses nothing; a text too big for
//! the file system fails at once and does not block the queue; the
//! metrics file counts what happened and passes `promtool check metrics`;
//! the fleet examples pass their own tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{run, text, vivid};
use crate::serve_cli::{Service, drop_in, files};

/// A tmpfs of `mib` MiB mounted at `at` (the tests run as root), unmounted
/// when dropped.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mib}m"))
            .arg("tmpfs")
            .arg(at));
        assert!(
            out.status.success(),
            "mounting a tmpfs (the tests run as root): {}",
            text(&out.stderr)
        );
        Tmpfs {
            at: at.to_path_buf(),
        }
    }

    fn available(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(&self.at).unwrap();
        stat.blocks_available() as u64 * stat.fragment_size() as u64
    }

    /// Fills the file system, leaving `leave` bytes free, with `name`.
    fn fill(&self, name: &str, leave: u64) -> PathBuf {
        let filler = self.at.join(name);
        let take = self.available().saturating_sub(leave);
        let out = run(Command::new("fallocate")
            .arg("-l")
            .arg(take.to_string())
            .arg(&filler));
        assert!(out.status.success(), "fallocate: {}", text(&out.stderr));
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn status(service: &Service) -> Value {
    std::fs::read_to_string(service.spool("status.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// The background cache in the test's folder (off the tmpfs) with
/// `background` keys, and no playback.
fn sections(dir: &Path, background: &str) -> String {
    format!(
        "[background]\ncache_dir = \"{}\"\n{background}[playback]\nenabled = false\n",
        dir.join("cache").display()
    )
}

fn cache_section(dir: &Path) -> String {
    sections(dir, "")
}

/// A narration text of about `chars` characters.
fn narration(chars: usize) -> String {
    let sentence = "The old harbour wakes at dawn while gulls call over the quiet boats. ";
    sentence.repeat(chars / sentence.len() + 1)
}

#[test]
fn a_full_disk_before_a_job_is_waited_out_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&tmp.path().join("spool"), 24);
    let metrics = tmp.path().join("metrics/vivid.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let service = Service::start(
        tmp.path(),
        &format!(
            "metrics_file = \"{}\"\n{}",
            metrics.display(),
            cache_section(tmp.path())
        ),
    );
    // Room for the status file, not for a narration.
    let filler = disk.fill("filler", 256 * 1024);
    drop_in(&service, "harbour.txt", narration(300).as_bytes());
    service.wait_for("the service to wait for disk space", || {
        status(&service)["state"] == "waiting_for_disk"
    });
    let s = status(&service);
    let needed = s["disk"]["needed_bytes"].as_u64().unwrap();
    let available = s["disk"]["available_bytes"].as_u64().unwrap();
    assert!(needed > available, "{s}");
    assert_eq!(s["disk"]["job"], "harbour.txt");
    assert_eq!(files(&service.spool("inbox")), ["harbour.txt"]);
    assert!(files(&service.spool("failed")).is_empty());
    let shown = run(vivid()
        .arg("--config")
        .arg(tmp.path().join("vivid.toml"))
        .arg("status"));
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("waiting for disk space") && shown.contains("harbour.txt needs"),
        "{shown}"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("vivid_waiting_for_disk 1"), "{prom}");
    assert!(
        prom.contains(&format!("vivid_disk_needed_bytes {needed}")),
        "{prom}"
    );

    // Space again: the job runs by itself.
    std::fs::remove_file(filler).unwrap();
    service.wait_for("the job to finish", || {
        service.spool("done/harbour.wav").exists()
    });
    service.wait_for("the service to be idle", || {
        status(&service)["state"] == "idle"
    });
    assert!(status(&service).get("disk").is_none());
    // The metrics are written just after the status: wait for them too.
    service.wait_for("the metrics after the job", || {
        std::fs::read_to_string(&metrics).is_ok_and(|p| p.contains("vivid_waiting_for_disk 0"))
    });
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("vivid_jobs_total{result=\"done\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("vivid_jobs_total{result=\"failed\"} 0"),
        "{prom}"
    );
}

#[test]
fn a_disk_that_fills_during_a_job_requeues_it_and_it_runs_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&tmp.path().join("spool"), 96);
    let service = Service::start(tmp.path(), &cache_section(tmp.path()));
    // A long text: its speech takes seconds, time to fill the disk under
    // it before the WAV is written.
    drop_in(&service, "long.txt", narration(2500).as_bytes());
    service.wait_for("the job to start", || {
        status(&service)["state"] == "working"
    });
    let filler = disk.fill("filler", 0);
    service.wait_for("the job to go back to the queue", || {
        status(&service)["state"] == "waiting_for_disk"
    });
    assert_eq!(files(&service.spool("inbox")), ["long.txt"]);
    assert!(
        files(&service.spool("processing")).is_empty(),
        "half-written outputs removed"
    );
    assert!(files(&service.spool("failed")).is_empty(), "not failed");
    assert!(
        service.log().contains("the disk is full"),
        "{}",
        service.log()
    );
    std::fs::remove_file(filler).unwrap();
    service.wait_for("the job to finish", || {
        service.spool("done/long.wav").exists() && service.spool("done/long.txt").exists()
    });
    assert!(files(&service.spool("failed")).is_empty());
    assert_eq!(status(&service)["done"], 1);
}

#[test]
fn a_text_too_big_for_the_disk_fails_at_once_and_the_queue_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let _disk = Tmpfs::mount(&tmp.path().join("spool"), 8);
    let service = Service::start(tmp.path(), &cache_section(tmp.path()));
    drop_in(&service, "huge.txt", narration(3500).as_bytes());
    std::thread::sleep(Duration::from_millis(50));
    drop_in(&service, "small.txt", b"Waves on the shore.");
    service.wait_for("both jobs to end", || {
        service.spool("failed/huge.txt.error.txt").exists()
            && service.spool("done/small.wav").exists()
    });
    let reason = std::fs::read_to_string(service.spool("failed/huge.txt.error.txt")).unwrap();
    assert!(
        reason.contains("even when empty") && reason.contains("split the text"),
        "{reason}"
    );
}

/// The default voice with its sampling noise off (its config's
/// `noise_scale` and `noise_w` at 0), the model itself linked.
fn voice_without_noise(dir: &Path) -> PathBuf {
    let models = crate::common::test_models_dir().join("voices");
    let voice = dir.join("voice");
    std::fs::create_dir_all(&voice).unwrap();
    let onnx = voice.join("quiet.onnx");
    std::os::unix::fs::symlink(models.join("en_US-joe-medium.onnx"), &onnx).unwrap();
    let config = std::fs::read_to_string(models.join("en_US-joe-medium.onnx.json")).unwrap();
    let mut config: Value = serde_json::from_str(&config).unwrap();
    config["inference"]["noise_scale"] = 0.0.into();
    config["inference"]["noise_w"] = 0.0.into();
    std::fs::write(voice.join("quiet.onnx.json"), config.to_string()).unwrap();
    onnx
}

#[test]
fn metrics_count_jobs_and_pass_promtool_and_a_missing_folder_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics = tmp.path().join("textfile/vivid.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    // The tiny AudioLDM2 bundle: its backgrounds go through the cache.
    // A voice without sampling noise speaks the same text at the same
    // length, so the second job's background is the first one's.
    let service = Service::start(
        tmp.path(),
        &format!(
            "metrics_file = \"{}\"\n{}[background.audioldm2]\nbundle = \"{}\"\nsteps = 2\n[speech]\nvoice = \"{}\"\n",
            metrics.display(),
            sections(tmp.path(), "engine = \"audioldm2\"\n"),
            crate::common::tiny_bundle().display(),
            voice_without_noise(tmp.path()).display()
        ),
    );
    let hall = b"The great hall echoes with footsteps.";
    drop_in(&service, "hall.txt", hall);
    service.wait_for("the first job", || service.spool("done/hall.wav").exists());
    drop_in(&service, "hall-again.txt", hall);
    drop_in(&service, "broken.txt", b"\xff\xfe not text \xc3\x28");
    service.wait_for("every job to end", || {
        let prom = std::fs::read_to_string(&metrics).unwrap_or_default();
        prom.contains("vivid_jobs_total{result=\"done\"} 2")
            && prom.contains("vivid_jobs_total{result=\"failed\"} 1")
    });
    let prom = std::fs::read_to_string(&metrics).unwrap();
    for needed in [
        "vivid_queue_length 0",
        "vivid_stage_duration_seconds_count{stage=\"speak\"} 2",
        "vivid_stage_duration_seconds_bucket{stage=\"mix\",le=\"+Inf\"} 2",
        "vivid_background_cache_requests_total{result=\"miss\"} 1",
        "vivid_background_cache_requests_total{result=\"hit\"} 1",
        "vivid_playback_underruns_total 0",
        "vivid_model_info{role=\"voice\"",
        "vivid_model_info{role=\"background\"",
    ] {
        assert!(prom.contains(needed), "{needed} in:\n{prom}");
    }
    let end: u64 = prom
        .lines()
        .find_map(|l| l.strip_prefix("vivid_last_job_end_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(end > 1_700_000_000, "{end}");
    let cache_bytes: u64 = prom
        .lines()
        .find_map(|l| l.strip_prefix("vivid_background_cache_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(cache_bytes > 10_000, "one cached background: {cache_bytes}");
    let checked = run(Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap()));
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    drop(service);

    // A folder that does not exist: a warning, and the service works on.
    let other = tempfile::tempdir().unwrap();
    let nowhere = other.path().join("no-such-folder/vivid.prom");
    let extra = format!(
        "metrics_file = \"{}\"\n{}",
        nowhere.display(),
        cache_section(other.path())
    );
    let service = Service::start(other.path(), &extra);
    drop_in(
        &service,
        "hall.txt",
        b"The great hall echoes with footsteps.",
    );
    service.wait_for("the job to finish", || {
        service.spool("done/hall.wav").exists()
    });
    assert!(
        service.log().contains("metrics") && service.log().contains("does not exist"),
        "{}",
        service.log()
    );
    let doctor = run(vivid()
        .arg("--config")
        .arg(other.path().join("vivid.toml"))
        .arg("doctor"));
    let said = text(&doctor.stdout);
    assert!(
        said.lines()
            .any(|l| l.contains("metrics file") && l.contains("does not exist")),
        "{said}"
    );
}

#[test]
fn fleet_examples_pass_ansible_and_promtool() {
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/fleet");
    let checked = run(Command::new("ansible-playbook")
        .arg("--syntax-check")
        .arg("-i")
        .arg(fleet.join("inventory.example.ini"))
        .arg(fleet.join("site.yml")));
    assert!(
        checked.status.success(),
        "ansible-playbook --syntax-check: {}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    let rules = run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(fleet.join("vivid-alerts.yml")));
    assert!(
        rules.status.success(),
        "promtool check rules: {}{}",
        text(&rules.stdout),
        text(&rules.stderr)
    );
    // The alerts fire on the series the service writes, and only then.
    let tested = run(Command::new("promtool")
        .args(["test", "rules"])
        .arg(fleet.join("vivid-alerts.test.yml")));
    assert!(
        tested.status.success(),
        "promtool test rules: {}{}",
        text(&tested.stdout),
        text(&tested.stderr)
    );
}
