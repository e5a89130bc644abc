//! The settings a render runs with, resolved once (by the config, from the
//! config file, a command's flags and a job's overrides: see
//! `config::Overrides`), so the renderer never reads the config; and the
//! one place where the stages' vocabularies meet: the soundscape's catalog
//! as the describer's choices.

use std::path::PathBuf;

use crate::background::{BackgroundSettings, EngineKind};
use crate::describe::{DescribeSettings, Vocabulary, VocabularyChoice};
use crate::mix::MixSettings;
use crate::speech::SpeakOptions;

/// How the narration is spoken.
#[derive(Debug, Clone)]
pub struct SpeechSettings {
    /// The voice model (.onnx with its .onnx.json beside it).
    pub voice: PathBuf,
    /// Seed of the voice's noise.
    pub seed: u64,
    /// Speaker and rate.
    pub options: SpeakOptions,
    /// Silence between sentences, in seconds.
    pub sentence_silence: f32,
}

/// Everything one render runs with.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub speech: SpeechSettings,
    /// The describer's settings. Its `vocabulary` is decided with the
    /// engine that opens, from `vocabulary` (see [`describe_vocabulary`]).
    pub describe: DescribeSettings,
    pub vocabulary: VocabularyChoice,
    /// The soundscape's sources, by id or phrase, instead of the
    /// describer's choice (a job file's `sounds`).
    pub sounds: Option<Vec<String>>,
    /// The soundscape's place, by id or phrase (a job file's `place`).
    pub place: Option<String>,
    pub background: BackgroundSettings,
    pub mix: MixSettings,
}

/// The words the describer answers in, with `engine` playing the
/// background: the catalog's places and sources for `catalog`, and for
/// `auto` when the engine is the soundscape; free phrases otherwise. The
/// one place `auto` is decided.
pub fn describe_vocabulary(
    choice: VocabularyChoice,
    engine: EngineKind,
    library_dirs: &[PathBuf],
) -> Option<Vocabulary> {
    let catalog = match choice {
        VocabularyChoice::Catalog => true,
        VocabularyChoice::Free => false,
        VocabularyChoice::Auto => engine == EngineKind::Soundscape,
    };
    catalog.then(|| catalog_vocabulary_with(library_dirs))
}

/// The soundscape catalog's places and sources as the describer's
/// vocabulary.
pub fn catalog_vocabulary() -> Vocabulary {
    catalog_vocabulary_with(&[])
}

/// [`catalog_vocabulary`] with the new sources that the sound library in
/// `library_dirs` declares.
pub fn catalog_vocabulary_with(library_dirs: &[PathBuf]) -> Vocabulary {
    use crate::background::soundscape::catalog::Catalog;
    use crate::background::soundscape::library::new_sources_declared;
    use crate::describe::vocabulary::Entry;
    let builtin = Catalog::builtin();
    let mut catalog = builtin.clone();
    catalog
        .sources
        .extend(new_sources_declared(library_dirs, builtin));
    Vocabulary {
        places: catalog
            .places
            .iter()
            .map(|p| Entry {
                id: p.id.clone(),
                phrase: p.phrase.clone(),
                synonyms: Vec::new(),
                keywords: p.keywords.clone(),
                scenes: p.scenes.clone(),
            })
            .collect(),
        sources: catalog
            .sources
            .iter()
            .map(|s| Entry {
                id: s.id.clone(),
                phrase: s.phrase.clone(),
                synonyms: s.synonyms.clone(),
                keywords: s.keywords.clone(),
                scenes: s.scenes.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_vocabulary_gives_the_describer_every_entry_with_its_scenes() {
        let vocabulary = catalog_vocabulary();
        assert_eq!(vocabulary.sources.len(), 52);
        assert_eq!(vocabulary.places.len(), 12);
        for entry in vocabulary.sources.iter().chain(&vocabulary.places) {
            // The semantic evidence compares a text with these scenes.
            assert!(entry.scenes.len() >= 3, "{} has too few scenes", entry.id);
            assert!(!entry.keywords.is_empty(), "{}", entry.id);
            assert_eq!(
                vocabulary.source_by_phrase(&entry.id).is_some() as u8
                    + vocabulary.place_by_phrase(&entry.id).is_some() as u8,
                1,
                "{} names exactly one entry",
                entry.id
            );
        }
    }

    #[test]
    fn auto_is_the_catalog_with_the_soundscape_and_free_with_audioldm2() {
        use VocabularyChoice::*;
        let with = |choice, engine| describe_vocabulary(choice, engine, &[]).is_some();
        assert!(with(Auto, EngineKind::Soundscape));
        assert!(!with(Auto, EngineKind::Audioldm2));
        assert!(with(Catalog, EngineKind::Audioldm2));
        assert!(!with(Free, EngineKind::Soundscape));
    }
}

/// The describer choosing from the soundscape's catalog, without its
/// models: where the two stages meet.
#[cfg(test)]
mod describer_with_the_catalog {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::catalog_vocabulary;
    use crate::describe::{
        CallOptions, DescribeSettings, Describer, EvidenceParts, Method, SceneBounds,
    };

    fn settings() -> DescribeSettings {
        DescribeSettings {
            method: Method::Llm,
            model: PathBuf::from("/nonexistent/model.gguf"),
            prompt: None,
            caption: None,
            seed: 1,
            temperature: 0.0,
            timeout: Duration::from_secs(5),
            scenes: SceneBounds::default(),
            threads: 1,
            vocabulary: Some(catalog_vocabulary()),
            embedder: None,
            evidence: EvidenceParts::default(),
        }
    }

    #[test]
    fn a_job_s_sounds_and_place_override_the_choice_without_a_model() {
        let mut describer = Describer::new(settings());
        let options = CallOptions {
            sounds: Some(vec!["owl".into(), "crickets chirping".into()]),
            place: Some("forest".into()),
            ..CallOptions::default()
        };
        let d = describer
            .describe_call("Welcome to the museum.", &options)
            .unwrap();
        let choice = d.scenes[0].choice().unwrap();
        let ids: Vec<&str> = choice.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["owl", "crickets"]);
        assert!(
            choice
                .sources
                .iter()
                .all(|s| s.from == crate::describe::vocabulary::Evidence::Override)
        );
        assert_eq!(choice.place.as_deref(), Some("forest"));
        assert_eq!(d.scenes[0].sounds(), ["owl", "crickets"]);
        assert!(d.scenes[0].fallback.is_none(), "no model was needed");
    }

    #[test]
    fn without_the_models_the_words_and_setting_still_choose() {
        // Neither the language model nor the embedding model can be had:
        // the scene is still described from the catalog, and the record
        // names what was missing.
        let mut describer = Describer::new(settings());
        let d = describer
            .describe("夜深了，海边的海浪拍打着礁石，守塔人整夜守着灯火。")
            .unwrap();
        let scene = &d.scenes[0];
        let choice = scene.choice().unwrap();
        assert!(
            choice.sources.iter().any(|s| s.id == "sea-surf"),
            "{choice:?}"
        );
        assert!(
            choice.setting.has(crate::describe::setting::Cue::Night),
            "{choice:?}"
        );
        assert!(
            choice.warnings.iter().any(|w| w.starts_with("meaning"))
                && choice.warnings.iter().any(|w| w.starts_with("model")),
            "{:?}",
            choice.warnings
        );
        assert_eq!(scene.method, Method::Text, "the model failed: {scene:?}");
        assert!(
            scene
                .fallback
                .as_deref()
                .is_some_and(|f| f.contains("model.gguf"))
        );
    }
}
