//! The describer's evidence on the real models: the sentence embedding
//! against the figures sentence-transformers publishes for the same model,
//! and what a technician sees when the embedding model is missing or
//! damaged (the other evidence chooses, the record and `vivid doctor`
//! say why).

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use vivid::describe::embed::{SentenceEncoder, cosine};

use crate::common::*;

fn embedder() -> PathBuf {
    test_models_dir().join(vivid::config::DEFAULT_EMBEDDER_FILE)
}

/// sentence-transformers' own example for all-MiniLM-L6-v2 prints this
/// similarity matrix (its README and documentation, to four decimals):
/// the tokenizer, every layer, the pooling and the normalisation must all
/// match for it to come out.
#[test]
fn sentence_embeddings_match_sentence_transformers() {
    let weights = embedder();
    let encoder =
        SentenceEncoder::load(&weights, &weights.with_extension("tokenizer.json")).unwrap();
    let sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ];
    let e = encoder.embed_all(&sentences).unwrap();
    let expected = [
        [1.0, 0.6660, 0.1046],
        [0.6660, 1.0, 0.1411],
        [0.1046, 0.1411, 1.0],
    ];
    for i in 0..3 {
        for j in 0..3 {
            let got = cosine(&e[i], &e[j]);
            assert!(
                (got - expected[i][j]).abs() < 6e-4,
                "similarity[{i}][{j}] = {got:.4}, published {:.4}",
                expected[i][j]
            );
        }
    }
    // One text alone embeds as it does in a batch (the batch's texts do
    // not see each other), and a text longer than the model reads is cut,
    // not refused.
    let alone = encoder.embed(sentences[1]).unwrap();
    assert!(cosine(&alone, &e[1]) > 0.99999);
    let long = "The tide comes in over the flats. ".repeat(200);
    let v = encoder.embed(&long).unwrap();
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
}

fn describe(dir: &std::path::Path, text: &str, embedder: &std::path::Path) -> Value {
    let _one_at_a_time = llm_lock();
    let input = dir.join("narration.txt");
    fs::write(&input, text).unwrap();
    let model = test_models_dir().join(vivid::config::DEFAULT_DESCRIBER_FILE);
    let out = run(vivid()
        .arg("describe")
        .arg(&input)
        .args(["--json", "--vocabulary", "catalog", "--model"])
        .arg(&model)
        .arg("--embedder")
        .arg(embedder));
    assert!(out.status.success(), "{}", text_of(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The ids of a recorded choice's sources.
fn chosen_ids(choice: &Value) -> Vec<&str> {
    choice["sources"]
        .as_array()
        .expect("a catalog choice")
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect()
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn implied_sounds_are_chosen_by_meaning_and_the_record_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing here names a sound: the embedding has to hear the hooves.
    let json = describe(
        tmp.path(),
        "The courier left the garrison at midnight with the dispatch in his coat, and rode \
         hard down the post road to reach the capital before dawn.",
        &embedder(),
    );
    let choice = &json["scenes"][0]["choice"];
    let ids = chosen_ids(choice);
    assert!(ids.iter().any(|id| id.starts_with("hooves")), "{choice:#}");
    let hooves = choice["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str().unwrap().starts_with("hooves"))
        .unwrap();
    assert_ne!(hooves["from"], "text", "no word names hooves: {hooves}");
    assert!(
        hooves["scores"]["similarity"].as_f64().unwrap() > 0.3,
        "{hooves}"
    );
    assert!(
        choice["setting"]["cues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "night"),
        "{choice:#}"
    );
    assert!(choice.get("warnings").is_none(), "{choice:#}");
}

#[test]
fn a_missing_or_damaged_embedding_model_leaves_the_other_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let damaged = tmp.path().join("damaged.safetensors");
    let bytes = fs::read(embedder()).unwrap();
    fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    drop(bytes);
    fs::copy(
        embedder().with_extension("tokenizer.json"),
        damaged.with_extension("tokenizer.json"),
    )
    .unwrap();
    let missing = tmp.path().join("missing.safetensors");
    for (model, needle) in [
        (&damaged, "damaged.safetensors"),
        (&missing, "missing.safetensors"),
    ] {
        // The gulls are named: the words still choose them.
        let json = describe(
            tmp.path(),
            "Gulls wheel over the harbour while the fishing boats come in.",
            model,
        );
        let scene = &json["scenes"][0];
        assert_eq!(scene["method"], "llm", "{scene:#}");
        let choice = &scene["choice"];
        let warnings = choice["warnings"].as_array().expect("a warning recorded");
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().unwrap().contains(needle)),
            "{warnings:?}"
        );
        assert!(chosen_ids(choice).contains(&"seagulls"), "{choice:#}");
    }
    // vivid doctor says what is wrong and how to fix it, as a warning.
    let config = write_config(
        tmp.path(),
        &format!("[describe]\nembedder = \"{}\"\n", damaged.display()),
    );
    let out = run(vivid().arg("--config").arg(&config).arg("doctor"));
    let stdout = text_of(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("embedder:"))
        .unwrap_or_else(|| panic!("no embedder line: {stdout}"));
    assert!(
        line.contains("WARN") && line.contains("damaged.safetensors"),
        "{line}"
    );
    assert!(stdout.contains("vivid models fetch"), "{stdout}");
}
