//! Catalog vocabulary: the places and sound sources a background engine can
//! play, as plain data handed to the describer (the soundscape's catalog,
//! turned into this by the config). With it the model chooses among them
//! instead of writing free text, and the text's own words are evidence
//! too.
//!
//! A 270M model is a poor writer and, measured on the dev set, a poor
//! chooser of sources too: a quarter to a third of its catalog picks fit
//! the text, and filling scenes with them took the share of fitting
//! sources from 85 % to 78 %. The words of the text are far better
//! evidence where they name a source ("the forge fire", "gulls"). So the
//! sources are the [`MAX_TEXT_SOURCES`] the text names best, and a text
//! that names none gets its place's bed alone; the model chooses the place
//! where the text names none, and the level. README, "Describe", has the
//! measurements behind this.

use serde::{Deserialize, Serialize};

use crate::text::{phrase_score, stems};

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
}

/// The places and sources to choose from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Vocabulary {
    pub places: Vec<Entry>,
    pub sources: Vec<Entry>,
}

/// Most sources taken from the text's words: past the two it names best,
/// precision falls (85 % at two, 83 % at three on the dev set).
pub const MAX_TEXT_SOURCES: usize = 2;
/// Fewest points of lexical evidence that make a source the text's (one
/// keyword; measured on the dev set, see the README).
pub const MIN_TEXT_SCORE: u32 = 1;

/// Where a chosen source came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// The text names it.
    Text,
    /// The model chose it.
    Model,
}

/// A chosen source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenSource {
    pub id: String,
    pub phrase: String,
    pub from: Evidence,
}

/// What the describer chose for one scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogChoice {
    /// A place preset's id, when one was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub place_from: Option<Evidence>,
    pub sources: Vec<ChosenSource>,
    /// Nothing in the text or the answer named a source: the place's
    /// bed plays alone.
    pub bed_only: bool,
}

impl Vocabulary {
    /// The source a catalog phrase (or id) names exactly.
    pub fn source_by_phrase(&self, phrase: &str) -> Option<&Entry> {
        let phrase = phrase.trim();
        self.sources
            .iter()
            .find(|e| e.phrase.eq_ignore_ascii_case(phrase) || e.id == phrase)
    }

    pub fn place_by_phrase(&self, phrase: &str) -> Option<&Entry> {
        let phrase = phrase.trim();
        self.places
            .iter()
            .find(|e| e.phrase.eq_ignore_ascii_case(phrase) || e.id == phrase)
    }

    /// Sources the text names, best first, with their scores (at least
    /// [`MIN_TEXT_SCORE`]).
    pub fn sources_in_text(&self, text: &str) -> Vec<(&Entry, u32)> {
        ranked(&self.sources, text, true)
    }

    /// The place the text names best, if any.
    pub fn place_in_text(&self, text: &str) -> Option<&Entry> {
        ranked(&self.places, text, false)
            .into_iter()
            .next()
            .map(|(e, _)| e)
    }

    /// Combines the text's evidence with the model's answer (its place,
    /// a catalog phrase; `None` when the model gave nothing usable).
    pub fn choose(&self, text: &str, model_place: Option<&str>) -> CatalogChoice {
        let sources: Vec<ChosenSource> = self
            .sources_in_text(text)
            .into_iter()
            .take(MAX_TEXT_SOURCES)
            .map(|(e, _)| chosen(e, Evidence::Text))
            .collect();
        let (place, place_from) = match self.place_in_text(text) {
            Some(e) => (Some(e.id.clone()), Some(Evidence::Text)),
            None => match model_place.and_then(|p| self.place_by_phrase(p)) {
                Some(e) => (Some(e.id.clone()), Some(Evidence::Model)),
                None => (None, None),
            },
        };
        CatalogChoice {
            bed_only: sources.is_empty(),
            place,
            place_from,
            sources,
        }
    }
}

fn chosen(entry: &Entry, from: Evidence) -> ChosenSource {
    ChosenSource {
        id: entry.id.clone(),
        phrase: entry.phrase.clone(),
        from,
    }
}

/// Entries the text names, best first; sources need [`MIN_TEXT_SCORE`],
/// places one keyword.
fn ranked<'v>(entries: &'v [Entry], text: &str, strict: bool) -> Vec<(&'v Entry, u32)> {
    let words = stems(text);
    let floor = if strict { MIN_TEXT_SCORE } else { 1 };
    let mut found: Vec<(&Entry, u32)> = entries
        .iter()
        .map(|e| {
            let phrases = std::iter::once(&e.phrase).chain(&e.synonyms);
            (e, phrase_score(phrases, &e.keywords, &words))
        })
        .filter(|(_, score)| *score >= floor)
        .collect();
    // Stable: ties keep the catalog's order.
    found.sort_by_key(|(_, score)| std::cmp::Reverse(*score));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, phrase: &str, synonyms: &[&str], keywords: &[&str]) -> Entry {
        Entry {
            id: id.into(),
            phrase: phrase.into(),
            synonyms: synonyms.iter().map(|s| (*s).into()).collect(),
            keywords: keywords.iter().map(|s| (*s).into()).collect(),
        }
    }

    fn vocabulary() -> Vocabulary {
        Vocabulary {
            places: vec![
                entry("harbour", "a harbour", &[], &["harbour", "quay", "port"]),
                entry("forest", "a forest", &[], &["forest", "woods"]),
            ],
            sources: vec![
                entry(
                    "seagulls",
                    "seagulls calling",
                    &["gulls calling"],
                    &["gull", "seagull"],
                ),
                entry(
                    "fire",
                    "a fire crackling",
                    &["forge fire"],
                    &["fire", "hearth"],
                ),
                entry(
                    "anvil",
                    "a hammer striking an anvil",
                    &[],
                    &["anvil", "hammer", "smith"],
                ),
                entry("owl", "an owl hooting", &[], &["owl"]),
            ],
        }
    }

    #[test]
    fn sources_come_from_the_text_and_the_place_from_the_model_when_the_text_has_none() {
        let v = vocabulary();
        let choice = v.choose(
            "The smith struck the anvil by the forge fire.",
            Some("a forest"),
        );
        let ids: Vec<&str> = choice.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["fire", "anvil"]);
        assert!(choice.sources.iter().all(|s| s.from == Evidence::Text));
        assert_eq!(choice.place.as_deref(), Some("forest"));
        assert_eq!(choice.place_from, Some(Evidence::Model));

        let choice = v.choose("Gulls wheel over the quay.", Some("a forest"));
        let ids: Vec<&str> = choice.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["seagulls"]);
        assert_eq!(
            choice.place.as_deref(),
            Some("harbour"),
            "the text's place wins"
        );

        let choice = v.choose("It was a long time ago.", Some("a harbour"));
        assert!(choice.bed_only, "no source named: the place's bed alone");
        assert_eq!(choice.place.as_deref(), Some("harbour"));
    }

    #[test]
    fn no_evidence_and_no_answer_is_the_bed_alone() {
        let choice = vocabulary().choose("Thank you for visiting.", None);
        assert!(choice.bed_only && choice.sources.is_empty());
        assert_eq!(choice.place, None);
    }

    #[test]
    fn a_whole_phrase_outranks_keywords() {
        let v = vocabulary();
        let found = v.sources_in_text("The smith lit the forge fire.");
        let ids: Vec<&str> = found.iter().map(|(e, _)| e.id.as_str()).collect();
        assert_eq!(ids, ["fire", "anvil"], "{found:?}");
        assert!(found[0].1 > found[1].1);
    }
}
