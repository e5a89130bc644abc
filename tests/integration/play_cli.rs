//! `vivid play` through the real ALSA library, on a PCM defined in a test
//! config: the `file` plugin over the `null` device writes the samples
//! that came out, which the test compares with the WAV.

use std::path::Path;

use crate::common::{run, text, vivid, write_config};

fn asound_conf(dir: &Path, raw: &Path) -> std::path::PathBuf {
    crate::common::asound_conf(dir, "vividtest", raw)
}

fn write_tone(path: &Path, rate: u32, seconds: f32) -> Vec<i16> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let samples: Vec<i16> = (0..(rate as f32 * seconds) as usize)
        .map(|i| (12_000.0 * (i as f32 * 0.05).sin()) as i16)
        .collect();
    for s in &samples {
        writer.write_sample(*s).unwrap();
    }
    writer.finalize().unwrap();
    samples
}

fn raw_samples(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
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
    let played = raw_samples(&raw);
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
    let halved = raw_samples(&raw);
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
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&second, spec).unwrap();
    for _ in 0..4_800 {
        writer.write_sample(1000i16).unwrap();
    }
    writer.finalize().unwrap();
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
    let played = raw_samples(&raw);
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
    // both channels. (The null device takes any rate, so a device with a
    // fixed rate cannot be modelled here; that path resamples, as the
    // queue test's second file does.)
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
