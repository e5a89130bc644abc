//! The foundation end to end: config discovery and errors, model fetching
//! and verification on the real default models, and `vivid doctor`.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::*;

#[test]
fn version_and_help() {
    let out = run(vivid().arg("--version"));
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("vivid "));
    let out = run(vivid().arg("--help"));
    let help = text(&out.stdout);
    for cmd in ["models", "doctor", "--config", "--verbose", "--quiet"] {
        assert!(help.contains(cmd), "help mentions {cmd}: {help}");
    }
}

#[test]
fn config_is_found_by_flag_then_env() {
    let tmp = tempfile::tempdir().unwrap();
    let by_env = tmp.path().join("env");
    let by_flag = tmp.path().join("flag");
    fs::create_dir_all(&by_env).unwrap();
    fs::create_dir_all(&by_flag).unwrap();
    let env_cfg = write_config(&by_env, "[paths]\nmodels_dir = \"/srv/env-models\"\n");
    let flag_cfg = write_config(&by_flag, "[paths]\nmodels_dir = \"relative-models\"\n");

    let out = run(vivid()
        .env("VIVID_CONFIG", &env_cfg)
        .args(["models", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("models folder: /srv/env-models"));

    let out = run(vivid()
        .env("VIVID_CONFIG", &env_cfg)
        .arg("--config")
        .arg(&flag_cfg)
        .args(["models", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = format!(
        "models folder: {}",
        by_flag.join("relative-models").display()
    );
    assert!(
        text(&out.stdout).contains(&expected),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_configs_are_rejected_with_file_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "[playback]\nenabled = true\ndevise = \"hw:0\"\n",
            &["line 3", "playback.devise", "device"],
        ),
        (
            "[log]\nlevel = \"loud\"\n",
            &["line 2", "log.level", "debug"],
        ),
        (
            "[system]\nmin_free_disk_mb = \"lots\"\n",
            &["line 2", "system.min_free_disk_mb"],
        ),
        ("[paths\nmodels_dir = \"x\"\n", &["line 1"]),
        (
            "[paths]\nmodels_dir = \"a\"\nmodels_dir = \"b\"\n",
            &["line 3"],
        ),
    ];
    for (body, needles) in cases {
        let cfg = write_config(tmp.path(), body);
        let out = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {err}");
        assert!(
            err.contains(&cfg.display().to_string()),
            "names the file: {err}"
        );
        for needle in needles {
            assert!(err.contains(needle), "{body}: expected {needle:?} in {err}");
        }
    }

    // Not text at all, and a file that is not there.
    let cfg = tmp.path().join("vivid.toml");
    fs::write(&cfg, b"[paths]\nmodels_dir = \"\xff\xfe\"\n").unwrap();
    let out = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
    assert!(
        text(&out.stderr).contains("not valid UTF-8"),
        "{}",
        text(&out.stderr)
    );
    let missing = tmp.path().join("absent.toml");
    let out = run(vivid().env("VIVID_CONFIG", &missing).arg("doctor"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&missing.display().to_string()));
}

#[test]
fn example_config_is_complete_and_valid() {
    // deploy/vivid.toml documents every key with its default value, so
    // loading it must give the same settings as no file at all (apart from
    // the service paths it sets).
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/vivid.toml");
    let file =
        vivid::config::read_config_file(std::path::Path::new(example)).expect("example parses");
    let defaults = vivid::config::ConfigFile::default();
    assert_eq!(file.playback, defaults.playback);
    assert_eq!(
        vivid::config::SpeechSection {
            voice: None,
            ..file.speech.clone()
        },
        defaults.speech
    );
    assert_eq!(
        vivid::config::DescribeSection {
            model: None,
            embedder: None,
            ..file.describe.clone()
        },
        defaults.describe
    );
    let mut background = file.background.clone();
    background.cache_dir = None;
    background.audioldm2.bundle = None;
    assert_eq!(background, defaults.background);
    assert_eq!(file.mix, defaults.mix);
    assert_eq!(file.service, defaults.service);
    assert_eq!(
        vivid::config::ControlSection {
            socket: None,
            ..file.control.clone()
        },
        defaults.control
    );
    assert!(
        file.triggers.is_empty(),
        "the example's triggers are comments"
    );
    assert_eq!(file.system, defaults.system);
    assert_eq!(file.log, defaults.log);
    let text = fs::read_to_string(example).unwrap();
    // Every key of every section, as the defaults serialize them, is
    // written out (the optional paths are set in the example, so they are
    // checked through the resolved config).
    let resolved = vivid::config::Config::load(vivid::config::ConfigSource::Defaults)
        .unwrap()
        .to_toml();
    let resolved: toml::Table = toml::from_str(&resolved).unwrap();
    let mut keys = 0;
    for (section, table) in &resolved {
        let table = table.as_table().expect("sections are tables");
        assert!(
            text.contains(&format!("\n[{section}]\n")),
            "deploy/vivid.toml has [{section}]"
        );
        for (key, value) in table {
            // A table inside a section ([background.audioldm2]): its
            // header and each of its keys.
            let nested = value.as_table().map(|t| (format!("{section}.{key}"), t));
            if let Some((name, nested)) = nested {
                assert!(
                    text.contains(&format!("\n[{name}]\n")),
                    "deploy/vivid.toml has [{name}]"
                );
                for inner in nested.keys() {
                    keys += 1;
                    assert!(
                        text.contains(&format!("\n{inner} =")),
                        "deploy/vivid.toml sets {name}.{inner}"
                    );
                }
                continue;
            }
            keys += 1;
            assert!(
                text.contains(&format!("\n{key} =")),
                "deploy/vivid.toml sets {section}.{key}"
            );
        }
    }
    assert!(keys >= 20, "{keys} keys checked");
}

#[test]
fn verify_fails_on_damage_and_fetch_repairs_it() {
    let wheels = test_wheels_dir();
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let fetch = || {
        run(vivid()
            .args(["models", "fetch", "--offline", "--wheels"])
            .arg(&wheels)
            .arg("--models-dir")
            .arg(&models))
    };
    let verify = || {
        run(vivid()
            .args(["models", "verify", "--models-dir"])
            .arg(&models))
    };

    let out = fetch();
    assert!(out.status.success(), "fetch: {}", text(&out.stderr));
    let out = verify();
    assert!(
        out.status.success(),
        "verify after fetch: {}",
        text(&out.stdout)
    );

    let json = models.join("voices/en_US-joe-medium.onnx.json");
    let card = models.join("voices/en_US-joe-medium.MODEL_CARD");
    let terms = models.join("llm/GEMMA_TERMS.html");
    let gguf = models.join("llm/gemma-3-270m-q4_k_m.gguf");
    let mut bytes = fs::read(&json).unwrap();
    bytes[100] ^= 0x01; // one flipped bit
    fs::write(&json, &bytes).unwrap();
    let card_len = fs::metadata(&card).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&card)
        .unwrap()
        .set_len(card_len / 2)
        .unwrap();
    fs::remove_file(&terms).unwrap();

    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("3 of 7"), "{err}");
    assert!(
        err.contains(&json.display().to_string()) && err.contains("sha256"),
        "{err}"
    );
    assert!(
        err.contains(&card.display().to_string()) && err.contains("truncated"),
        "{err}"
    );
    assert!(
        err.contains(&terms.display().to_string()) && err.contains("missing"),
        "{err}"
    );
    assert!(
        !err.contains(&gguf.display().to_string()),
        "good files are not blamed: {err}"
    );

    let gguf_inode = fs::metadata(&gguf).unwrap().ino();
    let out = fetch();
    assert!(out.status.success(), "repair: {}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(log.contains("3 installed, 4 already present"), "{log}");
    assert_eq!(
        fs::metadata(&gguf).unwrap().ino(),
        gguf_inode,
        "intact file left alone"
    );
    let out = verify();
    assert!(
        out.status.success(),
        "verify after repair: {}",
        text(&out.stderr)
    );

    // Nothing half-written is left under any name.
    for dir in [models.join("voices"), models.join("llm"), models.clone()] {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".partial") && !name.starts_with(".wheels"),
                "leftover {name}"
            );
        }
    }
}

#[test]
fn doctor_passes_on_a_working_setup() {
    let models = test_models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[paths]\nmodels_dir = \"{}\"\nspool_dir = \"spool\"\noutput_dir = \"out\"\n\
             [playback]\ndevice = \"null\"\n[system]\nmin_free_disk_mb = 1\n",
            models.display()
        ),
    );
    fs::create_dir_all(tmp.path().join("out")).unwrap();
    let out = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("PASS  espeak-ng data"), "{stdout}");
    assert!(stdout.contains("PASS  playback device `null`"), "{stdout}");
    assert!(
        stdout.contains("PASS  model llm/gemma-3-270m-q4_k_m.gguf"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains(&format!("models_dir = \"{}\"", models.display())),
        "prints resolved config: {stdout}"
    );
}

#[test]
fn doctor_names_each_problem_and_its_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let empty_models = tmp.path().join("models");
    fs::create_dir(&empty_models).unwrap();
    // A file where the spool folder should be.
    fs::write(tmp.path().join("spool"), b"").unwrap();
    let cfg = write_config(
        tmp.path(),
        "[paths]\nmodels_dir = \"models\"\nspool_dir = \"spool\"\noutput_dir = \"out\"\n\
         [playback]\ndevice = \"vivid_no_such_pcm\"\n[system]\nmin_free_disk_mb = 1000000000\n",
    );
    let out = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for needle in [
        "FAIL  model voices/en_US-joe-medium.onnx",
        "vivid models fetch --models-dir",
        "FAIL  playback device `vivid_no_such_pcm`",
        "aplay -L",
        "FAIL  inbox",
        "not a writable folder",
        "FAIL  free disk",
        "below the 1000000000 MiB minimum",
    ] {
        assert!(stdout.contains(needle), "expected {needle:?} in:\n{stdout}");
    }
    // ALSA's own chatter is captured into the report, not sprayed on stderr.
    assert!(
        !text(&out.stderr).contains("ALSA lib"),
        "{}",
        text(&out.stderr)
    );

    // Disabling playback removes that failure.
    let cfg = write_config(
        tmp.path(),
        "[playback]\nenabled = false\ndevice = \"vivid_no_such_pcm\"\n",
    );
    let out = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
    assert!(text(&out.stdout).contains("PASS  playback device `vivid_no_such_pcm`: not checked"));
}
