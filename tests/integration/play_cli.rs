//! `vivid play` through the real ALSA library, on PCMs defined in a test
//! config: the `file` plugin over the `null` device writes the samples
//! that came out, which the test compares with the WAV; PulseAudio and
//! JACK servers (`sound_server`) play in real time, so stalls, a server
//! that goes away and a device with one fixed rate are real too.

use std::path::Path;
use std::time::Duration;

use crate::common::{read_raw_i16, run, text, vivid, write_config, write_wav_i16};
use crate::sound_server::{Jack, Pulse, Watched};

fn asound_conf(dir: &Path, raw: &Path) -> std::path::PathBuf {
    crate::common::asound_conf(dir, "vividtest", raw)
}

fn write_tone(path: &Path, rate: u32, seconds: f32) -> Vec<i16> {
    let samples: Vec<i16> = (0..(rate as f32 * seconds) as usize)
        .map(|i| (12_000.0 * (i as f32 * 0.05).sin()) as i16)
        .collect();
    write_wav_i16(path, rate, 1, &samples);
    samples
}

#[test]
fn the_samples_reach_the_device_unchanged_and_volume_scales_them() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("out.raw");
    let conf = asound_conf(tmp.path(), &raw);
    let wav = tmp.path().join("tone.wav");
    let samples = write_tone(&wav, 48_000, 1.0);
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "vividtest"])
        .arg(&wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let played = read_raw_i16(&raw);
    assert_eq!(played.len(), samples.len());
    let differing = played.iter().zip(&samples).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "bit-exact at the device's rate");

    // Half volume: every sample halved (within the 16-bit rounding).
    std::fs::remove_file(&raw).unwrap();
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "vividtest", "--volume", "0.5"])
        .arg(&wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let halved = read_raw_i16(&raw);
    assert_eq!(halved.len(), samples.len());
    let off = halved
        .iter()
        .zip(&samples)
        .filter(|(h, s)| (i32::from(**h) - i32::from(**s) / 2).abs() > 1)
        .count();
    assert_eq!(off, 0, "samples not halved");
}

#[test]
fn a_missing_device_is_a_clear_error_after_retrying() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("out.raw");
    let conf = asound_conf(tmp.path(), &raw);
    let wav = tmp.path().join("tone.wav");
    write_tone(&wav, 16_000, 0.2);
    let cfg = write_config(tmp.path(), "[playback]\nreopen_s = 1\n");
    let started = std::time::Instant::now();
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .arg("--config")
        .arg(&cfg)
        .args(["play", "--device", "unplugged_usb_speaker"])
        .arg(&wav));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unplugged_usb_speaker"), "{stderr}");
    assert!(stderr.contains("aplay -L"), "{stderr}");
    assert!(started.elapsed().as_secs_f32() < 10.0);
    // An unreadable file names the file.
    std::fs::write(&wav, b"not a wav").unwrap();
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "vividtest"])
        .arg(&wav));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("tone.wav"));
}

#[test]
fn the_play_queue_plays_files_in_order_and_goes_on_after_a_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("out.raw");
    let conf = asound_conf(tmp.path(), &raw);
    let first = tmp.path().join("first.wav");
    let second = tmp.path().join("second.wav");
    let broken = tmp.path().join("broken.wav");
    let a = write_tone(&first, 48_000, 0.3);
    std::fs::write(&broken, b"RIFF nothing").unwrap();
    // A second file at another rate is resampled to the open device's.
    write_wav_i16(&second, 48_000, 1, &[1000; 4_800]);
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "vividtest"])
        .arg(&first)
        .arg(&broken)
        .arg(&second));
    // The bad file fails (exit 1, named), the others play in order.
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("broken.wav"),
        "{}",
        text(&out.stderr)
    );
    let played = read_raw_i16(&raw);
    assert_eq!(played.len(), a.len() + 4_800, "both good files, whole");
    assert_eq!(played[..a.len()], a[..]);
    assert!(played[a.len()..].iter().all(|&s| s == 1000));
}

#[test]
fn a_device_that_fails_while_playing_is_reopened() {
    // The file plugin writing to /dev/full fails its writes the way a
    // device that went away does: vivid closes it, waits, reopens it and
    // carries on from where it was, or gives up after playback.reopen_s
    // with an error naming the device.
    let tmp = tempfile::tempdir().unwrap();
    let conf = crate::common::asound_conf(tmp.path(), "vividfull", Path::new("/dev/full"));
    let wav = tmp.path().join("tone.wav");
    write_tone(&wav, 48_000, 0.5);
    let cfg = write_config(tmp.path(), "[playback]\nreopen_s = 2\n");
    let started = std::time::Instant::now();
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .arg("--config")
        .arg(&cfg)
        .args(["play", "--device", "vividfull"])
        .arg(&wav));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("sound device failed"), "{stderr}");
    assert!(stderr.contains("reopening"), "{stderr}");
    assert!(
        stderr.matches("sound device open").count() >= 2,
        "reopened: {stderr}"
    );
    if !out.status.success() {
        assert!(
            stderr.contains("vividfull") && stderr.contains("did not come back"),
            "{stderr}"
        );
    }
    assert!(started.elapsed().as_secs_f32() < 15.0);
}

#[test]
fn a_device_that_takes_only_float_stereo_gets_float_stereo() {
    // `narrow` accepts exactly two channels (the `multi` plugin's
    // bindings) of float samples only (`lfloat` turns them into S32 for
    // the file plugin), like a USB DAC with a fixed layout. vivid must
    // choose FLOAT over its preferred S16 and copy the mono narration to
    // both channels. (A device with a fixed rate is the JACK test below.)
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("out.raw");
    let conf = tmp.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.narrow {{\n  type multi\n  slaves.a {{ pcm \"floatonly\" channels 2 }}\n  \
             bindings.0 {{ slave a channel 0 }}\n  bindings.1 {{ slave a channel 1 }}\n}}\n\
             pcm.floatonly {{\n  type lfloat\n  slave {{ pcm \"tap\" format S32_LE }}\n}}\n\
             pcm.tap {{\n  type file\n  slave.pcm {{ type null }}\n  file \"{}\"\n  format \"raw\"\n}}\n",
            raw.display()
        ),
    )
    .unwrap();
    let wav = tmp.path().join("tone.wav");
    let samples = write_tone(&wav, 48_000, 0.5);
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "narrow"])
        .arg(&wav));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("channels=2") && stderr.contains("F32"),
        "negotiated: {stderr}"
    );
    let frames: Vec<[i32; 2]> = std::fs::read(&raw)
        .unwrap()
        .chunks_exact(8)
        .map(|b| {
            [
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            ]
        })
        .collect();
    assert_eq!(frames.len(), samples.len());
    for (frame, &sample) in frames.iter().zip(&samples) {
        assert_eq!(frame[0], frame[1], "both channels carry the narration");
        let value = f64::from(frame[0]) / 2_147_483_648.0;
        assert!(
            (value - f64::from(sample) / 32_768.0).abs() < 1e-6,
            "{value} for {sample}"
        );
    }
}

/// One stretch of sound in a recording: where its samples start in the
/// played file, and how many there are.
#[derive(Debug)]
struct Stretch {
    file_offset: usize,
    len: usize,
}

/// Splits a recording at runs of at least 10 ms of exact silence and finds
/// each stretch of sound in `played`, asserting that it is a sample-exact
/// copy of one part of it (the sound server mixes a single stream at full
/// volume without changing a sample).
fn stretches(recorded: &[i16], played: &[i16]) -> Vec<Stretch> {
    const GAP: usize = 480;
    let mut found = Vec::new();
    let mut i = 0;
    while i < recorded.len() {
        if recorded[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut zeros = 0;
        while i < recorded.len() && zeros < GAP {
            zeros = if recorded[i] == 0 { zeros + 1 } else { 0 };
            i += 1;
        }
        let end = i - zeros;
        let sound = &recorded[start..end];
        let head = &sound[..sound.len().min(64)];
        let file_offset = played
            .windows(head.len())
            .position(|w| w == head)
            .unwrap_or_else(|| panic!("sound at {start} is not from the played file"));
        assert!(
            played.len() >= file_offset + sound.len()
                && played[file_offset..file_offset + sound.len()] == *sound,
            "sound at {start} ({} samples) differs from the file at {file_offset}",
            sound.len()
        );
        found.push(Stretch {
            file_offset,
            len: sound.len(),
        });
    }
    found
}

#[test]
fn playback_that_stalls_longer_than_the_buffer_resumes_and_loses_nothing() {
    // A busy CPU can stop the player for longer than the device's 200 ms
    // buffer: the device runs dry. Here the player is stopped (SIGSTOP)
    // for 1.5 s in the middle of a 3 s tone on a server that plays in real
    // time. Afterwards playback must go on from where it was: every sample
    // of the file reaches the device once, in order, with the silence of
    // the stall in between.
    let _quiet = crate::common::llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (pulse, conf, wav, samples) = pulse_and_tone(tmp.path(), "realtime", 3.0);
    let raw = tmp.path().join("heard.raw");
    let recorder = pulse.record(&raw);

    let mut player = Watched::spawn(
        vivid()
            .env("ALSA_CONFIG_PATH", &conf)
            .args(["play", "--device", "realtime"])
            .arg(&wav),
    );
    player.wait_for("sound device open", Duration::from_secs(30));
    wait_for_sound(&raw, 24_000);
    player.signal("STOP");
    std::thread::sleep(Duration::from_millis(1500));
    player.signal("CONT");
    let (ok, log) = player.finish(Duration::from_secs(30));
    assert!(ok, "{log}");
    std::thread::sleep(Duration::from_millis(300));
    drop(recorder);

    let heard = read_raw_i16(&raw);
    let found = stretches(&heard, &samples);
    eprintln!(
        "stretches heard: {found:?}; underruns reported to vivid: {}",
        log.matches("underrun").count()
    );
    for pair in found.windows(2) {
        assert!(
            pair[1].file_offset >= pair[0].file_offset + pair[0].len,
            "played out of order or twice: {found:?}"
        );
    }
    assert!(
        found.len() >= 2,
        "no silence mid-file: the stall did not run the device dry ({found:?})"
    );
    // From the first sound heard to the end. PulseAudio's plugin drops
    // what was written between the underrun and its report to vivid (it
    // makes a new stream to recover; 1 to 20 ms in trials); a player that
    // lost its buffer on recovery would lose 200 ms, one that restarted
    // the file would fail the order check above.
    let heard_len: usize = found.iter().map(|s| s.len).sum();
    let lost = samples.len() - found[0].file_offset - heard_len;
    assert!(
        lost <= 4_800,
        "{lost} samples after the first one heard never reached the device ({found:?})"
    );
    assert_the_end_was_heard(&found, samples.len());
}

#[test]
fn a_sound_server_that_goes_away_mid_play_is_reopened_and_playback_goes_on() {
    // The server is killed once 1 s of a 4 s tone has been heard, as a USB
    // speaker is pulled out, and comes back 1.5 s later. The player keeps retrying
    // (playback.reopen_s), reopens it and plays the rest of the file from
    // where it was, not from the start, and exits successfully.
    let _quiet = crate::common::llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (mut pulse, conf, wav, samples) = pulse_and_tone(tmp.path(), "usbspeaker", 4.0);
    let cfg = write_config(tmp.path(), "[playback]\nreopen_s = 20\n");

    let mut player = Watched::spawn(
        vivid()
            .env("ALSA_CONFIG_PATH", &conf)
            .arg("--config")
            .arg(&cfg)
            .args(["play", "--device", "usbspeaker"])
            .arg(&wav),
    );
    player.wait_for("sound device open", Duration::from_secs(30));
    let before = tmp.path().join("before.raw");
    let recorder = pulse.record(&before);
    wait_for_sound(&before, 48_000);
    pulse.kill();
    drop(recorder);
    player.wait_for("sound device failed", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    pulse.restart();
    let after = tmp.path().join("after.raw");
    let recorder = pulse.record(&after);
    let (ok, log) = player.finish(Duration::from_secs(40));
    assert!(ok, "{log}");
    assert!(log.contains("cannot open sound device"), "{log}");
    assert!(
        log.matches("sound device open").count() >= 2,
        "reopened: {log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    drop(recorder);

    let heard_before = stretches(&read_raw_i16(&before), &samples);
    let last_before = heard_before.last().expect("sound before the server died");
    let stopped_at = last_before.file_offset + last_before.len;
    let heard_after = stretches(&read_raw_i16(&after), &samples);
    let resumed_at = heard_after
        .first()
        .expect("the rest of the file was heard")
        .file_offset;
    // What the dead server held (its 200 ms buffer and its own latency) is
    // lost with it; the rest plays from there. A restart from the top
    // would resume before `stopped_at`.
    assert!(
        resumed_at >= stopped_at && resumed_at <= stopped_at + 48_000,
        "stopped at sample {stopped_at}, resumed at {resumed_at}"
    );
    assert_the_end_was_heard(&heard_after, samples.len());
}

/// A private PulseAudio server in `dir`, an ALSA config with a PCM `pcm`
/// on it, and a 48 kHz tone of `seconds` to play there.
fn pulse_and_tone(
    dir: &Path,
    pcm: &str,
    seconds: f32,
) -> (Pulse, std::path::PathBuf, std::path::PathBuf, Vec<i16>) {
    let pulse = Pulse::start(dir);
    let conf = dir.join("asound.conf");
    std::fs::write(&conf, pulse.pcm(pcm)).unwrap();
    let wav = dir.join("tone.wav");
    let samples = write_tone(&wav, 48_000, seconds);
    (pulse, conf, wav, samples)
}

fn assert_the_end_was_heard(found: &[Stretch], file_len: usize) {
    let last = found.last().expect("sound was heard");
    assert_eq!(
        last.file_offset + last.len,
        file_len,
        "the end was heard: {found:?}"
    );
}

/// Waits until a recording holds `samples` of sound (nonzero samples).
fn wait_for_sound(raw: &Path, samples: usize) {
    let heard = || read_raw_i16(raw).iter().filter(|s| **s != 0).count();
    crate::sound_server::wait_until(
        Duration::from_secs(30),
        || heard() >= samples,
        || {
            format!(
                "only {} samples of sound reached the device in 30 s",
                heard()
            )
        },
    );
}

#[test]
fn a_device_with_one_fixed_rate_gets_the_audio_resampled_to_it() {
    // A JACK server at 44.1 kHz takes exactly that rate, two channels and
    // float samples, like many USB interfaces. A 48 kHz file must be
    // resampled, not played at the wrong speed: its tone keeps its pitch
    // and length, in both channels.
    let _quiet = crate::common::llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let jack = Jack::start(tmp.path(), 44_100);
    let heard = tmp.path().join("heard.wav");
    let mut recorder = jack.record(&heard, 4);
    let conf = tmp.path().join("asound.conf");
    std::fs::write(&conf, jack.pcm("fixedrate")).unwrap();
    let wav = tmp.path().join("tone.wav");
    write_tone(&wav, 48_000, 1.0);
    let mut cmd = vivid();
    jack.env(&mut cmd);
    let out = run(cmd
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "fixedrate"])
        .arg(&wav));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rate=44100") && stderr.contains("channels=2") && stderr.contains("F32"),
        "negotiated: {stderr}"
    );
    recorder.wait_for_exit(Duration::from_secs(20));

    let recorded = crate::common::read_wav(&heard);
    assert_eq!(recorded.rate, 44_100);
    assert_eq!(recorded.channels, 2);
    let frames = recorded.as_i16();
    let (left, right): (Vec<i16>, Vec<i16>) = frames.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
    assert_eq!(left, right, "both channels carry the narration");
    let loud: Vec<usize> = (0..left.len())
        .filter(|&i| left[i].unsigned_abs() > 2_000)
        .collect();
    let (first, last) = (
        *loud.first().expect("the tone was heard"),
        *loud.last().unwrap(),
    );
    let seconds = (last - first) as f64 / 44_100.0;
    assert!((seconds - 1.0).abs() < 0.01, "tone lasted {seconds:.3} s");
    // The tone advances 0.05 rad per 48 kHz sample: 382.0 Hz. Played
    // unresampled it would be 351 Hz.
    let crossings = left[first..last]
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let hz = crossings as f64 / 2.0 / seconds;
    let expected = 0.05 * 48_000.0 / std::f64::consts::TAU;
    assert!(
        (hz / expected - 1.0).abs() < 0.005,
        "pitch {hz:.1} Hz, not {expected:.1}"
    );
    let peak = left.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!((11_500..=12_500).contains(&peak), "level: peak {peak}");
}

#[test]
fn a_stereo_narration_on_a_mono_device_is_mixed_down() {
    // `single` accepts exactly one channel (a `multi` with one binding),
    // like a small speaker on a kiosk: vivid opens it mono and plays the
    // average of left and right, not the left alone.
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("out.raw");
    let conf = tmp.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.single {{\n  type multi\n  slaves.a {{ pcm \"tap\" channels 1 }}\n  \
             bindings.0 {{ slave a channel 0 }}\n}}\n\
             pcm.tap {{\n  type file\n  slave.pcm {{ type null }}\n  file \"{}\"\n  format \"raw\"\n}}\n",
            raw.display()
        ),
    )
    .unwrap();
    let wav = tmp.path().join("stereo.wav");
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for i in 0..24_000 {
        let t = i as f64 / 48_000.0;
        let left = (0.4 * (std::f64::consts::TAU * 440.0 * t).sin() * 32767.0) as i16;
        let right = (0.2 * (std::f64::consts::TAU * 660.0 * t).sin() * 32767.0) as i16;
        frames.extend([left, right]);
        expected.push((f64::from(left) + f64::from(right)) / 2.0);
    }
    write_wav_i16(&wav, 48_000, 2, &frames);
    let out = run(vivid()
        .env("ALSA_CONFIG_PATH", &conf)
        .args(["play", "--device", "single"])
        .arg(&wav));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("channels=1"), "negotiated: {stderr}");
    let played = read_raw_i16(&raw);
    assert_eq!(played.len(), expected.len());
    for (p, e) in played.iter().zip(&expected) {
        assert!((f64::from(*p) - e).abs() <= 1.0, "{p} for {e}");
    }
}
