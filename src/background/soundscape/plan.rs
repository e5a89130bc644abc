//! From what a scene asks for to what plays: the matcher that maps sound
//! phrases and places onto the catalog, and the seeded plan of layers
//! (source, gain, pan, distance, density) the renderer plays.

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Place, Source};
use super::dsp::Rng;

/// How busy a scene is: how many sources play and how dense their events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Quiet,
    #[default]
    Moderate,
    Busy,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Quiet, Level::Moderate, Level::Busy];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Quiet => "quiet",
            Level::Moderate => "moderate",
            Level::Busy => "busy",
        }
    }

    /// Most foreground sources that play at this level.
    pub(crate) fn max_sources(self) -> usize {
        match self {
            Level::Quiet => 2,
            Level::Moderate => 3,
            Level::Busy => 5,
        }
    }

    /// Event rates are scaled by this.
    pub(crate) fn density(self) -> f32 {
        match self {
            Level::Quiet => 0.5,
            Level::Moderate => 1.0,
            Level::Busy => 1.7,
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim().to_lowercase())
            .ok_or_else(|| format!("unknown level `{s}`: use quiet, moderate or busy"))
    }
}

/// What a scene asks the soundscape for: the describer's structured
/// answer when there is one, else a caption to read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SceneInput {
    pub caption: String,
    /// The place, as a phrase ("a harbour at dusk") or a place id.
    pub place: Option<String>,
    /// Sound phrases ("gulls calling") or source ids.
    pub sounds: Vec<String>,
    pub level: Option<Level>,
    /// The describer chose no source: the place's bed plays alone, and the
    /// caption is not read for sources.
    pub bed_only: bool,
    /// The narration the scene accompanies, read only for what a
    /// caption leaves out: the variants of the chosen sources (a horse's
    /// gait, the ground under it).
    pub text: String,
}

/// Why a layer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A sound the scene asked for.
    Source,
    /// The place's own bed.
    Bed,
}

/// One source as it plays in the scene.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedLayer {
    pub source: String,
    pub role: Role,
    /// The phrase it was matched from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) matched: Option<String>,
    /// Level in the scene, dB (the source's own calibration comes on top).
    pub gain_db: f32,
    /// -1 (left) to 1 (right).
    pub pan: f32,
    /// 0 (close) to 1 (far): darker, quieter, more reverberant.
    pub distance: f32,
    /// Event rate factor.
    pub(crate) density: f32,
    /// The library recordings it plays, when the sound library serves
    /// it (else its recipe plays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recordings: Vec<std::path::PathBuf>,
    /// The source's variants the scene's words chose (its recipe's
    /// `variant`s: "trot", "soft ground").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
}

/// Everything that decides a soundscape, besides its length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenePlan {
    pub place: String,
    /// The phrase or words that chose the place, if any did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) place_matched: Option<String>,
    pub level: Level,
    pub layers: Vec<PlannedLayer>,
    /// Sound phrases no catalog source matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmatched: Vec<String>,
    pub seed: u64,
    /// Said when nothing was recognizable and the place's bed plays alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The place used when nothing names one.
pub(crate) const DEFAULT_PLACE: &str = "open-air";

pub use crate::text::stems;
use crate::text::{keyword_hits, phrase_score};

/// How well `words` (stemmed) name `source`: a whole synonym (or its
/// phrase) counts 3 plus its length, each keyword found counts 1.
pub fn score(source: &Source, words: &[String]) -> u32 {
    phrase_score(
        std::iter::once(&source.phrase).chain(&source.synonyms),
        &source.keywords,
        words,
    )
}

/// The catalog source a sound phrase names best (a source id matches
/// itself), with its score; ties go to the earlier source.
pub(crate) fn match_source<'c>(catalog: &'c Catalog, phrase: &str) -> Option<(&'c Source, u32)> {
    if let Some(source) = catalog.source(phrase.trim()) {
        return Some((source, u32::MAX));
    }
    let words = stems(phrase);
    let mut best: Option<(&Source, u32)> = None;
    for source in &catalog.sources {
        let s = score(source, &words);
        if s > 0 && best.is_none_or(|(_, b)| s > b) {
            best = Some((source, s));
        }
    }
    best
}

/// Every source a caption names, best first.
pub(crate) fn sources_in<'c>(catalog: &'c Catalog, caption: &str) -> Vec<(&'c Source, u32)> {
    let words = stems(caption);
    let mut found: Vec<(&Source, u32)> = catalog
        .sources
        .iter()
        .map(|s| (s, score(s, &words)))
        .filter(|(_, s)| *s > 0)
        .collect();
    found.sort_by_key(|(_, score)| std::cmp::Reverse(*score));
    found
}

/// The place a phrase names (a place id matches itself).
pub fn match_place<'c>(catalog: &'c Catalog, phrase: &str) -> Option<&'c Place> {
    if let Some(place) = catalog.place(phrase.trim()) {
        return Some(place);
    }
    let words = stems(phrase);
    let mut best: Option<(&Place, usize)> = None;
    for place in &catalog.places {
        let hits = keyword_hits(&place.keywords, &words);
        if hits > 0 && best.is_none_or(|(_, b)| hits > b) {
            best = Some((place, hits));
        }
    }
    best.map(|(p, _)| p)
}

/// The sources a scene names, in order, each with the phrase that named
/// it; and the sound phrases that named none.
type Chosen<'c> = (Vec<(&'c Source, Option<String>)>, Vec<String>);

fn choose_sources<'c>(catalog: &'c Catalog, input: &SceneInput) -> Chosen<'c> {
    let mut chosen: Vec<(&Source, Option<String>)> = Vec::new();
    let mut unmatched = Vec::new();
    let mut add = |source: &'c Source, phrase: &str| {
        if !chosen.iter().any(|(s, _)| s.id == source.id) {
            chosen.push((source, Some(phrase.to_owned())));
        }
    };
    if input.bed_only {
        // Nothing chosen, on purpose: the place's bed alone.
    } else if input.sounds.is_empty() {
        // A caption names each sound once: a source that only shares a
        // word with one already chosen of its kind ("rain" after "heavy
        // rain") is the same sound again, not another one.
        let mut kinds = Vec::new();
        for (source, score) in sources_in(catalog, &input.caption) {
            if score < 3 && kinds.contains(&source.category) {
                continue;
            }
            kinds.push(source.category);
            add(source, &input.caption);
        }
    } else {
        for phrase in &input.sounds {
            match match_source(catalog, phrase) {
                Some((source, _)) => add(source, phrase),
                None => unmatched.push(phrase.clone()),
            }
        }
    }
    (chosen, unmatched)
}

/// Builds the plan of a scene, seeded by `seed`.
pub fn plan(catalog: &Catalog, input: &SceneInput, seed: u64) -> ScenePlan {
    let level = input.level.unwrap_or_default();
    let (mut chosen, unmatched) = choose_sources(catalog, input);
    chosen.truncate(level.max_sources());

    let (place, place_matched) = choose_place(catalog, input);
    let mut rng = Rng::new(seed ^ 0x706c_616e);
    let mut layers = Vec::new();
    // Foreground sources: the first named is the loudest; positions spread
    // across the front, shuffled by the seed.
    let count = chosen.len();
    let mut slots: Vec<f32> = (0..count)
        .map(|i| {
            if count == 1 {
                0.0
            } else {
                -0.6 + 1.2 * i as f32 / (count - 1) as f32
            }
        })
        .collect();
    for i in (1..slots.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        slots.swap(i, j);
    }
    for (index, (source, phrase)) in chosen.iter().enumerate() {
        let words = stems(&format!(
            "{} {} {}",
            phrase.as_deref().unwrap_or_default(),
            input.caption,
            input.text
        ));
        layers.push(PlannedLayer {
            variants: variants_named(source, &words),
            source: source.id.clone(),
            role: Role::Source,
            matched: phrase.clone(),
            gain_db: -[0.0, 2.0, 3.5, 4.5, 5.5][index.min(4)],
            pan: slots[index] + 0.1 * rng.signed(),
            distance: (place.distance + 0.15 * rng.signed()).clamp(0.0, 1.0),
            density: level.density(),
            recordings: Vec::new(),
        });
    }
    // The place's beds: quieter under sources, the whole scene without.
    let bed_gain = if count == 0 { 0.0 } else { -15.0 };
    for bed in &place.beds {
        if layers.iter().any(|l| &l.source == bed) {
            continue;
        }
        let Some(source) = catalog.source(bed) else {
            continue;
        };
        layers.push(PlannedLayer {
            source: source.id.clone(),
            role: Role::Bed,
            matched: None,
            gain_db: bed_gain,
            pan: 0.0,
            distance: 0.7,
            density: level.density(),
            recordings: Vec::new(),
            variants: Vec::new(),
        });
    }
    let note = (count == 0).then(|| {
        if input.sounds.is_empty() {
            format!(
                "nothing in the caption matched a catalog source: the place's bed ({}) plays alone",
                place.id
            )
        } else {
            format!(
                "no sound matched a catalog source: the place's bed ({}) plays alone",
                place.id
            )
        }
    });
    ScenePlan {
        place: place.id.clone(),
        place_matched,
        level,
        layers,
        unmatched,
        seed,
        note,
    }
}

/// The variants of `source` that `words` (stemmed) choose.
fn variants_named(source: &Source, words: &[String]) -> Vec<String> {
    source
        .variants
        .iter()
        .filter(|v| keyword_hits(&v.words, words) > 0)
        .map(|v| v.name.clone())
        .collect()
}

/// The place: named by the scene, else implied by its sounds or caption,
/// else open air.
fn choose_place<'c>(catalog: &'c Catalog, input: &SceneInput) -> (&'c Place, Option<String>) {
    if let Some(phrase) = &input.place
        && let Some(place) = match_place(catalog, phrase)
    {
        return (place, Some(phrase.clone()));
    }
    let context = if input.caption.trim().is_empty() {
        input.sounds.join(", ")
    } else {
        input.caption.clone()
    };
    if let Some(place) = match_place(catalog, &context) {
        return (place, Some(context));
    }
    let fallback = catalog
        .place(DEFAULT_PLACE)
        .or_else(|| catalog.places.first())
        .expect("the catalog has places (checked by its tests)");
    (fallback, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(phrase: &str) -> Option<String> {
        match_source(Catalog::builtin(), phrase).map(|(s, _)| s.id.clone())
    }

    #[test]
    fn phrases_match_the_sources_they_name() {
        for (phrase, id) in [
            ("gulls calling overhead", "seagulls"),
            ("waves crashing on the rocks", "sea-surf"),
            ("rain drumming on the roof", "rain-roof"),
            ("a fire crackling", "fire"),
            ("the crackle of burning logs", "fire"),
            ("a church bell tolling", "church-bell"),
            ("horses' hooves clopping on cobblestones", "hooves-walk"),
            ("a horse galloping", "hooves-gallop"),
            ("ropes creaking", "creaking-wood"),
            ("crickets chirping", "crickets"),
            ("a clock ticking", "clock"),
            ("footsteps crunching on gravel", "footsteps-gravel"),
            ("a steam locomotive", "steam-train"),
            ("cups clinking", "dishes"),
            ("water lapping against the hull", "water-lapping"),
            ("heavy rain", "rain-heavy"),
            ("owl", "owl"),
            ("church-bell", "church-bell"),
        ] {
            assert_eq!(matched(phrase).as_deref(), Some(id), "{phrase}");
        }
        assert_eq!(matched("a distant murmur of ideas"), None);
    }

    #[test]
    fn places_are_found_by_phrase_or_implied() {
        let catalog = Catalog::builtin();
        assert_eq!(
            match_place(catalog, "a busy harbour at dawn").unwrap().id,
            "harbour"
        );
        assert_eq!(
            match_place(catalog, "inside the old cathedral").unwrap().id,
            "church"
        );
        assert_eq!(match_place(catalog, "cave").unwrap().id, "cave");
        let input = SceneInput {
            caption: String::new(),
            place: Some("somewhere nice".into()),
            sounds: vec!["waves on the beach".into()],
            level: None,
            bed_only: false,
            text: String::new(),
        };
        assert_eq!(plan(catalog, &input, 1).place, "coast");
    }

    #[test]
    fn the_plan_is_seeded_and_keeps_to_the_level() {
        let catalog = Catalog::builtin();
        let input = SceneInput {
            caption: String::new(),
            place: Some("a harbour".into()),
            sounds: vec![
                "gulls".into(),
                "ropes creaking".into(),
                "a ship's bell".into(),
                "nonsense words here".into(),
            ],
            level: Some(Level::Quiet),
            bed_only: false,
            text: String::new(),
        };
        let a = plan(catalog, &input, 7);
        assert_eq!(a, plan(catalog, &input, 7));
        assert_ne!(a, plan(catalog, &input, 8));
        let sources: Vec<&str> = a
            .layers
            .iter()
            .filter(|l| l.role == Role::Source)
            .map(|l| l.source.as_str())
            .collect();
        assert_eq!(
            sources,
            ["seagulls", "creaking-wood"],
            "two at a quiet level"
        );
        assert_eq!(a.unmatched, ["nonsense words here"]);
        assert!(
            a.layers
                .iter()
                .any(|l| l.role == Role::Bed && l.source == "water-lapping")
        );
    }

    #[test]
    fn a_caption_names_each_sound_once() {
        let input = SceneInput {
            caption: "Heavy rain, thunder and the wind howling around a cottage".into(),
            level: Some(Level::Busy),
            bed_only: false,
            ..SceneInput::default()
        };
        let p = plan(Catalog::builtin(), &input, 1);
        let sources: Vec<&str> = p
            .layers
            .iter()
            .filter(|l| l.role == Role::Source)
            .map(|l| l.source.as_str())
            .collect();
        for id in ["rain-heavy", "thunder", "wind-howling"] {
            assert!(sources.contains(&id), "{id}: {sources:?}");
        }
        assert!(
            !sources.contains(&"rain-light") && !sources.contains(&"wind-gusts"),
            "{sources:?}"
        );
        assert_eq!(p.place, "small-room");
    }

    #[test]
    fn nothing_recognizable_plays_the_place_bed_and_says_so() {
        let catalog = Catalog::builtin();
        let input = SceneInput {
            caption: "an abstract feeling of gratitude".into(),
            ..SceneInput::default()
        };
        let p = plan(catalog, &input, 1);
        assert_eq!(p.place, DEFAULT_PLACE);
        assert!(!p.layers.is_empty());
        assert!(p.layers.iter().all(|l| l.role == Role::Bed));
        assert!(p.note.as_deref().unwrap().contains("bed"));
    }

    #[test]
    fn the_words_choose_a_sources_variants() {
        let variants = |caption: &str, text: &str| {
            let input = SceneInput {
                caption: caption.into(),
                text: text.into(),
                ..SceneInput::default()
            };
            let p = plan(Catalog::builtin(), &input, 1);
            let layer = p.layers.iter().find(|l| l.source.starts_with("hooves"));
            layer.map(|l| (l.source.clone(), l.variants.clone()))
        };
        let walk = |v: &[&str]| {
            Some((
                "hooves-walk".to_owned(),
                v.iter().map(|s| s.to_string()).collect(),
            ))
        };
        assert_eq!(variants("a horse walking on cobblestones", ""), walk(&[]));
        assert_eq!(variants("a horse trotting on cobbles", ""), walk(&["trot"]));
        // The narration tells what the caption left out.
        assert_eq!(
            variants(
                "a horse walking",
                "The old mare trotted across the muddy field."
            ),
            walk(&["trot", "soft ground"])
        );
        assert_eq!(
            variants("a horse galloping across the meadow", ""),
            Some(("hooves-gallop".to_owned(), vec!["soft ground".to_owned()]))
        );
    }
}
