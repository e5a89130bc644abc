//! `vivid background` on the tiny random-weight bundle: lengths, the cache,
//! seeded determinism across processes, initial latents, bad input.

use std::path::{Path, PathBuf};

use crate::common::{read_wav, run, text, tiny_bundle, vivid, write_config};

fn reference(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audioldm2/reference")
        .join(case)
}

/// Runs `vivid background CAPTION --seconds S [extra] -o OUT` with the tiny
/// bundle and the cache in `dir`; returns the output and stderr.
fn generate(dir: &Path, seconds: &str, extra: &[&str], out: &Path) -> (bool, String) {
    let result = run(background_cmd(dir)
        .args(["rain on a tin roof", "--seconds", seconds])
        .args(extra)
        .arg("-o")
        .arg(out));
    (result.status.success(), text(&result.stderr))
}

/// `vivid background` with the background cache in `dir` and the tiny
/// bundle.
fn background_cmd(dir: &Path) -> std::process::Command {
    let mut cmd = background_cmd_without_bundle(dir);
    cmd.arg("--bundle").arg(tiny_bundle());
    cmd
}

fn background_cmd_without_bundle(dir: &Path) -> std::process::Command {
    let config = write_config(
        dir,
        &format!(
            "[background]\ncache_dir = \"{}\"\n",
            dir.join("cache").display()
        ),
    );
    let mut cmd = vivid();
    cmd.arg("--config").arg(config).arg("background");
    cmd
}

#[test]
fn lengths_cache_and_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bg.wav");
    // 3.5 s from 1.28 s clips: two variations laid out with crossfades.
    let (ok, stderr) = generate(tmp.path(), "3.5", &["--seed", "5"], &out);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("random weights"),
        "the test bundle is named as such"
    );
    let wav = read_wav(&out);
    assert_eq!((wav.rate, wav.channels), (16_000, 1), "AudioLDM2 is mono");
    let samples = wav.samples;
    assert_eq!(samples.len(), 56_000);
    assert!(samples.iter().any(|s| s.abs() > 1e-3), "not silent");
    let cached: Vec<_> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cached.len(), 2, "one WAV and its description: {cached:?}");

    // The same request again comes from the cache, with the same samples.
    let again = tmp.path().join("again.wav");
    let (ok, stderr) = generate(tmp.path(), "3.5", &["--seed", "5"], &again);
    assert!(ok && stderr.contains("from the cache"), "{stderr}");
    assert_eq!(read_wav(&again).samples, samples);

    // Without the cache, a new process generates exactly the same audio.
    let fresh = tmp.path().join("fresh.wav");
    let (ok, stderr) = generate(tmp.path(), "3.5", &["--seed", "5", "--no-cache"], &fresh);
    assert!(ok && !stderr.contains("from the cache"), "{stderr}");
    assert_eq!(read_wav(&fresh).samples, samples);

    // A shorter one is one clip, cut. (Seeds barely change what the
    // random-weight bundle makes; that they change it at all is checked on
    // the engine's f32 output in background_engine.)
    let other = tmp.path().join("other.wav");
    let (ok, stderr) = generate(tmp.path(), "0.5", &["--seed", "6"], &other);
    assert!(ok, "{stderr}");
    assert_eq!(read_wav(&other).samples.len(), 8_000);
}

#[test]
fn initial_latents_reproduce_diffusers_waveform() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bg.wav");
    let case = reference("dpm_negative");
    let result = run(background_cmd(tmp.path())
        .args([
            "Rain falls on a tin roof while thunder rumbles in the distance",
            "--negative",
            "low quality",
            "--seconds",
            "1.28",
            "--steps",
            "5",
            "--scheduler",
            "dpm",
            "--guidance",
            "3.5",
            "--init-latents",
        ])
        .arg(case.join("latents_init.npy"))
        .arg("--record")
        .arg(tmp.path().join("record"))
        .arg("-o")
        .arg(&out));
    assert!(result.status.success(), "{}", text(&result.stderr));
    // --record writes the intermediates under diffusers' names.
    let npy = |path: PathBuf| -> Vec<f32> {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
    };
    for name in ["latents_final_scaled", "mel", "eps_04", "t5_states_1"] {
        let file = format!("{name}.npy");
        let c = crate::common::compare(
            &npy(tmp.path().join("record").join(&file)),
            &npy(case.join(&file)),
        );
        assert!(
            c.relative_diff() <= 1e-4,
            "recorded {name}: {:.2e} of peak",
            c.relative_diff()
        );
    }
    let ours = read_wav(&out).samples;
    let bytes = std::fs::read(case.join("waveform.npy")).unwrap();
    let theirs: Vec<f32> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
    // The WAV's 16 bits are the only difference left (the engine itself is
    // checked to 1e-4 of peak in background_engine).
    let theirs: Vec<f32> = theirs.iter().map(|s| s.clamp(-1.0, 1.0)).collect();
    let c = crate::common::compare(&ours, &theirs);
    assert!(
        c.max_abs_diff <= 2.0 / 32767.0 + 1e-4 * c.reference_peak,
        "{}",
        c.max_abs_diff
    );
    assert!(c.correlation > 0.9999, "{}", c.correlation);
    // Runs from given latents are not cached (the key cannot hold them).
    assert!(
        !tmp.path().join("cache").exists()
            || std::fs::read_dir(tmp.path().join("cache")).unwrap().count() == 0
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bg.wav");
    let fails = |args: &[&str], expected: &str| {
        let result = run(background_cmd(tmp.path()).args(args).arg("-o").arg(&out));
        let stderr = text(&result.stderr);
        assert!(!result.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    fails(&["rain", "--seconds", "0"], "above 0");
    fails(&["rain", "--seconds=-3"], "above 0");
    fails(&["rain", "--seconds", "99999"], "background.max_seconds");
    fails(&["", "--seconds", "1"], "caption is empty");
    fails(&["rain", "--seconds", "1", "--steps", "0"], "steps");
    let wrong = tmp.path().join("wrong.npy");
    std::fs::copy(reference("dpm_plain").join("mel.npy"), &wrong).unwrap();
    fails(
        &[
            "rain",
            "--seconds",
            "1",
            "--init-latents",
            wrong.to_str().unwrap(),
        ],
        "wrong.npy",
    );
    assert!(!out.exists(), "no output from a failed run");

    // A damaged bundle names the damaged file.
    let copy = crate::common::copy_of_tiny_bundle(tmp.path());
    std::fs::write(copy.join("vocoder.onnx"), b"not a graph").unwrap();
    let result = run(background_cmd_without_bundle(tmp.path())
        .args(["rain", "--seconds", "1", "--bundle"])
        .arg(&copy)
        .arg("-o")
        .arg(&out));
    let stderr = text(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("vocoder.onnx"), "{stderr}");
    // No bundle at all: the error says how to make one.
    let result = run(background_cmd_without_bundle(tmp.path())
        .args(["rain", "--seconds", "1", "--bundle"])
        .arg(tmp.path().join("none"))
        .arg("-o")
        .arg(&out));
    let stderr = text(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("quantize/export.py"), "{stderr}");
}

#[test]
fn bench_compare_finds_no_parting_node_between_cpu_preparations() {
    // `vivid bench compare` on the CPU: tract's own ops against vivid's
    // (tap-sum convolutions), node by node, on recorded latents.
    let compare = |input: &str| {
        run(vivid()
            .args([
                "bench",
                "compare",
                "--graph",
                "vae_decoder",
                "--device",
                "cpu",
            ])
            .arg("--bundle")
            .arg(tiny_bundle())
            .arg("--input")
            .arg(reference("dpm_negative").join(input)))
    };
    let result = compare("latents_final_scaled.npy");
    let stdout = text(&result.stdout);
    assert!(result.status.success(), "{stdout}{}", text(&result.stderr));
    assert!(
        stdout.contains("as vivid runs it: finite output"),
        "{stdout}"
    );
    let compared: usize = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" nodes compared, every output kept (tract CPU / cpu):"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(compared > 100, "{stdout}");
    assert!(
        stdout.contains("first node off by more than the tolerance or not finite: none"),
        "{stdout}"
    );
    // Latents of the wrong shape are refused with the file named.
    let result = compare("eps_00.npy");
    assert!(!result.status.success());
    assert!(
        text(&result.stderr).contains("eps_00.npy"),
        "{}",
        text(&result.stderr)
    );
}

/// `vivid background --engine soundscape` with the cache in `dir`.
fn soundscape(dir: &Path, caption: &str, extra: &[&str], out: &Path) -> std::process::Output {
    run(background_cmd_without_bundle(dir)
        .arg(caption)
        .args(["--engine", "soundscape"])
        .args(extra)
        .arg("-o")
        .arg(out))
}

#[test]
fn the_soundscape_writes_seeded_stereo_and_draws_its_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a.wav"),
        tmp.path().join("b.wav"),
        tmp.path().join("c.wav"),
    );
    let png = tmp.path().join("a.png");
    let caption = "Waves crash on the shore while gulls call";
    let out = soundscape(
        tmp.path(),
        caption,
        &[
            "--seconds",
            "6",
            "--seed",
            "3",
            "--level",
            "busy",
            "--plot",
            png.to_str().unwrap(),
        ],
        &a,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The plan is printed: the place and the sources the caption names.
    for word in ["coast", "sea-surf", "seagulls", "busy"] {
        assert!(stderr.contains(word), "{word}: {stderr}");
    }
    let wav = read_wav(&a);
    assert_eq!((wav.rate, wav.channels), (48_000, 2));
    assert_eq!(wav.frames(), 6 * 48_000);
    assert_ne!(wav.channel(0), wav.channel(1), "stereo");
    // Same seed in another process: the same file; another seed: not.
    assert!(
        soundscape(
            tmp.path(),
            caption,
            &["--seconds", "6", "--seed", "3", "--level", "busy"],
            &b
        )
        .status
        .success()
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(
        soundscape(
            tmp.path(),
            caption,
            &["--seconds", "6", "--seed", "4", "--level", "busy"],
            &c
        )
        .status
        .success()
    );
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    // The picture: 1600 x 900, spectrogram and a row per layer.
    crate::common::assert_png(&png, 1600, 900, 20_000);
    // A caption with nothing the catalog knows still plays the place's
    // bed, and says so.
    let out = soundscape(
        tmp.path(),
        "a feeling of deep gratitude",
        &["--seconds", "2", "--place", "church"],
        &c,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("church") && stderr.contains("plays alone"),
        "{stderr}"
    );
    let bed = read_wav(&c);
    assert!(bed.samples.iter().any(|v| v.abs() > 1e-3), "not silence");
}

#[test]
fn the_soundscape_refuses_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.wav");
    let fails = |args: &[&str], expected: &[&str]| {
        let result = soundscape(tmp.path(), "rain", args, &out);
        let stderr = text(&result.stderr);
        assert!(!result.status.success(), "{args:?} succeeded");
        for word in expected {
            assert!(stderr.contains(word), "{args:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists());
    };
    fails(&["--seconds", "0"], &["above 0"]);
    fails(&["--seconds=-2"], &["above 0"]);
    fails(&["--seconds", "99999"], &["background.max_seconds"]);
    fails(
        &["--seconds", "2", "--place", "the moon"],
        &["the moon", "harbour", "church", "cave"],
    );
    fails(
        &["--seconds", "2", "--level", "loud"],
        &["loud", "quiet", "moderate", "busy"],
    );
    // The catalog: listed, as JSON, one entry, and an unknown id.
    let listed = run(vivid().arg("sounds"));
    let stdout = text(&listed.stdout);
    assert!(listed.status.success());
    assert!(
        stdout.contains("church-bell") && stdout.contains("ship-deck"),
        "{stdout}"
    );
    let json = run(vivid().args(["sounds", "--json"]));
    let catalog: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(catalog["sources"].as_array().unwrap().len() >= 32);
    let one = run(vivid().args(["sounds", "crickets"]));
    assert!(one.status.success() && text(&one.stdout).contains("carrier_hz"));
    let unknown = run(vivid().args(["sounds", "unicorns"]));
    assert!(!unknown.status.success());
    let stderr = text(&unknown.stderr);
    assert!(
        stderr.contains("unicorns") && stderr.contains("crickets"),
        "{stderr}"
    );
}
