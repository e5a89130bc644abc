//! `vivid speak` end to end, and every kind of bad input it must refuse
//! with a clear error naming the file, without writing an output.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

fn default_voice() -> PathBuf {
    test_models_dir().join("voices/en_US-joe-medium.onnx")
}

fn speak(input: &Path, output: &Path, voice: &Path) -> std::process::Output {
    run(vivid()
        .arg("speak")
        .arg(input)
        .arg("-o")
        .arg(output)
        .arg("--voice")
        .arg(voice))
}

fn wav_seconds_and_peak(path: &Path) -> (f64, i16) {
    let wav = read_wav(path);
    assert_eq!((wav.channels, wav.rate, wav.bits), (1, 22050, 16));
    let samples = wav.as_i16();
    let peak = samples
        .iter()
        .map(|s| s.saturating_abs())
        .max()
        .unwrap_or(0);
    (samples.len() as f64 / 22050.0, peak)
}

#[test]
fn the_same_seed_gives_the_same_speech_and_another_seed_other_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("label.txt");
    fs::write(&input, "The lighthouse was built in 1872.").unwrap();
    let spoken = |name: &str, seed: &str| {
        let output = tmp.path().join(name);
        let out = run(vivid()
            .arg("speak")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .arg("--voice")
            .arg(default_voice())
            .args(["--seed", seed]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        read_wav(&output).as_i16()
    };
    let first = spoken("a.wav", "1");
    assert_eq!(
        first,
        spoken("b.wav", "1"),
        "the same seed, the same samples"
    );
    let other = spoken("c.wav", "2");
    // Another draw of the noise: other durations or other samples, but the
    // same sentence (a length within a quarter).
    assert_ne!(first, other, "another seed, another draw of the noise");
    let ratio = other.len() as f64 / first.len() as f64;
    assert!((0.75..1.33).contains(&ratio), "length ratio {ratio}");
}

#[test]
fn speaks_a_text_file_and_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("label.txt");
    fs::write(
        &input,
        "\u{feff}Welcome to the harbour museum.\r\nThe lighthouse was built in 1872.\r\n",
    )
    .unwrap();
    let output = tmp.path().join("out/label.wav");
    let out = speak(&input, &output, &default_voice());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (seconds, peak) = wav_seconds_and_peak(&output);
    assert!((3.0..10.0).contains(&seconds), "{seconds} s");
    assert!(peak > 30000, "normalized speech, peak {peak}");
    assert!(
        text(&out.stderr).contains("2 sentences"),
        "{}",
        text(&out.stderr)
    );

    let output = tmp.path().join("stdin.wav");
    let mut child = vivid()
        .args(["speak", "-", "-o"])
        .arg(&output)
        .arg("--voice")
        .arg(default_voice())
        .arg("--rate")
        .arg("2.0")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Welcome to the harbour museum.\nThe lighthouse was built in 1872.\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (fast, _) = wav_seconds_and_peak(&output);
    assert!(
        fast < seconds * 0.75,
        "rate 2 is faster: {fast} vs {seconds}"
    );
}

fn assert_refused(out: &std::process::Output, output: &Path, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
    assert!(!output.exists(), "no output on failure");
    if let Some(dir) = output.parent() {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".partial"), "leftover {name}");
        }
    }
}

#[test]
fn bad_texts_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("out.wav");
    let cases: [(&str, &[u8], &[&str]); 4] = [
        ("empty.txt", b"", &["empty.txt", "empty"]),
        ("blank.txt", b"  \n\t\n", &["blank.txt", "empty"]),
        (
            "latin1.txt",
            b"Caf\xe9 du port",
            &["latin1.txt", "not UTF-8", "offset 3"],
        ),
        (
            "symbols.txt",
            "\u{2014} \u{2026} ( ) [ ] ...".as_bytes(),
            &["symbols.txt", "nothing to speak"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let input = tmp.path().join(name);
        fs::write(&input, bytes).unwrap();
        let out = speak(&input, &output, &default_voice());
        assert_refused(&out, &output, needles);
    }
    let out = speak(&tmp.path().join("absent.txt"), &output, &default_voice());
    assert_refused(&out, &output, &["absent.txt", "No such file"]);
}

#[test]
fn bad_voices_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    fs::write(&input, "Hello there.").unwrap();
    let output = tmp.path().join("out.wav");
    let good_json = fs::read_to_string(format!("{}.json", default_voice().display())).unwrap();
    let good_onnx = fs::read(default_voice()).unwrap();

    let voice = |name: &str, onnx: Option<&[u8]>, json: Option<&str>| {
        let path = tmp.path().join(name);
        if let Some(onnx) = onnx {
            fs::write(&path, onnx).unwrap();
        }
        if let Some(json) = json {
            fs::write(format!("{}.json", path.display()), json).unwrap();
        }
        path
    };

    // Model file missing, truncated, not ONNX at all.
    let path = voice("missing.onnx", None, Some(&good_json));
    assert_refused(&speak(&input, &output, &path), &output, &["missing.onnx"]);
    let path = voice(
        "truncated.onnx",
        Some(&good_onnx[..1 << 20]),
        Some(&good_json),
    );
    assert_refused(
        &speak(&input, &output, &path),
        &output,
        &["truncated.onnx", "not a readable ONNX model"],
    );
    let path = voice("text.onnx", Some(b"this is not a model"), Some(&good_json));
    assert_refused(&speak(&input, &output, &path), &output, &["text.onnx"]);

    // Config missing, not JSON, missing fields, wrong symbol count.
    let path = voice("noconfig.onnx", Some(&good_onnx), None);
    assert_refused(
        &speak(&input, &output, &path),
        &output,
        &["noconfig.onnx.json"],
    );
    let path = voice("garbled.onnx", Some(&good_onnx), Some("{ not json"));
    assert_refused(
        &speak(&input, &output, &path),
        &output,
        &["garbled.onnx.json"],
    );
    let mut config: serde_json::Value = serde_json::from_str(&good_json).unwrap();
    config.as_object_mut().unwrap().remove("phoneme_id_map");
    let path = voice("nomap.onnx", Some(&good_onnx), Some(&config.to_string()));
    assert_refused(
        &speak(&input, &output, &path),
        &output,
        &["nomap.onnx.json", "phoneme_id_map"],
    );
    let mut config: serde_json::Value = serde_json::from_str(&good_json).unwrap();
    config["num_symbols"] = serde_json::json!(300);
    let path = voice("symbols.onnx", Some(&good_onnx), Some(&config.to_string()));
    assert_refused(
        &speak(&input, &output, &path),
        &output,
        &["symbols.onnx.json", "num_symbols is 300", "256"],
    );
}
