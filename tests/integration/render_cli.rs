//! `vivid render` end to end on the real default models (describer and
//! voice) with the tiny AudioLDM2 bundle named explicitly (it is never a
//! default), measured on the WAV it writes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{
    Wav, assert_png, llm_lock, read_wav, run, test_models_dir, text, tiny_bundle, vivid,
    write_config,
};

const NARRATION: &str = "The harbour was quiet that morning. Fog lay over the water and the \
fishing boats waited at their moorings, ropes creaking as the tide turned.\n\nLater, in the \
market square, traders called out their prices and a church bell rang twice. Children ran \
between the stalls while the smell of fresh bread drifted from the bakery.\n";

fn config(dir: &Path, extra: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[paths]\nmodels_dir = \"{}\"\noutput_dir = \"{}\"\n[describe]\nmin_scene_chars = 50\n\
             [background]\ncache_dir = \"{}\"\n{extra}",
            test_models_dir().display(),
            dir.join("out").display(),
            dir.join("cache").display()
        ),
    )
}

/// Measured on the file: the loudness target (-16 LUFS), the true-peak
/// ceiling (-1 dBTP) and, from the report, the speech 15 LU over the
/// background while it speaks.
fn assert_mix_targets(audio: &Wav, report: &Value) {
    let (rate, channels) = (audio.rate, usize::from(audio.channels));
    let integrated = vivid::mix::loudness::integrated(&audio.samples, rate, channels).unwrap();
    assert!((integrated + 16.0).abs() <= 0.5, "{integrated} LUFS");
    let peak = vivid::mix::loudness::true_peak_db(&audio.samples, rate, channels).unwrap();
    assert!(peak <= -1.0 + 0.05, "{peak} dBTP");
    let difference = report["mix"]["speech_over_background_lu"].as_f64().unwrap();
    assert!((difference - 15.0).abs() <= 1.5, "{difference} LU");
}

fn report(wav: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(wav.with_extension("json")).unwrap()).unwrap()
}

#[test]
fn render_meets_its_loudness_targets_with_a_background_per_scene() {
    let _llm = llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("harbour.txt");
    std::fs::write(&input, NARRATION).unwrap();
    let cfg = config(tmp.path(), "[speech]\nseed = 7\n");
    let png = tmp.path().join("mix.png");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .arg("render")
        .arg(&input)
        .arg("--bundle")
        .arg(tiny_bundle())
        .arg("--plot")
        .arg(&png));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The picture of the mix: a 1600 x 600 PNG.
    assert_png(&png, 1600, 600, 20_000);
    // Default output: the input's name in paths.output_dir.
    let wav = tmp.path().join("out/harbour.wav");
    let audio = read_wav(&wav);
    let (rate, channels, samples) = (audio.rate, usize::from(audio.channels), &audio.samples);
    assert_eq!(rate, 48_000);
    assert_eq!(
        channels, 2,
        "stereo by default; AudioLDM2's mono clips in the centre"
    );
    assert_eq!(audio.channel(0), audio.channel(1));
    let r = report(&wav);
    assert_eq!(r["speech_seed"], 7, "the voice's seed is recorded");

    // Two paragraphs: two scenes, each with its own background, the second
    // starting where its first sentence is spoken.
    let scenes = r["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 2, "{r:#}");
    assert!(
        scenes[1]["starts_at_s"].as_f64().unwrap()
            > scenes[0]["starts_at_s"].as_f64().unwrap() + 3.0
    );
    for scene in scenes {
        assert!(!scene["caption"].as_str().unwrap().is_empty());
        assert!(scene["background_seconds"].as_f64().unwrap() > 2.0);
    }

    assert_mix_targets(&audio, &r);
    // Length: pre-roll + speech + tail, within one 1024-sample buffer.
    let expected = (r["mix"]["pre_roll_s"].as_f64().unwrap()
        + r["mix"]["speech_s"].as_f64().unwrap()
        + r["mix"]["tail_s"].as_f64().unwrap())
        * 48_000.0;
    assert!((audio.frames() as f64 - expected).abs() <= 1024.0);
    assert!((r["mix"]["pre_roll_s"].as_f64().unwrap() - 1.5).abs() < 1e-3);
    // The pre-roll is background alone: not silent.
    let pre_roll_rms = (samples[..96_000].iter().map(|v| v * v).sum::<f32>() / 96_000.0).sqrt();
    assert!(pre_roll_rms > 1e-4, "background in the pre-roll");

    // The report names the input, the models and the background settings.
    assert_eq!(
        r["input"]["bytes"].as_u64().unwrap(),
        NARRATION.len() as u64
    );
    assert_eq!(r["input"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(r["voice"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(r["background"]["engine"], "audioldm2");
    assert_eq!(r["background"]["scheduler"], "dpm");
    assert_eq!(r["scenes"][0]["background"]["engine"], "audioldm2");
    for stage in ["describe", "speak", "background", "mix", "write"] {
        assert!(r["seconds"][stage].as_f64().unwrap() >= 0.0);
    }
}

/// The README's example text, as the first command narrates it.
fn example_text() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/welcome.txt")
}

#[test]
fn by_default_the_narration_plays_over_a_soundscape_at_its_level() {
    let _llm = llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let wav = tmp.path().join("welcome.wav");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .arg("render")
        .arg(example_text())
        .arg("-o")
        .arg(&wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("soundscape"), "{stderr}");
    let r = report(&wav);
    assert_eq!(r["background"]["engine"], "soundscape", "{r:#}");
    assert!(
        r["background_note"]
            .as_str()
            .unwrap()
            .contains("no AudioLDM2 bundle"),
        "{r:#}"
    );
    // Every scene has a plan with sources from the catalog (or the
    // place's bed, said so), recorded in the report.
    for scene in r["scenes"].as_array().unwrap() {
        let plan = &scene["background"];
        assert_eq!(plan["engine"], "soundscape", "{scene:#}");
        let layers = plan["layers"].as_array().unwrap();
        assert!(!layers.is_empty(), "{scene:#}");
        for layer in layers {
            let id = layer["source"].as_str().unwrap();
            assert!(
                vivid::background::soundscape::catalog::Catalog::builtin()
                    .source(id)
                    .is_some(),
                "{id}"
            );
        }
        assert!(
            layers.iter().any(|l| l["role"] == "source") || plan["note"].is_string(),
            "{scene:#}"
        );
        // Catalog mode (the default with the soundscape): the describer's
        // choice is recorded, and what it chose is what plays.
        let choice = &scene["choice"];
        let chosen: Vec<&str> = choice["sources"]
            .as_array()
            .unwrap_or_else(|| panic!("a catalog choice: {scene:#}"))
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        let played: Vec<&str> = layers
            .iter()
            .filter(|l| l["role"] == "source")
            .map(|l| l["source"].as_str().unwrap())
            .collect();
        assert_eq!(played, chosen, "{scene:#}");
        assert_eq!(choice["bed_only"].as_bool(), Some(chosen.is_empty()));
    }
    let audio = read_wav(&wav);
    assert_eq!((audio.rate, audio.channels), (48_000, 2));
    assert_mix_targets(&audio, &r);
    // The pre-roll is the soundscape alone, in stereo: sound, and the two
    // channels differ.
    let pre_roll = 48_000;
    let (left, right) = (&audio.channel(0)[..pre_roll], &audio.channel(1)[..pre_roll]);
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    assert!(
        rms(left) > 1e-3 && rms(right) > 1e-3,
        "soundscape in the pre-roll"
    );
    assert!(
        left.iter().zip(right).any(|(l, r)| (l - r).abs() > 1e-3),
        "stereo"
    );
}

#[test]
fn mono_output_and_an_explicit_engine_without_its_bundle() {
    let _llm = llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("note.txt");
    std::fs::write(&input, "Welcome to the lighthouse. Mind the steps.\n").unwrap();
    let wav = tmp.path().join("note.wav");
    let cfg = config(tmp.path(), "[mix]\nchannels = 1\n");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .arg("render")
        .arg(&input)
        .arg("-o")
        .arg(&wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let audio = read_wav(&wav);
    assert_eq!(audio.channels, 1);
    let integrated = vivid::mix::loudness::integrated(&audio.samples, audio.rate, 1).unwrap();
    assert!((integrated + 16.0).abs() <= 0.5, "{integrated} LUFS");
    // AudioLDM2 asked for by name, with no bundle: an error that says
    // where it looked and how to make one; nothing written.
    let cfg = config(tmp.path(), "engine = \"audioldm2\"\n");
    let wav = tmp.path().join("none.wav");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .arg("render")
        .arg(&input)
        .arg("-o")
        .arg(&wav));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no AudioLDM2 bundle") && stderr.contains("quantize/export.py"),
        "{stderr}"
    );
    assert!(!wav.exists());
    // `vivid doctor` says the same before any job runs.
    let out = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("background") && l.contains("AudioLDM2"))
        .unwrap_or_else(|| panic!("no background line: {stdout}"));
    assert!(
        line.contains("FAIL") && line.contains("no AudioLDM2 bundle"),
        "{line}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_input_fails_naming_the_file_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let input = tmp.path().join("broken.txt");
    std::fs::write(&input, b"\xff\xfe\x00bad bytes\xc3").unwrap();
    let wav = tmp.path().join("broken.wav");
    let fails_naming = |input: &Path, extra: &[&std::ffi::OsStr], named: &str| {
        let out = run(vivid()
            .arg("--config")
            .arg(&cfg)
            .arg("render")
            .arg(input)
            .args(extra)
            .arg("-o")
            .arg(&wav));
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(stderr.contains(named), "{stderr}");
    };
    fails_naming(&input, &[], "broken.txt");
    assert!(!wav.exists() && !wav.with_extension("json").exists());
    // A damaged bundle is an error naming the damaged file, not a silent
    // narration without background.
    let copy = crate::common::copy_of_tiny_bundle(tmp.path());
    std::fs::write(copy.join("unet.onnx"), b"garbage").unwrap();
    let good = tmp.path().join("good.txt");
    std::fs::write(&good, "The tide is out.\n").unwrap();
    let _llm = llm_lock();
    fails_naming(&good, &["--bundle".as_ref(), copy.as_os_str()], "unet.onnx");
    assert!(!wav.exists());
}

#[test]
fn render_play_sends_the_narration_to_the_sound_device() {
    let _llm = llm_lock();
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("played.raw");
    let conf = crate::common::asound_conf(tmp.path(), "vividtest", &raw);
    let input = tmp.path().join("short.txt");
    std::fs::write(&input, "The museum opens at nine.\n").unwrap();
    let render_and_play = |playback: &str, wav: &Path| {
        let cfg = config(tmp.path(), playback);
        run(vivid()
            .env("ALSA_CONFIG_PATH", &conf)
            .arg("--config")
            .arg(&cfg)
            .arg("render")
            .arg(&input)
            .arg("-o")
            .arg(wav)
            .arg("--play"))
    };
    let wav = tmp.path().join("short.wav");
    let out = render_and_play("[playback]\ndevice = \"vividtest\"\n", &wav);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let played = crate::common::read_raw_i16(&raw);
    let written = crate::common::read_wav(&wav).as_i16();
    assert_eq!(played.len(), written.len());
    assert!(played.iter().zip(&written).all(|(a, b)| a == b));

    // A missing device does not fail the render: the WAV is there.
    let wav = tmp.path().join("again.wav");
    let out = render_and_play("[playback]\ndevice = \"gone\"\nreopen_s = 1\n", &wav);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("could not be played"));
    assert!(wav.exists());
}
