//! The config's parsing, validation and resolution.

use super::*;

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    parse_config(Path::new("/etc/vivid/test.toml"), text)
}

#[test]
fn empty_file_gives_defaults() {
    let file = parse("").expect("empty config is valid");
    assert_eq!(file, ConfigFile::default());
    assert!(file.playback.enabled);
    assert_eq!(file.playback.device, "default");
}

#[test]
fn good_file_is_read() {
    let file = parse(
        "[paths]\nmodels_dir = \"/srv/models\"\n[playback]\ndevice = \"hw:1,0\"\nenabled = false\n[log]\nlevel = \"debug\"\n",
    )
    .expect("valid config");
    assert_eq!(
        file.paths.models_dir.as_deref(),
        Some(Path::new("/srv/models"))
    );
    assert_eq!(file.playback.device, "hw:1,0");
    assert!(!file.playback.enabled);
    assert_eq!(file.log.level, LogLevel::Debug);
}

#[test]
fn unknown_key_names_file_key_line_and_choices() {
    let err = parse("[playback]\nenabled = true\ndevise = \"hw:0\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/etc/vivid/test.toml"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("devise"), "{msg}");
    assert!(msg.contains("device"), "allowed keys listed: {msg}");
}

#[test]
fn unknown_section_is_rejected() {
    let msg = parse("[playbak]\ndevice = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("playbak") && msg.contains("line 1"), "{msg}");
    assert!(msg.contains("playback"), "allowed sections listed: {msg}");
}

#[test]
fn bad_value_names_key_and_what_is_allowed() {
    let msg = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
    assert!(msg.contains("key `log.level`"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("info") && msg.contains("debug"), "{msg}");

    let msg = parse("[playback]\nenabled = \"yes\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("playback.enabled") && msg.contains("line 2"),
        "{msg}"
    );

    let msg = parse("[system]\nmin_free_disk_mb = -5\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("system.min_free_disk_mb"), "{msg}");
}

#[test]
fn out_of_range_values_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vivid.toml");
    std::fs::write(&path, "[speech]\nrate = 9.0\n").unwrap();
    let msg = Config::load(ConfigSource::Flag(path.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("speech.rate") && msg.contains("0.25 to 4"),
        "{msg}"
    );
    std::fs::write(&path, "[speech]\nsentence_silence = -1.0\n").unwrap();
    let msg = Config::load(ConfigSource::Flag(path))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("speech.sentence_silence"), "{msg}");
}

#[test]
fn audioldm2_keys_moved_to_their_table_and_say_so() {
    let msg = parse("[background]\nseed = 3\nsteps = 30\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("line 3") && msg.contains("background.steps"),
        "{msg}"
    );
    assert!(msg.contains("[background.audioldm2]"), "{msg}");
    let file = parse("[background]\nengine = \"soundscape\"\n[background.audioldm2]\nsteps = 30\n")
        .unwrap();
    assert_eq!(file.background.audioldm2.steps, 30);
    assert_eq!(
        file.background.engine,
        crate::background::EngineChoice::Soundscape
    );
    let msg = parse("[background.audioldm2]\nsteps = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("background.audioldm2.steps") && msg.contains("line 2"),
        "{msg}"
    );
    let msg = parse("[background]\nengine = \"magic\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("soundscape") && msg.contains("audioldm2"),
        "{msg}"
    );
    let msg = parse("[mix]\nchannels = 6\n").unwrap_err().to_string();
    assert!(msg.contains("mix.channels"), "{msg}");
}

#[test]
fn default_voice_is_in_the_manifest() {
    let manifest = crate::models::Manifest::builtin().unwrap();
    assert!(
        manifest
            .files()
            .any(|f| f.install_as == Path::new(DEFAULT_VOICE_FILE))
    );
}

#[test]
fn syntax_error_names_line() {
    let msg = parse("[paths]\nmodels_dir = /no/quotes\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn relative_paths_follow_the_config_file() {
    let file = parse("[paths]\nmodels_dir = \"models\"\n").unwrap();
    let defaults = DefaultDirs {
        data: PathBuf::from("/data/vivid"),
    };
    let cfg = Config::resolve(
        ConfigSource::Flag(PathBuf::from("/opt/kiosk/vivid.toml")),
        file,
        &defaults,
    );
    assert_eq!(cfg.models_dir, Path::new("/opt/kiosk/models"));
    assert_eq!(cfg.spool_dir, Path::new("/data/vivid/spool"));
    assert_eq!(cfg.output_dir, Path::new("/data/vivid/output"));
}

#[test]
fn resolved_config_round_trips() {
    let defaults = DefaultDirs {
        data: PathBuf::from("/data/vivid"),
    };
    let cfg = Config::resolve(ConfigSource::Defaults, ConfigFile::default(), &defaults);
    let text = cfg.to_toml();
    let again = parse(&text).expect("resolved config parses");
    assert_eq!(
        again.paths.models_dir.as_deref(),
        Some(Path::new("/data/vivid/models"))
    );
}

#[test]
fn log_level_shifts_saturate() {
    assert_eq!(LogLevel::Info.shifted(1), LogLevel::Debug);
    assert_eq!(LogLevel::Info.shifted(5), LogLevel::Trace);
    assert_eq!(LogLevel::Info.shifted(-1), LogLevel::Warn);
    assert_eq!(LogLevel::Info.shifted(-9), LogLevel::Error);
}

#[test]
fn triggers_resolve_with_their_lines() {
    let text = "[playback]\nenabled = true\n\n[[trigger]]\nname = \"desk button\"\ndevice = \"usb-Acme_Button-event-kbd\"\nkey = \"KEY_ENTER\"\nplay = \"welcome\"\n\n[[trigger]]\nchip = \"gpiochip0\"\nline = 17\nactive_low = true\nmin_interval_s = 90\naction = \"next\"\n";
    let file = parse(text).expect("valid triggers");
    assert_eq!(file.trigger_lines, vec![Some(4), Some(10)]);
    let cfg = Config::resolve(
        ConfigSource::Flag(PathBuf::from("/etc/vivid/test.toml")),
        file,
        &DefaultDirs {
            data: PathBuf::from("/data"),
        },
    );
    use crate::config::{Action, TriggerInput};
    let [button, sensor] = &cfg.triggers[..] else {
        panic!("{:?}", cfg.triggers)
    };
    assert_eq!(button.name, "desk button");
    assert_eq!(button.action, Action::Play("welcome".into()));
    assert_eq!(
        button.input,
        TriggerInput::Key {
            device: PathBuf::from("/dev/input/by-id/usb-Acme_Button-event-kbd"),
            code: 28,
            key: "KEY_ENTER".into()
        }
    );
    assert_eq!(sensor.name, "trigger 2");
    assert_eq!(sensor.action, Action::Next);
    assert_eq!(sensor.min_interval, std::time::Duration::from_secs(90));
    assert!(
        sensor.origin.ends_with("test.toml, line 10"),
        "{}",
        sensor.origin
    );
    let TriggerInput::Gpio {
        chip,
        line,
        active_low,
        debounce,
        ..
    } = &sensor.input
    else {
        panic!("{:?}", sensor.input)
    };
    assert_eq!(
        (chip.as_path(), *line, *active_low),
        (Path::new("/dev/gpiochip0"), 17, true)
    );
    assert_eq!(*debounce, std::time::Duration::from_millis(20));
}

#[test]
fn bad_triggers_are_refused_naming_their_line() {
    let button = "[[trigger]]\ndevice = \"usb-Acme\"\n";
    let cases: [(String, &str, &[&str]); 7] = [
        (
            format!("{button}key = \"KEY_ENTR\"\nplay = \"hall\"\n"),
            "line 3",
            &["unknown key `KEY_ENTR`", "KEY_ENTER"],
        ),
        (
            "[[trigger]]\nchip = \"gpiochip0\"\nline = 4\nplay = \"a\"\n\n[[trigger]]\nchip = \"gpiochip0\"\nline = 4\nplay = \"b\"\n".to_owned(),
            "line 8",
            &["line 4 of /dev/gpiochip0 is already trigger 0's (at line 1)"],
        ),
        (
            format!("{button}key = \"KEY_A\"\n"),
            "line 1",
            &["play = \"NAME\" or action"],
        ),
        (
            format!("{button}key = \"KEY_A\"\naction = \"dance\"\n"),
            "line 1",
            &["unknown action `dance`"],
        ),
        (
            "[[trigger]]\nplay = \"a\"\n".to_owned(),
            "line 1",
            &["input device", "GPIO line"],
        ),
        (
            "[[trigger]]\nchip = \"gpiochip0\"\nline = 1\ndebounce_ms = 5000\nplay = \"a\"\n".to_owned(),
            "line 4",
            &["5000 ms"],
        ),
        (
            "[[trigger]]\nchip = \"gpiochip0\"\nline = 1\nedge = \"sideways\"\nplay = \"a\"\n".to_owned(),
            "line 4",
            &["sideways"],
        ),
    ];
    for (text, line, needles) in cases {
        let message = parse(&text).unwrap_err().to_string();
        assert!(message.contains(line), "{line} in: {message}");
        for needle in needles {
            assert!(message.contains(needle), "{needle} in: {message}");
        }
    }
}

#[test]
fn overrides_are_applied_in_one_place_and_none_keeps_the_config() {
    use crate::background::EngineChoice;
    use crate::describe::Method;
    let cfg = Config::resolve(
        ConfigSource::Defaults,
        parse("[describe]\nseed = 7\n[background]\nseed = 9\n").expect("valid"),
        &DefaultDirs {
            data: PathBuf::from("/data/vivid"),
        },
    );
    let plain = cfg.render_settings(&Overrides::default());
    assert_eq!(plain.speech.voice, cfg.voice);
    assert_eq!(plain.describe.seed, 7);
    assert_eq!(plain.background.seed, 9);
    assert_eq!(plain.background.engine, EngineChoice::Auto);
    assert!(plain.background.cache_max_bytes > 0);
    assert_eq!(plain.describe.vocabulary, None, "decided with the engine");

    // A job file: a voice by name, a seed for description and background.
    let job = cfg.render_settings(&Overrides {
        voice_name: Some("de_DE-thorsten-medium.onnx".into()),
        rate: Some(1.25),
        method: Some(Method::Fixed),
        caption: Some("Rain on a tin roof.".into()),
        describe_seed: Some(3),
        background_seed: Some(3),
        ..Overrides::default()
    });
    assert_eq!(
        job.speech.voice,
        cfg.models_dir.join("voices/de_DE-thorsten-medium.onnx")
    );
    assert_eq!(job.speech.options.rate, Some(1.25));
    assert_eq!(job.describe.method, Method::Fixed);
    assert_eq!(job.describe.caption.as_deref(), Some("Rain on a tin roof."));
    assert_eq!((job.describe.seed, job.background.seed), (3, 3));

    // Flags: a bundle alone asks for AudioLDM2; an engine named wins.
    let bundle = PathBuf::from("/srv/bundle");
    let flags = cfg.background_settings(&Overrides {
        bundle: Some(bundle.clone()),
        no_cache: true,
        ..Overrides::default()
    });
    assert_eq!(flags.engine, EngineChoice::Audioldm2);
    assert_eq!(flags.audioldm2.bundle, bundle);
    assert_eq!(flags.cache_max_bytes, 0);
    let flags = cfg.background_settings(&Overrides {
        bundle: Some(bundle),
        engine: Some(EngineChoice::Soundscape),
        ..Overrides::default()
    });
    assert_eq!(flags.engine, EngineChoice::Soundscape);

    // `vivid describe` opens no engine: without a bundle, auto is the
    // soundscape's catalog; free asks for none.
    assert!(
        cfg.describer_settings(&Overrides::default())
            .vocabulary
            .is_some()
    );
    let free = cfg.describer_settings(&Overrides {
        vocabulary: Some(crate::describe::VocabularyChoice::Free),
        ..Overrides::default()
    });
    assert!(free.vocabulary.is_none());
}
