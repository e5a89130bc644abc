//! The soundscape against real recordings, and the sound library: real
//! field recordings from Debian's game data packages (`tests/references`
//! fetches them into `VIVID_TEST_REFERENCES`; used in tests only) and
//! files made here for the bad input.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vivid::audio::decode::decode_file;
use vivid::background::soundscape::profile::{Profile, distance};

use crate::common::{read_wav, run, test_models_dir, text, vivid, write_config};

/// Folder of the reference recordings, one sub-folder a class.
fn references() -> PathBuf {
    let dir = std::env::var_os("VIVID_TEST_REFERENCES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("VIVID_TEST_REFERENCES is not set: run the tests with `tests/run`, which fetches the real recordings (tests/references DIR)")
        });
    assert!(
        dir.join("rain").is_dir(),
        "{} holds no references",
        dir.display()
    );
    dir
}

/// The classes whose renders the judge holds to their own class: every
/// class that has references.
const HELD: [&str; 11] = [
    "rain",
    "wind",
    "river",
    "surf",
    "thunder",
    "birds",
    "crickets",
    "fire",
    "anvil",
    "footsteps",
    "hooves",
];

#[test]
fn soundscape_classes_lie_nearest_real_recordings_of_their_sound() {
    let out = run(vivid()
        .args(["bench", "realism", "--json", "--references"])
        .arg(references()));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    let classes = report["classes"].as_array().unwrap();
    assert!(classes.len() >= 11, "{report:#}");
    // The judge tells the real recordings apart, each held out: far above
    // chance (1 in 11).
    let (told, files) = classes.iter().fold((0, 0), |(t, f), c| {
        (
            t + c["references_recognized"].as_u64().unwrap(),
            f + c["reference_files"].as_u64().unwrap(),
        )
    });
    assert!(
        told * 100 >= files * 60,
        "the references told apart: {told} of {files}"
    );
    for class in HELD {
        let c = classes
            .iter()
            .find(|c| c["class"] == class)
            .unwrap_or_else(|| panic!("no result for {class}"));
        assert_eq!(
            c["vivid_nearest"], class,
            "{class}: vivid's render lies nearer {} ({:.2} against {:.2}); largest gaps {}",
            c["nearest_other"], c["other_distance"], c["own_distance"], c["largest_gaps"]
        );
    }
}

/// Band shares of a mono sound's profile (the spectral envelope).
fn bands(x: &[f32], rate: u32) -> Vec<f64> {
    Profile::of(x, rate).expect("a sound").values[..7].to_vec()
}

fn library_config(dir: &Path, library: &Path) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[paths]\nmodels_dir = \"{}\"\n[background.library]\ndirs = [\"{}\"]\n",
            test_models_dir().display(),
            library.display()
        ),
    )
}

#[test]
fn a_library_of_real_recordings_plays_in_place_of_the_recipes() {
    let tmp = tempfile::tempdir().unwrap();
    let library = tmp.path().join("library");
    std::fs::create_dir(&library).unwrap();
    let refs = references();
    let rain = refs.join("rain/0ad-data-weather-rain_12.ogg");
    std::fs::copy(&rain, library.join("rain.ogg")).unwrap();
    let smith = refs.join("anvil/widelands-data-smiths-smith_00.ogg");
    std::fs::copy(&smith, library.join("smith.ogg")).unwrap();
    std::fs::write(
        library.join("library.toml"),
        r#"
[[sound]]
id = "rain-light"
files = ["rain.ogg"]
as = "bed"

[[sound]]
id = "forge-hammer"
phrase = "the museum forge's hammer"
category = "mechanical"
synonyms = ["the forge hammer"]
keywords = ["forge"]
files = ["smith.ogg"]
as = "events"
"#,
    )
    .unwrap();
    let cfg = library_config(tmp.path(), &library);

    let check = run(vivid().arg("--config").arg(&cfg).args(["library", "check"]));
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    assert!(
        text(&check.stdout).contains("0 errors"),
        "{}",
        text(&check.stdout)
    );

    // `vivid sounds` names the origin; the new id joined the catalog.
    let sounds = run(vivid().arg("--config").arg(&cfg).args(["sounds", "--json"]));
    let listed: Value = serde_json::from_slice(&sounds.stdout).unwrap();
    assert_eq!(listed["library"]["rain-light"]["as"], "bed");
    assert!(
        listed["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "forge-hammer")
    );

    // A scene of light rain at the forge: the recordings play and the
    // plan names them.
    let wav = tmp.path().join("scene.wav");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .args([
            "background",
            "light rain falling, the forge hammer",
            "--engine",
            "soundscape",
        ])
        .args(["--seconds", "30", "-o"])
        .arg(&wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout) + &text(&out.stderr);
    assert!(
        plan.contains("rain.ogg") && plan.contains("smith.ogg"),
        "{plan}"
    );

    // Light rain alone, from the library and from the recipe.
    let rain_wav = tmp.path().join("rain.wav");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .args(["background", "light rain falling", "--engine", "soundscape"])
        .args(["--seconds", "30", "-o"])
        .arg(&rain_wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let played = read_wav(&rain_wav);
    let mono: Vec<f32> = played
        .samples
        .chunks_exact(2)
        .map(|f| 0.5 * (f[0] + f[1]))
        .collect();
    let recording = decode_file(&rain, 600.0)
        .unwrap()
        .at_rate(48_000)
        .unwrap()
        .mono();
    // The rain sounds like the recording, not the recipe: its spectral
    // envelope lies far nearer the recording's.
    let recipe_wav = tmp.path().join("recipe.wav");
    let recipe = run(vivid()
        .args([
            "background",
            "light rain falling",
            "--engine",
            "soundscape",
            "--seconds",
            "30",
            "-o",
        ])
        .arg(&recipe_wav));
    assert!(recipe.status.success(), "{}", text(&recipe.stderr));
    let recipe_audio = read_wav(&recipe_wav);
    let recipe_mono: Vec<f32> = recipe_audio
        .samples
        .chunks_exact(2)
        .map(|f| 0.5 * (f[0] + f[1]))
        .collect();
    let (ours, theirs, recipe_bands) = (
        bands(&mono, 48_000),
        bands(&recording, 48_000),
        bands(&recipe_mono, 48_000),
    );
    assert!(
        distance(&ours, &theirs) < 0.6 * distance(&recipe_bands, &theirs),
        "with the library {:.1} dB from the recording, the recipe {:.1}",
        distance(&ours, &theirs),
        distance(&recipe_bands, &theirs)
    );
}

#[test]
fn bad_library_files_are_named_and_their_sources_keep_their_recipes() {
    let tmp = tempfile::tempdir().unwrap();
    let library = tmp.path().join("library");
    std::fs::create_dir(&library).unwrap();
    let tone = |rate: u32, seconds: f32, amplitude: f32| -> Vec<i16> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (amplitude * (std::f32::consts::TAU * 440.0 * t).sin() * 32_767.0) as i16
            })
            .collect()
    };
    crate::common::write_wav_i16(
        &library.join("good.wav"),
        48_000,
        1,
        &tone(48_000, 1.0, 0.3),
    );
    crate::common::write_wav_i16(
        &library.join("low-rate.wav"),
        8_000,
        1,
        &tone(8_000, 1.0, 0.3),
    );
    crate::common::write_wav_i16(&library.join("silent.wav"), 48_000, 1, &vec![0; 48_000]);
    crate::common::write_wav_i16(
        &library.join("short-bed.wav"),
        48_000,
        1,
        &tone(48_000, 2.0, 0.3),
    );
    crate::common::write_wav_i16(
        &library.join("loud.wav"),
        48_000,
        1,
        &tone(48_000, 1.0, 1.5),
    );
    std::fs::write(library.join("empty.wav"), b"").unwrap();
    std::fs::write(library.join("notes.flac"), b"these are not sounds").unwrap();
    let whole = std::fs::read(library.join("good.wav")).unwrap();
    std::fs::write(library.join("cut.wav"), &whole[..whole.len() / 3]).unwrap();
    std::fs::write(
        library.join("library.toml"),
        r#"
[[sound]]
id = "church-bell"
files = ["missing.wav", "empty.wav", "notes.flac", "cut.wav", "low-rate.wav", "silent.wav"]
as = "events"

[[sound]]
id = "rain-light"
files = ["short-bed.wav"]
as = "bed"

[[sound]]
id = "ship-bell"
files = ["loud.wav", "good.wav"]
as = "events"

[[sound]]
id = "ship-bell"
files = ["good.wav"]
as = "events"

[[sound]]
id = "no-such-source"
files = ["good.wav"]
as = "events"
"#,
    )
    .unwrap();
    let cfg = library_config(tmp.path(), &library);
    let check = run(vivid().arg("--config").arg(&cfg).args(["library", "check"]));
    assert!(!check.status.success(), "errors give exit status 1");
    let said = text(&check.stdout);
    for (file, reason) in [
        ("missing.wav", "cannot open"),
        ("empty.wav", "empty"),
        ("notes.flac", "not a sound file"),
        ("cut.wav", "truncated"),
        ("low-rate.wav", "too low"),
        ("silent.wav", "silent"),
        ("short-bed.wav", "longer than twice"),
        ("loud.wav", "clips"),
    ] {
        assert!(
            said.lines().any(|l| l.contains(file) && l.contains(reason)),
            "{file}: expected '{reason}' in:\n{said}"
        );
    }
    assert!(said.contains("served twice"), "{said}");
    assert!(
        said.contains("`no-such-source` is not a catalog source"),
        "{said}"
    );
    // Only the ship's bell plays from the library (from its good files).
    assert!(
        said.contains("1 sources from the library (ship-bell)"),
        "{said}"
    );

    // A library.toml with an unknown key: named, with the key.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(
        other.join("library.toml"),
        "[[sound]]\nid = \"owl\"\nfile = [\"x.wav\"]\nas = \"events\"\n",
    )
    .unwrap();
    let check = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .args(["library", "check"])
        .arg(&other));
    let said = text(&check.stdout);
    assert!(
        said.contains("library.toml") && said.contains("unknown field `file`"),
        "{said}"
    );
    let missing = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .args(["library", "check"])
        .arg(tmp.path().join("nowhere")));
    assert!(
        text(&missing.stdout).contains("library.toml: missing"),
        "{}",
        text(&missing.stdout)
    );

    // The scene still plays, whole: the failed sources play their recipes.
    let wav = tmp.path().join("bells.wav");
    let out = run(vivid()
        .arg("--config")
        .arg(&cfg)
        .args([
            "background",
            "a church bell ringing in light rain",
            "--engine",
            "soundscape",
            "--seconds",
            "12",
            "-o",
        ])
        .arg(&wav));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let audio = read_wav(&wav);
    assert_eq!(audio.frames(), 12 * 48_000);
    let rms =
        (audio.samples.iter().map(|v| v * v).sum::<f32>() / audio.samples.len() as f32).sqrt();
    assert!(rms > 1e-3, "the scene is not silent: {rms}");
    // The doctor warns, naming the files.
    let doctor = run(vivid().arg("--config").arg(&cfg).arg("doctor"));
    let said = text(&doctor.stdout) + &text(&doctor.stderr);
    assert!(
        said.contains("WARN") && said.contains("sound library") && said.contains("cut.wav"),
        "{said}"
    );
}
