//! Catalog vocabulary: the places and sound sources a background engine can
//! play, as plain data handed to the describer (the soundscape's catalog,
//! turned into this by the renderer), and the record of what was chosen for
//! a scene and why.
//!
//! The choice itself weighs the text's words, its meaning, its setting and
//! the language model's view ([`super::evidence`]): a 270M model writing
//! free text chose fitting sources a quarter of the time, and the text's
//! words alone miss every sound a poem or a novel only implies.

use serde::{Deserialize, Serialize};

/// One place or source the engine can play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// How a caption names it (AudioCaps style), and what the model is
    /// offered to choose.
    pub phrase: String,
    /// Other phrases that name it, matched whole in the text.
    #[serde(default)]
    pub synonyms: Vec<String>,
    /// Single words that point to it, matched by stem.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Scenes that imply it without naming it, for the sentence embedding.
    #[serde(default)]
    pub scenes: Vec<String>,
}

/// The places and sources to choose from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Vocabulary {
    pub places: Vec<Entry>,
    pub sources: Vec<Entry>,
}

use super::answer::AmbienceLevel;
pub use super::evidence::EvidenceKind as Evidence;
use super::evidence::Scores;
use super::setting::Setting;

/// A chosen source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenSource {
    pub id: String,
    pub phrase: String,
    /// The evidence that gave most.
    pub from: Evidence,
    /// Every part's score (none for an override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Scores>,
}

/// A source that was weighed but not chosen, with its total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Considered {
    pub id: String,
    pub total: f32,
}

/// What the describer chose for one scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogChoice {
    /// A place preset's id, when one was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub place_from: Option<Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_scores: Option<Scores>,
    pub sources: Vec<ChosenSource>,
    /// Nothing spoke for a source: the place's bed plays alone.
    pub bed_only: bool,
    /// How busy the scene is, when the evidence says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<AmbienceLevel>,
    /// The time of day, season and weather the text gives.
    #[serde(default)]
    pub setting: Setting,
    /// The best sources not chosen, for a technician asking why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) considered: Vec<Considered>,
    /// Evidence that could not be had (the embedding model missing, the
    /// language model failing), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Vocabulary {
    /// The source a catalog phrase (or id) names exactly.
    pub(crate) fn source_by_phrase(&self, phrase: &str) -> Option<&Entry> {
        let phrase = phrase.trim();
        self.sources
            .iter()
            .find(|e| e.phrase.eq_ignore_ascii_case(phrase) || e.id == phrase)
    }

    pub(crate) fn place_by_phrase(&self, phrase: &str) -> Option<&Entry> {
        let phrase = phrase.trim();
        self.places
            .iter()
            .find(|e| e.phrase.eq_ignore_ascii_case(phrase) || e.id == phrase)
    }

    /// The choice a job's own `sounds` and `place` make: ids (or
    /// phrases) of the catalog; unknown ones are left out and named in
    /// the warnings.
    pub(crate) fn choose_given(&self, sounds: &[String], place: Option<&str>) -> CatalogChoice {
        let mut warnings = Vec::new();
        let mut sources: Vec<ChosenSource> = Vec::new();
        for sound in sounds {
            match self.source_by_phrase(sound) {
                Some(e) if !sources.iter().any(|s| s.id == e.id) => sources.push(ChosenSource {
                    id: e.id.clone(),
                    phrase: e.phrase.clone(),
                    from: Evidence::Override,
                    scores: None,
                }),
                Some(_) => {}
                None => warnings.push(format!(
                    "the job's sound `{sound}` is not in the catalog (see `vivid sounds`)"
                )),
            }
        }
        let place = place.and_then(|p| match self.place_by_phrase(p) {
            Some(e) => Some(e.id.clone()),
            None => {
                warnings.push(format!(
                    "the job's place `{p}` is not in the catalog (see `vivid sounds`)"
                ));
                None
            }
        });
        CatalogChoice {
            place_from: place.as_ref().map(|_| Evidence::Override),
            place,
            place_scores: None,
            bed_only: sources.is_empty(),
            sources,
            level: None,
            setting: Setting::default(),
            considered: Vec::new(),
            warnings,
        }
    }
}

/// What the describer model answers with.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VocabularyChoice {
    /// catalog with the soundscape, free with AudioLDM2.
    #[default]
    Auto,
    /// A choice among the soundscape catalog's places and sources.
    Catalog,
    /// Free text (AudioCaps-style phrases).
    Free,
}

impl std::str::FromStr for VocabularyChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<VocabularyChoice, String> {
        match s.trim().to_lowercase().as_str() {
            "auto" => Ok(VocabularyChoice::Auto),
            "catalog" => Ok(VocabularyChoice::Catalog),
            "free" => Ok(VocabularyChoice::Free),
            other => Err(format!(
                "unknown vocabulary `{other}`: use auto, catalog or free"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, phrase: &str) -> Entry {
        Entry {
            id: id.into(),
            phrase: phrase.into(),
            synonyms: Vec::new(),
            keywords: Vec::new(),
            scenes: Vec::new(),
        }
    }

    #[test]
    fn a_job_names_sources_and_place_by_id_or_phrase() {
        let v = Vocabulary {
            places: vec![entry("harbour", "a harbour")],
            sources: vec![
                entry("seagulls", "seagulls calling"),
                entry("owl", "an owl hooting"),
            ],
        };
        let choice = v.choose_given(
            &[
                "owl".into(),
                "Seagulls calling".into(),
                "owl".into(),
                "dragons".into(),
            ],
            Some("harbour"),
        );
        let ids: Vec<&str> = choice.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["owl", "seagulls"]);
        assert!(choice.sources.iter().all(|s| s.from == Evidence::Override));
        assert_eq!(choice.place.as_deref(), Some("harbour"));
        assert_eq!(choice.warnings.len(), 1, "{:?}", choice.warnings);
        assert!(choice.warnings[0].contains("dragons"));
        let choice = v.choose_given(&[], Some("the moon"));
        assert!(choice.bed_only && choice.place.is_none());
        assert!(choice.warnings[0].contains("the moon"));
    }
}
