//! Speech parity with piper-tts 1.8 on the default voice, against the
//! reference data in tests/fixtures/speech (made by make_reference.py there;
//! no Python needed here).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use vivid::speech::{SpeakOptions, Voice};

use crate::common::{self, compare};

#[derive(Deserialize)]
struct Reference {
    sample_rate: u32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    sentences: Vec<RefSentence>,
}

#[derive(Deserialize)]
struct RefSentence {
    phonemes: String,
    ids: Vec<i64>,
    samples: usize,
    wav: Option<String>,
}

#[derive(Deserialize)]
struct Differences {
    rules: Vec<Rule>,
    words: Vec<String>,
}

#[derive(Deserialize)]
struct Rule {
    from: String,
    to: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech")
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn differences() -> Differences {
    let text = std::fs::read_to_string(fixtures().join("espeak_differences.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn voice() -> &'static Voice {
    static VOICE: OnceLock<Voice> = OnceLock::new();
    VOICE.get_or_init(|| {
        Voice::load(
            &crate::common::test_models_dir().join("voices/en_US-joe-medium.onnx"),
            0,
        )
        .expect("default voice loads")
    })
}

fn deterministic() -> SpeakOptions {
    SpeakOptions {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..SpeakOptions::default()
    }
}

fn read_wav(name: &str) -> Vec<f32> {
    common::read_wav(&fixtures().join("reference").join(name)).samples
}

#[test]
fn reference_covers_what_the_issue_asks() {
    let reference = reference();
    assert!(reference.cases.len() >= 25);
    assert_eq!(reference.sample_rate, voice().sample_rate());
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let any = |pred: &dyn Fn(&str) -> bool| texts.iter().any(|t| pred(t));
    assert!(any(&|t| t.contains('$') || t.contains('€')), "currency");
    assert!(any(&|t| t.contains('?')) && any(&|t| t.contains('!')));
    assert!(any(&|t| t.contains('"')) && any(&|t| t.contains('(')));
    assert!(any(&|t| !t.is_ascii()), "non-ASCII names");
    let longest = reference
        .cases
        .iter()
        .flat_map(|c| &c.sentences)
        .map(|s| s.ids.len())
        .max()
        .unwrap();
    assert!(
        longest > voice().model.max_ids(),
        "a sentence longer than the largest bucket"
    );
}

#[test]
fn phonemes_match_piper_except_known_espeak_differences() {
    let reference = reference();
    let diffs = differences();
    let apply = |s: &str| {
        diffs
            .rules
            .iter()
            .fold(s.to_owned(), |acc, r| acc.replace(&r.from, &r.to))
    };
    let mut exact = 0;
    for case in &reference.cases {
        let ours: Vec<String> = voice()
            .phonemize(&case.text)
            .unwrap()
            .iter()
            .map(|s| s.phonemes())
            .collect();
        let theirs: Vec<String> = case.sentences.iter().map(|s| s.phonemes.clone()).collect();
        if ours == theirs {
            exact += 1;
            // Same phonemes must give the same ids.
            for (sentence, reference) in ours.iter().zip(&case.sentences) {
                assert_eq!(voice().ids(sentence), reference.ids, "{}", case.text);
            }
            continue;
        }
        assert!(
            diffs.words.iter().any(|w| case.text.contains(w.as_str())),
            "phonemes differ for {:?} and it has no listed word:\n ours   {ours:?}\n piper  {theirs:?}",
            case.text
        );
        let ours: Vec<String> = ours.iter().map(|s| apply(s)).collect();
        let theirs: Vec<String> = theirs.iter().map(|s| apply(s)).collect();
        assert_eq!(ours, theirs, "beyond the known rules: {:?}", case.text);
    }
    assert!(
        exact >= reference.cases.len() / 2,
        "only {exact} texts match exactly"
    );
}

#[test]
fn waveforms_match_piper_within_tolerance() {
    // Through the encoder and decoder halves, on padded frame buckets.
    assert!(
        voice().model.runs_in_halves(),
        "the default voice is cut in two"
    );
    let reference = reference();
    let mut checked = 0;
    let mut worst = (0.0f32, 1.0f64);
    for case in &reference.cases {
        for sentence in &case.sentences {
            let Some(wav) = &sentence.wav else { continue };
            let mut ours = voice().infer_ids(&sentence.ids, &deterministic()).unwrap();
            vivid::speech::normalize_peak(&mut ours);
            let theirs = read_wav(wav);
            assert_eq!(ours.len(), sentence.samples, "{}", case.text);
            let c = compare(&ours, &theirs);
            assert!(
                c.max_abs_diff <= 1e-3 && c.correlation >= 0.999,
                "{:?}: max abs diff {}, correlation {}",
                case.text,
                c.max_abs_diff,
                c.correlation
            );
            worst = (worst.0.max(c.max_abs_diff), worst.1.min(c.correlation));
            checked += 1;
        }
    }
    eprintln!(
        "{checked} sentences: worst max abs diff {}, worst correlation {}",
        worst.0, worst.1
    );
    assert!(checked >= 25);
}

#[test]
fn speaking_text_matches_piper_where_phonemes_match() {
    // The whole path, text to normalized audio, for sentences whose
    // phonemes equal piper's (the ids test above covers the rest).
    let reference = reference();
    let mut checked = 0;
    for case in reference.cases.iter().filter(|c| c.text.len() < 60) {
        let sentences = voice().phonemize(&case.text).unwrap();
        let same = sentences.len() == case.sentences.len()
            && sentences
                .iter()
                .zip(&case.sentences)
                .all(|(a, b)| a.phonemes() == b.phonemes);
        if !same {
            continue;
        }
        let opts = deterministic();
        for (audio, reference) in voice()
            .speak(&case.text, &opts)
            .unwrap()
            .zip(&case.sentences)
        {
            let audio = audio.unwrap();
            let theirs = read_wav(reference.wav.as_deref().unwrap());
            let c = compare(&audio.samples, &theirs);
            assert!(
                c.max_abs_diff <= 1e-3 && c.correlation >= 0.999,
                "{:?}",
                case.text
            );
        }
        checked += 1;
        if checked == 4 {
            break;
        }
    }
    assert_eq!(checked, 4, "enough short texts with matching phonemes");
}

#[test]
fn a_sentence_longer_than_the_largest_bucket_is_split_and_keeps_its_length() {
    let reference = reference();
    let case = reference
        .cases
        .iter()
        .find(|c| {
            c.sentences
                .iter()
                .any(|s| s.ids.len() > voice().model.max_ids())
        })
        .unwrap();
    let long = case
        .sentences
        .iter()
        .find(|s| s.ids.len() > voice().model.max_ids())
        .unwrap();
    let sentences = voice().phonemize(&case.text).unwrap();
    let ours = sentences
        .iter()
        .find(|s| s.phonemes().chars().count() * 2 + 3 > voice().model.max_ids())
        .unwrap();
    let audio = voice().speak_sentence(ours, &deterministic()).unwrap();
    let ratio = audio.samples.len() as f64 / long.samples as f64;
    assert!((0.95..=1.05).contains(&ratio), "length ratio {ratio}");
    let peak = audio.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(
        (peak - 1.0).abs() < 1e-6,
        "normalized like piper: peak {peak}"
    );
}

#[test]
fn the_voice_runs_on_this_machines_own_matrix_kernels() {
    let plan = voice()
        .model
        .plan(vivid::speech::DEFAULT_BUCKETS[0])
        .unwrap();
    let kernels = vivid::compute::matmul_kernels(plan.model());
    // Printed for the record: tests/run-arm64 names the kernels that ran.
    println!("matrix kernels: {kernels:?}");
    assert!(!kernels.is_empty(), "the voice has matrix products");
    // tract's portable fallbacks are named `generic_…`; the SIMD kernels
    // for the CPU are what the speed figures assume.
    let arch_prefix = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        ""
    };
    for kernel in &kernels {
        assert!(
            !kernel.starts_with("generic") && kernel.starts_with(arch_prefix),
            "{kernel} among {kernels:?}"
        );
    }
}
