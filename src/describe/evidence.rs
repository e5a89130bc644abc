//! The evidence behind a catalog choice, each part scored for every source
//! and place so the record can say why a scene got its sounds:
//! - **words**: the text names the source or place (a whole phrase, or
//!   keywords, in any of the catalog's languages);
//! - **meaning**: the sentence embedding of the text (and of each of its
//!   sentences) is close to the scenes that imply the source ("a ride at
//!   night" → hooves), measured against how close the text is to every
//!   other source, so a text near everything chooses nothing;
//! - **setting**: time of day, season and weather ([`super::setting`]);
//! - **model**: the language model's likelihood of the source's phrase as
//!   the background of the text, calibrated against a text with no content
//!   (it chooses among the best candidates of the others; it never writes).
//!
//! A word is evidence only in its sense: a keyword alone is weak, and
//! needs the meaning (or the setting, or the model) to agree before it
//! plays ("the cabin window" is not rain on a window).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::answer::AmbienceLevel;
use super::embed::{EmbedError, SentenceEncoder, cosine};
use super::scenes::sentences;
use super::setting::Setting;
use super::vocabulary::{Entry, Vocabulary};
use crate::text::{phrase_score, stems};

/// Where the sentence-embedding model is, and where its catalog index is
/// kept between starts.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderPaths {
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
    /// Folder for the embedded catalog (made again when missing or stale).
    pub cache_dir: Option<PathBuf>,
}

/// Which evidence the describer uses (all of it by default; the bench
/// turns parts off to measure each one's share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceParts {
    pub meaning: bool,
    pub setting: bool,
    pub model: bool,
}

impl Default for EvidenceParts {
    fn default() -> Self {
        Self {
            meaning: true,
            setting: true,
            model: true,
        }
    }
}

/// Weight of the meaning, per standard deviation above the catalog's mean
/// similarity (tuned on both development sets, README "Describe").
const W_MEANING: f32 = 0.30;
/// Similarity below which the meaning says nothing (a text about nothing
/// in particular is about 0.1 from every scene).
const MEANING_FLOOR: f32 = 0.20;
/// The similarity over which the meaning counts in full.
const MEANING_FULL: f32 = 0.45;
/// Weight of the model, per standard deviation above the candidates' mean.
const W_MODEL: f32 = 0.15;
/// One keyword's weight in an English text, and in another language.
const KEYWORD_WEIGHT: f32 = 0.5;
const FOREIGN_KEYWORD_WEIGHT: f32 = 0.6;
/// A source plays when its total reaches this.
const SOURCE_THRESHOLD: f32 = 0.60;
/// A second or third source must also be this close to the first.
const FOLLOWER_RATIO: f32 = 0.60;
/// Most sources chosen for one scene.
pub(crate) const MAX_SOURCES: usize = 3;
/// Candidates the model is asked about.
pub(crate) const MODEL_CANDIDATES: usize = 8;
/// Place candidates the model is asked about.
pub(crate) const MODEL_PLACE_CANDIDATES: usize = 4;

/// One entry's scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// The text's own words: 1 for a whole phrase, 0.5 a keyword (0.6 in
    /// a text that is not English; two at most).
    pub words: f32,
    /// Cosine similarity of the text to the entry's closest scene.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The meaning's share of the total.
    pub meaning: f32,
    /// The setting's push.
    pub setting: f32,
    /// The model's log-likelihood of the phrase after the text over after
    /// a text with no content, in nats (asked candidates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model_lp: Option<f32>,
    /// The model's share of the total: that ratio's standing among the
    /// candidates asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<f32>,
    pub total: f32,
}

impl Scores {
    fn sum(&mut self) {
        self.total = self.words + self.meaning + self.setting + self.model.unwrap_or(0.0);
    }

    /// The part that gave most.
    pub(crate) fn strongest(&self) -> EvidenceKind {
        let parts = [
            (EvidenceKind::Text, self.words),
            (EvidenceKind::Meaning, self.meaning),
            (EvidenceKind::Setting, self.setting),
            (EvidenceKind::Model, self.model.unwrap_or(0.0)),
        ];
        parts
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(EvidenceKind::Text, |(k, _)| k)
    }
}

/// Which evidence chose an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceKind {
    /// The text names it.
    Text,
    /// The text's meaning is close to scenes that imply it.
    Meaning,
    /// The time of day, season or weather.
    Setting,
    /// The language model.
    Model,
    /// A job file's `sounds` or `place`.
    Override,
}

/// The catalog's descriptions, embedded once (and kept in a file).
pub struct SceneIndex {
    encoder: SentenceEncoder,
    sources: Vec<Vec<Vec<f32>>>,
    places: Vec<Vec<Vec<f32>>>,
    levels: Vec<(AmbienceLevel, Vec<f32>)>,
}

impl std::fmt::Debug for SceneIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SceneIndex")
            .field("sources", &self.sources.len())
            .field("places", &self.places.len())
            .finish_non_exhaustive()
    }
}

/// How busy a scene sounds, as scenes the embedding compares a text with.
const LEVEL_SCENES: &[(AmbienceLevel, &str)] = &[
    (
        AmbienceLevel::Quiet,
        "a still, silent night; an empty room; a lonely place where nothing moves",
    ),
    (
        AmbienceLevel::Moderate,
        "an ordinary day; people at work; a walk outdoors",
    ),
    (
        AmbienceLevel::Busy,
        "a crowded, bustling market; a raging storm; a battle; a busy factory floor",
    ),
];

/// What one entry is compared by: its phrase and its scenes.
fn descriptions(entry: &Entry) -> Vec<String> {
    std::iter::once(entry.phrase.clone())
        .chain(entry.scenes.iter().cloned())
        .collect()
}

impl SceneIndex {
    /// Loads the encoder and embeds the vocabulary's descriptions, or reads
    /// them from the cache when the model and descriptions are unchanged.
    pub fn load(paths: &EmbedderPaths, vocabulary: &Vocabulary) -> Result<Self, EmbedError> {
        let encoder = SentenceEncoder::load(&paths.weights, &paths.tokenizer)?;
        let texts: Vec<String> = vocabulary
            .sources
            .iter()
            .chain(&vocabulary.places)
            .flat_map(descriptions)
            .chain(LEVEL_SCENES.iter().map(|(_, s)| (*s).to_owned()))
            .collect();
        let key = cache_key(&paths.weights, &texts);
        let cache_file = paths
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("scene-index-{key}.f32")));
        let cached = cache_file
            .as_deref()
            .and_then(|f| read_cache(f, texts.len()));
        let embedded = match cached {
            Some(vectors) => vectors,
            None => {
                let started = std::time::Instant::now();
                let vectors = encoder.embed_all(&texts)?;
                tracing::info!(
                    descriptions = texts.len(),
                    seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                    "catalog descriptions embedded"
                );
                if let Some(file) = &cache_file {
                    write_cache(file, &vectors);
                }
                vectors
            }
        };
        let mut rest = embedded.into_iter();
        let mut take = |entries: &[Entry]| -> Vec<Vec<Vec<f32>>> {
            entries
                .iter()
                .map(|e| rest.by_ref().take(descriptions(e).len()).collect())
                .collect()
        };
        let sources = take(&vocabulary.sources);
        let places = take(&vocabulary.places);
        let levels = LEVEL_SCENES
            .iter()
            .map(|(level, _)| (*level, rest.next().unwrap_or_default()))
            .collect();
        Ok(Self {
            encoder,
            sources,
            places,
            levels,
        })
    }

    /// The text's closest similarity to each source's and place's scenes,
    /// over the whole text and each of its sentences (one sentence can
    /// carry the scene: "and the whole wood was filling with white"), and
    /// its closest ambience level.
    fn similarities(&self, text: &str) -> Result<Similarities, EmbedError> {
        let mut units: Vec<&str> = vec![text];
        let parts = sentences(text);
        if parts.len() > 1 {
            units.extend(parts.into_iter().take(12));
        }
        let vectors = self.encoder.embed_all(&units)?;
        let closest = |entries: &[Vec<Vec<f32>>]| -> Vec<f32> {
            entries
                .iter()
                .map(|descs| {
                    descs
                        .iter()
                        .flat_map(|d| vectors.iter().map(move |u| cosine(u, d)))
                        .fold(f32::MIN, f32::max)
                })
                .collect()
        };
        let whole = &vectors[0];
        let level = self
            .levels
            .iter()
            .map(|(level, v)| (*level, cosine(whole, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l);
        Ok(Similarities {
            sources: closest(&self.sources),
            places: closest(&self.places),
            level,
        })
    }
}

struct Similarities {
    sources: Vec<f32>,
    places: Vec<f32>,
    level: Option<AmbienceLevel>,
}

/// Every source's and place's scores for one scene, before the choice.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Gathered {
    /// The text reads as English: the embedding understands it, and a
    /// keyword is one piece of evidence among several. In other languages
    /// the embedding (an English model) hears little, so the words the
    /// catalog knows in that language count for more.
    pub(crate) english: bool,
    pub sources: Vec<Scores>,
    pub places: Vec<Scores>,
    pub setting: Setting,
    pub level: Option<AmbienceLevel>,
    /// Evidence that could not be had, and why.
    pub missing: Vec<String>,
}

/// Scores every entry of `vocabulary` for `text` from its words, its
/// meaning (when `index` is there) and its setting.
pub(crate) fn gather(
    vocabulary: &Vocabulary,
    text: &str,
    index: Option<&SceneIndex>,
    parts: EvidenceParts,
) -> Gathered {
    let words = stems(text);
    let english = looks_english(&words);
    let keyword_weight = if english {
        KEYWORD_WEIGHT
    } else {
        FOREIGN_KEYWORD_WEIGHT
    };
    let setting = if parts.setting {
        Setting::from_words(&words)
    } else {
        Setting::default()
    };
    let mut missing = Vec::new();
    let similarities = match index.filter(|_| parts.meaning) {
        Some(index) => match index.similarities(text) {
            Ok(s) => Some(s),
            Err(e) => {
                missing.push(format!("meaning: {e}"));
                None
            }
        },
        None => None,
    };
    let score_all = |entries: &[Entry], sims: Option<&Vec<f32>>, with_setting: bool| {
        let meanings = sims.map(|s| meaning_scores(s));
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut s = Scores {
                    words: word_score(e, &words, keyword_weight),
                    similarity: sims.map(|s| s[i]),
                    meaning: meanings.as_ref().map_or(0.0, |m| m[i]),
                    setting: if with_setting {
                        setting.effect_on(&e.id)
                    } else {
                        0.0
                    },
                    model_lp: None,
                    model: None,
                    total: 0.0,
                };
                s.sum();
                s
            })
            .collect::<Vec<_>>()
    };
    let sources = score_all(
        &vocabulary.sources,
        similarities.as_ref().map(|s| &s.sources),
        true,
    );
    let places = score_all(
        &vocabulary.places,
        similarities.as_ref().map(|s| &s.places),
        false,
    );
    Gathered {
        english,
        sources,
        places,
        setting,
        level: similarities.and_then(|s| s.level),
        missing,
    }
}

/// Words: a whole phrase 1, keywords `keyword_weight` each (two at most).
fn word_score(entry: &Entry, words: &[String], keyword_weight: f32) -> f32 {
    let phrases = std::iter::once(&entry.phrase).chain(&entry.synonyms);
    let score = phrase_score(phrases, &entry.keywords, words);
    // phrase_score gives a whole phrase 3 and more, a keyword 1.
    if score >= 3 {
        1.0
    } else {
        keyword_weight * score.min(2) as f32
    }
}

/// English function words: a text with few of them is in another
/// language (or script).
const ENGLISH_WORDS: &[&str] = &[
    "the", "and", "of", "to", "in", "on", "with", "was", "is", "were", "his", "her", "their", "it",
    "at", "from", "by", "for", "as", "that", "this", "you", "we", "they", "a", "an",
];

/// True when at least one word in twelve is an English function word
/// (English prose runs at one in three or four; German, French and
/// Spanish share a few, such as "in" and "a").
pub(crate) fn looks_english(words: &[String]) -> bool {
    let hits = words
        .iter()
        .filter(|w| ENGLISH_WORDS.contains(&w.as_str()))
        .count();
    !words.is_empty() && hits * 12 >= words.len()
}

/// Each similarity's standing among all of them, gated by how close it
/// is at all.
fn meaning_scores(sims: &[f32]) -> Vec<f32> {
    sims.iter()
        .zip(standings(sims, 0.03))
        .map(|(&s, z)| {
            let gate = ((s - MEANING_FLOOR) / (MEANING_FULL - MEANING_FLOOR)).clamp(0.0, 1.0);
            W_MEANING * z.max(0.0) * gate
        })
        .collect()
}

/// How many standard deviations each value stands above the values' mean
/// (the deviation no smaller than `min_sd`, so near-equal values do not
/// look far apart).
fn standings(values: &[f32], min_sd: f32) -> Vec<f32> {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let sd = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n)
        .sqrt()
        .max(min_sd);
    values.iter().map(|v| (v - mean) / sd).collect()
}

impl Gathered {
    /// The sources (and places) the model should be asked about: the best
    /// by the other evidence, as vocabulary indices.
    pub(crate) fn model_candidates(&self) -> (Vec<usize>, Vec<usize>) {
        // In another language the other evidence is thinner: the model
        // weighs more candidates.
        let sources = if self.english {
            MODEL_CANDIDATES
        } else {
            MODEL_CANDIDATES + MODEL_CANDIDATES / 2
        };
        (
            top(&self.sources, sources),
            top(&self.places, MODEL_PLACE_CANDIDATES),
        )
    }

    /// Adds the model's calibrated log-likelihoods of the asked candidates,
    /// each as its standing among them.
    pub(crate) fn add_model(&mut self, sources: &[(usize, f32)], places: &[(usize, f32)]) {
        fn apply(scores: &mut [Scores], asked: &[(usize, f32)]) {
            let lps: Vec<f32> = asked.iter().map(|a| a.1).collect();
            for (&(i, lp), z) in asked.iter().zip(standings(&lps, 0.5)) {
                if let Some(s) = scores.get_mut(i) {
                    s.model_lp = Some(lp);
                    s.model = Some(W_MODEL * z);
                    s.sum();
                }
            }
        }
        apply(&mut self.sources, sources);
        apply(&mut self.places, places);
    }
}

/// Indices of the `n` best totals, best first (ties in catalog order).
fn top(scores: &[Scores], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total.total_cmp(&scores[a].total));
    order.truncate(n);
    order
}

/// Sources of one family are the same sound again (light and heavy rain,
/// gusts and howling wind): a scene gets one of each.
pub(crate) fn family(id: &str) -> &str {
    for prefix in ["rain-", "wind-", "footsteps-", "hooves-"] {
        if id.starts_with(prefix) {
            return prefix;
        }
    }
    id
}

/// The sources to play: the best that reach the threshold, one a family,
/// followers close enough to the first, at most `max`. The room tone is a
/// bed, never a foreground source of its own.
pub(crate) fn choose_sources(vocabulary: &Vocabulary, scores: &[Scores], max: usize) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::new();
    for i in top(scores, scores.len()) {
        let total = scores[i].total;
        let id = &vocabulary.sources[i].id;
        let first = chosen.first().map(|&f| scores[f].total);
        if total < SOURCE_THRESHOLD || first.is_some_and(|f| total < f * FOLLOWER_RATIO) {
            break;
        }
        if id == "room-tone"
            || chosen
                .iter()
                .any(|&c| family(&vocabulary.sources[c].id) == family(id))
        {
            continue;
        }
        chosen.push(i);
        if chosen.len() >= max {
            break;
        }
    }
    chosen
}

/// The place: the best total, when anything speaks for one.
pub(crate) fn choose_place(scores: &[Scores]) -> Option<usize> {
    top(scores, 1)
        .into_iter()
        .next()
        .filter(|&i| scores[i].total > 0.0)
}

/// A cache key for the index: the model file's size and time and the
/// descriptions (hashing 90 MB of weights at every start would cost more
/// than it saves).
fn cache_key(weights: &Path, texts: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    if let Ok(meta) = std::fs::metadata(weights) {
        hasher.update(meta.len().to_le_bytes());
        if let Ok(modified) = meta.modified()
            && let Ok(since) = modified.duration_since(std::time::UNIX_EPOCH)
        {
            hasher.update(since.as_nanos().to_le_bytes());
        }
    }
    for t in texts {
        hasher.update(t.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..12])
}

const VECTOR_LEN: usize = 384;

fn read_cache(file: &Path, count: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(file).ok()?;
    if bytes.len() != count * VECTOR_LEN * 4 {
        tracing::warn!(file = %file.display(), "the catalog index cache has the wrong size; embedding again");
        return None;
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(values.chunks(VECTOR_LEN).map(<[f32]>::to_vec).collect())
}

/// Best effort: a cache that cannot be written is made again next start.
fn write_cache(file: &Path, vectors: &[Vec<f32>]) {
    use std::io::Write;
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = crate::fsutil::AtomicFile::create(file)?;
        for v in vectors {
            for x in v {
                out.write_all(&x.to_le_bytes())?;
            }
        }
        out.commit()
    })();
    if let Err(e) = result {
        tracing::warn!(file = %file.display(), error = %e, "cannot keep the catalog index; it is embedded again at the next start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, keywords: &[&str]) -> Entry {
        Entry {
            id: id.into(),
            phrase: format!("{id} sounding"),
            synonyms: Vec::new(),
            keywords: keywords.iter().map(|s| (*s).into()).collect(),
            scenes: Vec::new(),
        }
    }

    fn vocabulary() -> Vocabulary {
        Vocabulary {
            places: vec![entry("harbour", &["quay"]), entry("forest", &["woods"])],
            sources: vec![
                entry("rain-window", &["window"]),
                entry("rain-heavy", &["downpour"]),
                entry("owl", &["owl"]),
                entry("crickets", &["crickets"]),
                entry("room-tone", &["quiet"]),
            ],
        }
    }

    #[test]
    fn a_keyword_alone_is_weak_evidence() {
        let v = vocabulary();
        let g = gather(
            &v,
            "A lamp showed in a farmhouse window.",
            None,
            EvidenceParts::default(),
        );
        assert!(
            choose_sources(&v, &g.sources, MAX_SOURCES).is_empty(),
            "one keyword does not play: {:?}",
            g.sources
        );
        // The same keyword with the setting agreeing does.
        let g = gather(
            &v,
            "The owl called in the night.",
            None,
            EvidenceParts::default(),
        );
        let chosen = choose_sources(&v, &g.sources, MAX_SOURCES);
        assert_eq!(chosen, [2], "{:?}", g.sources);
        assert_eq!(g.sources[2].strongest(), EvidenceKind::Setting);
    }

    #[test]
    fn one_source_of_a_family_and_never_the_room_tone() {
        let v = vocabulary();
        let mut scores = vec![Scores::default(); 5];
        for (i, t) in [(0, 1.0), (1, 1.4), (4, 2.0), (3, 0.9)] {
            scores[i].total = t;
        }
        assert_eq!(choose_sources(&v, &scores, MAX_SOURCES), [1, 3]);
        assert_eq!(family("footsteps-snow"), family("footsteps-wood"));
    }

    #[test]
    fn the_model_moves_candidates_by_their_standing() {
        let v = vocabulary();
        let mut g = gather(&v, "Rain and crickets.", None, EvidenceParts::default());
        let before = g.sources[3].total;
        g.add_model(&[(1, -2.0), (3, 1.0)], &[]);
        assert!(g.sources[3].total > before);
        assert!(g.sources[1].model.is_some_and(|m| m < 0.0));
    }

    #[test]
    fn meaning_needs_both_standing_and_closeness() {
        // Everything equally (un)related: nothing stands out.
        assert!(meaning_scores(&[0.1; 10]).iter().all(|&m| m == 0.0));
        // One close scene among far ones.
        let mut sims = vec![0.15; 10];
        sims[4] = 0.5;
        let m = meaning_scores(&sims);
        assert!(m[4] > SOURCE_THRESHOLD && m.iter().filter(|&&x| x > 0.0).count() == 1);
        // Standing out but not close: a text about nothing in particular.
        let mut sims = vec![0.05; 10];
        sims[4] = 0.2;
        assert_eq!(meaning_scores(&sims)[4], 0.0);
    }
}
