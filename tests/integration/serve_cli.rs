//! `vivid serve` as a real process on temporary folders, with the real
//! voice: files dropped into the inbox end in done/ or failed/; bad input
//! never stops the queue; kill -9 loses nothing; SIGHUP with a bad config
//! keeps the old one; SIGTERM stops cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{test_models_dir, vivid};

const NO_PLAYBACK: &str = "[playback]\nenabled = false\n";

pub(crate) struct Service {
    child: Child,
    dir: PathBuf,
}

impl Service {
    pub(crate) fn start(dir: &Path, extra: &str) -> Service {
        Self::start_with_env(dir, extra, &[])
    }

    pub(crate) fn start_with_env(dir: &Path, extra: &str, env: &[(&str, &Path)]) -> Service {
        let config = dir.join("vivid.toml");
        // Each service its own control socket (the default is the
        // machine's /run/vivid), unless the test sets one.
        let control = if extra.contains("[control]") {
            String::new()
        } else {
            format!(
                "\n[control]\nsocket = \"{}\"\n",
                dir.join("control.sock").display()
            )
        };
        std::fs::write(
            &config,
            format!(
                "[paths]\nmodels_dir = \"{}\"\nspool_dir = \"{}\"\n[describe]\nmethod = \"text\"\n\
                 [service]\nmax_input_bytes = 4000\n{extra}{control}",
                test_models_dir().display(),
                dir.join("spool").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let mut cmd = vivid();
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = cmd
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let service = Service {
            child,
            dir: dir.to_path_buf(),
        };
        service.wait_for("the service to start", || {
            service.spool("status.json").exists()
        });
        service
    }

    pub(crate) fn spool(&self, rel: &str) -> PathBuf {
        self.dir.join("spool").join(rel)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    pub(crate) fn wait_for(&self, what: &str, ready: impl Fn() -> bool) {
        let started = Instant::now();
        while !ready() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes a file into the inbox the way a careful copier does: under a
/// temporary name, renamed into place.
pub(crate) fn drop_in(service: &Service, name: &str, bytes: &[u8]) {
    let temp = service.spool(&format!("inbox/.{name}.part"));
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, service.spool(&format!("inbox/{name}"))).unwrap();
}

#[test]
fn jobs_end_in_done_or_failed_with_a_reason_and_the_queue_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(tmp.path(), NO_PLAYBACK);
    let outside = tmp.path().join("secret.txt");
    std::fs::write(&outside, "Not for the inbox.").unwrap();
    let bad: &[(&str, &[u8], &str)] = &[
        ("binary.txt", b"\x00\x01\x02\xff\xfe", "UTF-8"),
        ("latin1.txt", b"caf\xe9 au lait", "UTF-8"),
        ("empty.txt", b"", "empty"),
        ("huge.txt", &[b'a'; 5000], "limit"),
        ("unknown.toml", b"text = \"x\"\nspeed = 2\n", "speed"),
        (
            "escape.toml",
            // From done/, this would land in the test's own folder.
            b"text = \"x\"\noutput = \"../../escaped\"\n",
            "plain name",
        ),
        ("notes.pdf", b"%PDF", ".txt"),
    ];
    for (name, bytes, _) in bad {
        drop_in(&service, name, bytes);
    }
    std::os::unix::fs::symlink(&outside, service.spool("inbox/link.txt")).unwrap();
    drop_in(
        &service,
        "tour.toml",
        b"file = \"tour-text.md\"\nrate = 1.2\noutput = \"tour\"\n",
    );
    drop_in(
        &service,
        "tour-text.md",
        "Welcome to the lighthouse.\r\n".as_bytes(),
    );
    drop_in(
        &service,
        "hall.txt",
        "\u{feff}The great hall was built in 1820.\r\n".as_bytes(),
    );

    service.wait_for("every job to finish", || {
        files(&service.spool("inbox")).is_empty()
            && files(&service.spool("processing")).is_empty()
            && service.spool("done/hall.wav").exists()
            && service.spool("done/tour.wav").exists()
    });
    for (name, _, reason) in bad {
        let error = std::fs::read_to_string(service.spool(&format!("failed/{name}.error.txt")))
            .unwrap_or_else(|e| panic!("{name}: {e}; log:\n{}", service.log()));
        assert!(error.contains(reason), "{name}: {error}");
        assert!(
            service.spool(&format!("failed/{name}")).exists(),
            "{name} kept"
        );
    }
    let link_error = std::fs::read_to_string(service.spool("failed/link.txt.error.txt")).unwrap();
    assert!(link_error.contains("symbolic link"), "{link_error}");
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "Not for the inbox."
    );
    assert!(!tmp.path().join("escaped.wav").exists());
    assert!(!tmp.path().join("escaped.json").exists());
    // Good jobs: WAV, report and input in done/; the job's text file too.
    for name in [
        "hall.wav",
        "hall.json",
        "hall.txt",
        "tour.wav",
        "tour.json",
        "tour.toml",
        "tour-text.md",
    ] {
        assert!(
            service.spool(&format!("done/{name}")).exists(),
            "done/{name}: {:?}",
            files(&service.spool("done"))
        );
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(service.spool("done/tour.json")).unwrap())
            .unwrap();
    assert!(
        (report["speaking_rate"].as_f64().unwrap() - 1.2).abs() < 1e-6,
        "the job's rate"
    );
    // Status, once the last job's outcome is recorded.
    let status = || {
        let out = vivid()
            .arg("--config")
            .arg(tmp.path().join("vivid.toml"))
            .arg("status")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    service.wait_for("the status to show every job", || {
        status().contains("failed: 8")
    });
    let shown = status();
    assert!(
        shown.contains("done: 2") && shown.contains("idle"),
        "{shown}"
    );
    assert!(shown.contains("failed link.txt"), "{shown}");
    // The same name again is not overwritten.
    drop_in(&service, "hall.txt", b"The hall again.");
    service.wait_for("the second hall", || {
        service.spool("done/hall-2.wav").exists()
    });
    assert!(service.spool("done/hall.wav").exists());

    // SIGTERM: a clean stop.
    service.signal(nix::sys::signal::Signal::SIGTERM);
    let mut service = service;
    let exit = service.child.wait().unwrap();
    assert!(exit.success(), "{}", service.log());
}

#[test]
fn kill_9_loses_nothing_and_a_restart_finishes_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "The harbour was quiet that morning. ".repeat(12);
    for round in 0..3 {
        let service = Service::start(tmp.path(), NO_PLAYBACK);
        let name = format!("story{round}.txt");
        drop_in(&service, &name, long.as_bytes());
        // Kill it at a different moment each round: while it waits, just
        // after it claimed the file, in the middle of speaking.
        let delay = [0, 300, 1500][round];
        std::thread::sleep(Duration::from_millis(delay));
        service.signal(nix::sys::signal::Signal::SIGKILL);
        let mut service = service;
        let _ = service.child.wait();
        // Nothing half-written under a final name, the input somewhere.
        for done in files(&service.spool("done")) {
            if let Some(stem) = done.strip_suffix(".wav") {
                assert!(
                    files(&service.spool("done")).contains(&format!("{stem}.json")),
                    "a WAV without its report: {done}"
                );
            }
        }
        let everywhere: Vec<String> = ["inbox", "processing", "done"]
            .iter()
            .flat_map(|d| files(&service.spool(d)))
            .collect();
        assert!(everywhere.contains(&name), "{name} lost: {everywhere:?}");
    }
    // A restart finishes every job.
    let service = Service::start(tmp.path(), NO_PLAYBACK);
    service.wait_for("all three stories", || {
        (0..3).all(|r| service.spool(&format!("done/story{r}.wav")).exists())
            && files(&service.spool("processing")).is_empty()
    });
    for r in 0..3 {
        assert!(service.spool(&format!("done/story{r}.json")).exists());
        assert!(service.spool(&format!("done/story{r}.txt")).exists());
    }
}

#[test]
fn without_its_models_the_service_waits_and_narrates_once_they_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    // A fresh install: the voice is not there yet.
    let voices = tmp.path().join("voices");
    let voice = voices.join("en_US-joe-medium.onnx");
    let service = Service::start(
        tmp.path(),
        &format!("[speech]\nvoice = \"{}\"\n{NO_PLAYBACK}", voice.display()),
    );
    let status_json = || {
        std::fs::read_to_string(service.spool("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .unwrap_or_default()
    };
    service.wait_for("the wait for models", || {
        status_json()["state"] == "waiting_for_models"
    });
    assert!(
        service.log().contains("models fetch") && service.log().contains("en_US-joe-medium"),
        "{}",
        service.log()
    );
    drop_in(&service, "hello.txt", b"Hello.");
    let shown = crate::common::run(
        vivid()
            .arg("--config")
            .arg(tmp.path().join("vivid.toml"))
            .arg("status"),
    );
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("waiting for models") && shown.contains("vivid models fetch"),
        "{shown}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(service.spool("inbox/hello.txt").exists(), "the text waits");
    assert!(
        std::fs::read_dir(service.spool("failed"))
            .unwrap()
            .next()
            .is_none()
    );
    // The models arrive; a reload (or the next retry) picks them up.
    std::fs::create_dir_all(&voices).unwrap();
    for file in ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"] {
        std::os::unix::fs::symlink(
            test_models_dir().join("voices").join(file),
            voices.join(file),
        )
        .unwrap();
    }
    service.signal(nix::sys::signal::Signal::SIGHUP);
    service.wait_for("the waiting text", || {
        service.spool("done/hello.wav").exists()
    });
    assert!(status_json().get("models").is_none(), "{}", status_json());
}

#[test]
fn a_bad_config_on_reload_keeps_the_old_one_running() {
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(tmp.path(), NO_PLAYBACK);
    let config = tmp.path().join("vivid.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\n[speech]\nrate = 99\n")).unwrap();
    service.signal(nix::sys::signal::Signal::SIGHUP);
    service.wait_for("the reload to be refused", || {
        service.log().contains("old one runs on")
    });
    assert!(service.log().contains("speech.rate"), "{}", service.log());
    drop_in(&service, "after.txt", b"Still here.");
    service.wait_for("a job after the bad reload", || {
        service.spool("done/after.wav").exists()
    });
}

fn exposure(unit: &Path) -> (f64, String) {
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (package systemd, installed by deploy/deps.sh)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let level: f64 = report
        .lines()
        .find_map(|l| l.split("exposure level for vivid.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    (level, report)
}

#[test]
fn the_unit_is_hardened_and_the_installer_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (level, report) = exposure(&root.join("deploy/vivid.service"));
    assert!(level <= 1.0, "exposure {level}:\n{report}");
    let unit = std::fs::read_to_string(root.join("deploy/vivid.service")).unwrap();
    // With the triggers' drop-in (its [Service] lines added to the unit's),
    // still at most 1.0, and no more devices than input and GPIO.
    let dropin = crate::common::run(vivid().args(["triggers", "--dropin"]));
    let dropin = String::from_utf8_lossy(&dropin.stdout).into_owned();
    assert!(dropin.contains("DeviceAllow=char-input r\n"), "{dropin}");
    assert!(
        dropin.contains("DeviceAllow=char-gpiochip rw\n"),
        "{dropin}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let merged = tmp.path().join("vivid.service");
    let service_lines = dropin.split("[Service]\n").nth(1).unwrap_or_default();
    std::fs::write(
        &merged,
        unit.replace("[Install]", &format!("{service_lines}\n[Install]")),
    )
    .unwrap();
    let (with_triggers, report) = exposure(&merged);
    assert!(
        with_triggers <= 1.0,
        "exposure with triggers {with_triggers}:\n{report}"
    );
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&merged)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(!complaints.contains("Unknown"), "{complaints}");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "SupplementaryGroups=audio",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/spool/vivid",
        "ProtectHome=true",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
        "RestrictAddressFamilies=AF_UNIX",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(root.join("deploy/install.sh"))
        .status()
        .unwrap();
    assert!(syntax.success());
}

#[test]
fn a_flood_of_files_and_odd_names_are_all_handled() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(tmp.path(), NO_PLAYBACK);
    // 1000 files at once (not narratable: each fails fast with a reason).
    for i in 0..1000 {
        std::fs::write(service.spool(&format!("inbox/flood{i:04}.dat")), b"x").unwrap();
    }
    // A name that is not UTF-8, and one with spaces and quotes.
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9 \"menu\".txt");
    std::fs::write(service.spool("inbox").join(odd), b"Coffee and cake.").unwrap();
    service.wait_for("the flood to drain", || {
        files(&service.spool("inbox")).is_empty() && files(&service.spool("processing")).is_empty()
    });
    let failed = files(&service.spool("failed"));
    assert_eq!(
        failed
            .iter()
            .filter(|n| n.ends_with(".dat.error.txt"))
            .count(),
        1000
    );
    let done = files(&service.spool("done"));
    assert!(
        done.iter()
            .any(|n| n.starts_with("caf") && n.ends_with(".wav")),
        "{done:?}"
    );
    // Memory stayed bounded (no per-file buildup).
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.child.id())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(peak_kb < 1_500_000, "peak {peak_kb} kB");
}

#[test]
fn kiosk_mode_plays_the_finished_narrations_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("played.raw");
    let conf = crate::common::asound_conf(tmp.path(), "vividtest", &raw);
    let service = Service::start_with_env(
        tmp.path(),
        "kiosk_interval_s = 1\n[playback]\ndevice = \"vividtest\"\n",
        &[("ALSA_CONFIG_PATH", &conf)],
    );
    drop_in(&service, "hello.txt", b"Hello.");
    service.wait_for("the narration", || service.spool("done/hello.wav").exists());
    let wav_bytes = std::fs::metadata(service.spool("done/hello.wav"))
        .unwrap()
        .len();
    // Played once for the job, then again and again by the kiosk loop.
    service.wait_for("three plays", || {
        std::fs::metadata(&raw).is_ok_and(|m| m.len() >= 3 * (wav_bytes - 44))
    });
}

#[test]
fn a_job_past_its_time_bound_is_failed_and_the_next_one_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(tmp.path(), &format!("job_timeout_s = 3\n{NO_PLAYBACK}"));
    let long = "The keeper climbed the stairs of the lighthouse and trimmed the wick. ".repeat(40);
    drop_in(&service, "long.txt", long.as_bytes());
    service.wait_for("the long job to fail", || {
        service.spool("failed/long.txt.error.txt").exists()
    });
    let error = std::fs::read_to_string(service.spool("failed/long.txt.error.txt")).unwrap();
    assert!(error.contains("job_timeout_s"), "{error}");
    assert!(service.spool("failed/long.txt").exists());
    drop_in(&service, "short.txt", b"Hi.");
    service.wait_for("the next job", || service.spool("done/short.wav").exists());
}

#[test]
fn a_file_still_being_written_waits_until_it_is_closed() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(tmp.path(), NO_PLAYBACK);
    let path = service.spool("inbox/slow.txt");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"The first half of the text, ").unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(path.exists(), "taken while still open for writing");
    file.write_all(b"and the second half.").unwrap();
    drop(file);
    // The input is moved to done/ last, after its WAV and report.
    service.wait_for("the closed file", || {
        service.spool("done/slow.txt").exists()
    });
    assert_eq!(
        std::fs::read_to_string(service.spool("done/slow.txt")).unwrap(),
        "The first half of the text, and the second half."
    );
    // A hard link to a file outside the inbox is refused.
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "Elsewhere.").unwrap();
    std::fs::hard_link(&outside, service.spool("inbox/hard.txt")).unwrap();
    service.wait_for("the hard link to fail", || {
        service.spool("failed/hard.txt.error.txt").exists()
    });
    let error = std::fs::read_to_string(service.spool("failed/hard.txt.error.txt")).unwrap();
    assert!(error.contains("hard links"), "{error}");
}

#[test]
fn systemd_hears_ready_status_and_watchdog() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_path = tmp.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let service = Service::start_with_env(
        tmp.path(),
        NO_PLAYBACK,
        &[
            ("NOTIFY_SOCKET", &socket_path),
            ("WATCHDOG_USEC", Path::new("600000")),
        ],
    );
    drop_in(&service, "one.txt", b"One.");
    let mut heard = String::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(60)
        && !(heard.contains("READY=1")
            && heard.contains("WATCHDOG=1")
            && heard.contains("waiting; one.txt: "))
    {
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push_str(&String::from_utf8_lossy(&buf[..n]));
            heard.push('\n');
        }
    }
    assert!(heard.contains("READY=1"), "{heard}");
    assert!(heard.contains("WATCHDOG=1"), "{heard}");
    assert!(heard.contains("waiting; one.txt: "), "{heard}");
}
