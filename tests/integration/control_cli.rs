//! The control socket and triggers through the real service: narrations
//! in done/ played by name, stepped through and stopped on a real-time
//! sound server (PulseAudio's null sink, recorded), an interrupt that is
//! heard to fade, malformed requests answered without harm, the socket's
//! mode keeping out users outside its group, and trigger devices that
//! are not there warned about, not failed on.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::common::{run, text, vivid};
use crate::serve_cli::Service;
use crate::sound_server::{Pulse, wait_until};

const RATE: u32 = 48_000;
/// Samples per analysis window (10 ms).
const WINDOW: usize = 480;

/// A 16-bit mono tone of `hz` at half scale.
fn write_tone(path: &Path, hz: f32, seconds: f32) {
    let samples: Vec<i16> = (0..(seconds * RATE as f32) as usize)
        .map(|i| {
            let phase = std::f32::consts::TAU * hz * i as f32 / RATE as f32;
            (phase.sin() * 16_384.0) as i16
        })
        .collect();
    crate::common::write_wav_i16(path, RATE, 1, &samples);
}

/// Per 10 ms window: RMS and the frequency from zero crossings.
fn windows(raw: &Path) -> Vec<(f32, f32)> {
    let samples: Vec<f32> = crate::common::read_raw_i16(raw)
        .into_iter()
        .map(f32::from)
        .collect();
    samples
        .chunks_exact(WINDOW)
        .map(|w| {
            let rms = (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt();
            let crossings = w
                .windows(2)
                .filter(|p| (p[0] < 0.0) != (p[1] < 0.0))
                .count();
            (rms, crossings as f32 / 2.0 / (WINDOW as f32 / RATE as f32))
        })
        .collect()
}

/// Which tone a window holds, if any.
fn tone_of((rms, hz): (f32, f32)) -> Option<u32> {
    [440, 660, 880]
        .into_iter()
        .find(|t| rms > 500.0 && (hz - *t as f32).abs() < *t as f32 * 0.06)
}

/// Runs `vivid control --socket SOCKET ARGS`.
fn control(socket: &Path, args: &[&str]) -> std::process::Output {
    run(vivid()
        .arg("control")
        .arg("--socket")
        .arg(socket)
        .args(args))
}

fn ask(stream: &mut UnixStream, line: &[u8]) -> serde_json::Value {
    stream.write_all(line).unwrap();
    let mut answer = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut answer)
        .unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

#[test]
fn the_control_socket_plays_steps_fades_and_stops() {
    let _quiet = crate::common::llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let pulse = Pulse::start(tmp.path());
    let conf = tmp.path().join("asound.conf");
    std::fs::write(&conf, pulse.pcm("speaker")).unwrap();
    let socket = tmp.path().join("run/control.sock");
    let service = Service::start_with_env(
        tmp.path(),
        &format!(
            "[playback]\ndevice = \"speaker\"\n[control]\nsocket = \"{}\"\nfade_s = 0.3\n",
            socket.display()
        ),
        &[("ALSA_CONFIG_PATH", &conf)],
    );
    for (name, hz) in [("a", 440.0), ("b", 660.0), ("c", 880.0)] {
        write_tone(&service.spool(&format!("done/{name}.wav")), hz, 3.0);
    }
    wait_until(
        Duration::from_secs(20),
        || socket.exists(),
        || "no control socket".into(),
    );
    let raw = tmp.path().join("heard.raw");
    let recorder = pulse.record(&raw);

    let out = control(&socket, &["play", "a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("playing"),
        "{}",
        text(&out.stdout)
    );
    // A second of a heard before anything else is asked.
    let heard_samples = || {
        crate::common::read_raw_i16(&raw)
            .iter()
            .filter(|s| **s != 0)
            .count()
    };
    wait_until(
        Duration::from_secs(30),
        || heard_samples() >= RATE as usize,
        || format!("only {} samples heard", heard_samples()),
    );
    // A new request fades a out and plays b; next goes on to c.
    assert!(control(&socket, &["play", "b.wav"]).status.success());
    std::thread::sleep(Duration::from_millis(1200));
    let status = control(&socket, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["playing"], "b", "{status}");
    assert!(control(&socket, &["next"]).status.success());
    std::thread::sleep(Duration::from_millis(1200));
    assert!(control(&socket, &["stop"]).status.success());
    std::thread::sleep(Duration::from_millis(1000));
    drop(recorder);

    // What was heard: a, then b, then c, each cut short, then silence.
    let heard = windows(&raw);
    let tones: Vec<Option<u32>> = heard.iter().map(|w| tone_of(*w)).collect();
    let mut runs: Vec<(u32, usize, usize)> = Vec::new(); // tone, first, count
    for (i, tone) in tones.iter().enumerate() {
        let Some(tone) = tone else { continue };
        match runs.last_mut() {
            Some((t, _, count)) if t == tone => *count += 1,
            _ => runs.push((*tone, i, 1)),
        }
    }
    let order: Vec<u32> = runs.iter().filter(|r| r.2 > 10).map(|r| r.0).collect();
    assert_eq!(order, vec![440, 660, 880], "{runs:?}");
    for (tone, _, count) in runs.iter().filter(|r| r.2 > 10) {
        assert!(
            *count < 250,
            "{tone} Hz played {count} windows: not interrupted"
        );
    }
    let tail = &heard[heard.len().saturating_sub(30)..];
    assert!(
        tail.iter().all(|(rms, _)| *rms < 300.0),
        "silence after stop: {tail:?}"
    );

    // The interrupt faded: before b begins, a's level falls through the
    // 300 ms fade (an abrupt cut has no window in between).
    let b_starts = runs
        .iter()
        .find(|r| r.0 == 660 && r.2 > 10)
        .map(|r| r.1)
        .unwrap();
    assert!(b_starts > 80, "{runs:?}");
    let steady = heard[b_starts - 80].0;
    // The windows of a (by their pitch: the one where b begins is mixed).
    // The window just before b's first is where b begins: left out.
    let before: Vec<f32> = heard[b_starts - 60..b_starts - 1]
        .iter()
        .filter(|(_, hz)| (hz - 440.0).abs() < 440.0 * 0.06)
        .map(|w| w.0)
        .collect();
    let fading: Vec<f32> = before
        .iter()
        .copied()
        .filter(|rms| *rms > 0.1 * steady && *rms < 0.9 * steady)
        .collect();
    // 300 ms are 30 windows, 24 of them between 10 % and 90 %; the
    // monitor loses some (CI recorded 17), a cut leaves at most one.
    assert!(
        fading.len() >= 10,
        "a fade of 300 ms, not a cut: {before:?}"
    );
    // Up to its quietest window the level falls steadily. The sound
    // server's monitor (what is recorded) may drop a window or repeat one
    // where b's stream joins, so at most two windows after the quietest
    // are left out; a fade that starts over, or a cut, still fails.
    let quietest = fading
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    assert!(
        fading.len() - 1 - quietest <= 2,
        "the fade ends where b begins: {fading:?}"
    );
    assert!(
        fading[quietest] < 0.3 * steady,
        "the fade falls near silence: {fading:?}"
    );
    assert!(
        fading[..=quietest].windows(2).all(|p| p[1] <= p[0] * 1.05),
        "the level falls steadily: {fading:?}"
    );

    // The status file tells the last trigger.
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(service.spool("status.json")).unwrap())
            .unwrap();
    assert_eq!(
        status["control"]["last_trigger"]["action"], "stop",
        "{status}"
    );
    assert_eq!(
        status["control"]["last_trigger"]["source"], "socket",
        "{status}"
    );

    // Bad requests: an error answer each, and the connection still serves.
    let mut stream = UnixStream::connect(&socket).unwrap();
    let answer = ask(&mut stream, b"dance\n");
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown request"),
        "{answer}"
    );
    let answer = ask(&mut stream, b"{\"command\": \"play\"\n");
    assert_eq!(answer["ok"], false, "{answer}");
    let answer = ask(&mut stream, b"\xff\xfe\n");
    assert!(
        answer["error"].as_str().unwrap().contains("UTF-8"),
        "{answer}"
    );
    assert_eq!(ask(&mut stream, b"status\n")["ok"], true);
    let answer = ask(&mut stream, &[b'x'; 5000]);
    assert!(
        answer["error"].as_str().unwrap().contains("longer than"),
        "{answer}"
    );
    // A name not in done/, and one reaching outside it.
    for name in ["nosuch", "../inbox/x"] {
        let out = control(&socket, &["play", name]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("narration"),
            "{}",
            text(&out.stderr)
        );
    }
    // The service is still there and answers.
    assert!(
        control(&socket, &["status"]).status.success(),
        "{}",
        service.log()
    );
    assert_socket_mode_keeps_out_other_users(tmp.path(), &socket);
}

/// The socket is 0660: a user outside its group is refused by the kernel,
/// the same user with the group is let in.
fn assert_socket_mode_keeps_out_other_users(dir: &Path, socket: &Path) {
    let mode = std::fs::metadata(socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    // A copy of the binary any user can run, in folders any user can
    // enter: only the socket's own mode decides.
    let binary = dir.join("vivid-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_vivid"), &binary).unwrap();
    for path in [dir, socket.parent().unwrap()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_user = |group: Option<&str>| {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "nobody"]);
        if let Some(group) = group {
            cmd.args(["-g", group]);
        }
        cmd.arg("--")
            .arg(&binary)
            .args(["control", "--socket"])
            .arg(socket)
            .arg("status")
            .env_remove("VIVID_CONFIG")
            .env("XDG_DATA_HOME", "/nonexistent");
        run(&mut cmd)
    };
    let outside = as_user(None);
    assert!(!outside.status.success());
    assert!(
        text(&outside.stderr).contains("vivid group"),
        "{}",
        text(&outside.stderr)
    );
    // The service runs as root here, so the socket's group is root's.
    let inside = as_user(Some("root"));
    assert!(inside.status.success(), "{}", text(&inside.stderr));
}

#[test]
fn trigger_devices_that_are_not_there_are_warned_about_not_failed_on() {
    let tmp = tempfile::tempdir().unwrap();
    let triggers = "[[trigger]]\nname = \"desk button\"\ndevice = \"usb-Nobody_Button-event-kbd\"\nkey = \"KEY_ENTER\"\nplay = \"welcome\"\n\n\
                    [[trigger]]\nname = \"visitor sensor\"\nchip = \"gpiochip9\"\nline = 4\nmin_interval_s = 120\nplay = \"welcome\"\n";
    let socket = tmp.path().join("control.sock");
    let service = Service::start(
        tmp.path(),
        &format!(
            "[playback]\nenabled = false\n[control]\nsocket = \"{}\"\n{triggers}",
            socket.display()
        ),
    );
    let config = tmp.path().join("vivid.toml");
    let doctor = run(vivid().arg("--config").arg(&config).arg("doctor"));
    let report = text(&doctor.stdout);
    for needle in [
        "WARN  trigger `desk button`",
        "/dev/input/by-id/usb-Nobody_Button-event-kbd is not there",
        "WARN  trigger `visitor sensor`",
        "/dev/gpiochip9 is not there",
    ] {
        assert!(report.contains(needle), "{needle} in:\n{report}");
    }
    assert!(report.contains("vivid.toml, line "), "{report}");
    let listed = run(vivid().arg("--config").arg(&config).arg("triggers"));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains("missing desk button"),
        "{}",
        text(&listed.stdout)
    );
    // The service runs on, says which trigger waits for its device, and
    // refuses play requests clearly while playback is off.
    service.wait_for("the triggers' states", || {
        std::fs::read_to_string(service.spool("status.json")).is_ok_and(|s| {
            s.contains("missing (plug it in") && s.contains("gpiochip9 is not there")
        })
    });
    let out = control(&socket, &["play", "welcome"]);
    assert!(
        text(&out.stderr).contains("playback.enabled"),
        "{}",
        text(&out.stderr)
    );
    let shown = run(vivid().arg("--config").arg(&config).arg("status"));
    assert!(
        text(&shown.stdout).contains("trigger desk button"),
        "{}",
        text(&shown.stdout)
    );
}
