//! Describe: the background sound scene for a narration: a caption, and
//! the catalog's sources, place and level, which the soundscape plays (and
//! the caption, which AudioLDM2 generates from).
//!
//! Three methods, as in the paper and for the operator:
//! - `llm` (method 1, the default): a small local language model names the
//!   place and the sounds there ([`llm`], [`prompt`]); vivid turns its
//!   answer into an AudioCaps-style caption that keeps the rules
//!   ([`caption`]).
//! - `text` (method 2, the paper's baseline): the narration itself, cut to
//!   what the text encoders read.
//! - `fixed`: the operator's own caption.
//!
//! A long text is split into scenes ([`scenes`]), each with its own caption
//! and its span in the text. When the model cannot be loaded, fails, runs
//! past its time bound or gives nothing usable, that scene falls back to
//! `text`, and the record says why: a narration is never lost to a caption.

pub mod answer;
pub mod caption;
pub mod embed;
pub mod evidence;
pub mod llm;
pub mod prompt;
pub mod scenes;
pub mod setting;
pub mod vocabulary;

use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use answer::{AmbienceLevel, SoundAnswer};
pub use evidence::{EmbedderPaths, EvidenceParts, SceneIndex};
pub use llm::{LlmDescriber, LlmError, LlmOptions, LlmStats, Sampling};
pub use prompt::PromptStyle;
pub use scenes::SceneBounds;
pub use vocabulary::{CatalogChoice, Vocabulary, VocabularyChoice};

/// How a caption is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The language model describes the sound scene (method 1).
    Llm,
    /// The narration itself is the caption (method 2).
    Text,
    /// The operator's own caption.
    Fixed,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Llm => "llm",
            Method::Text => "text",
            Method::Fixed => "fixed",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Method, String> {
        match s.trim().to_lowercase().as_str() {
            "llm" => Ok(Method::Llm),
            "text" => Ok(Method::Text),
            "fixed" => Ok(Method::Fixed),
            other => Err(format!("unknown method `{other}`: use llm, text or fixed")),
        }
    }
}

#[derive(Debug, Error)]
pub enum DescribeError {
    #[error("method `fixed` needs a caption (describe.caption in the config, or --caption)")]
    NoFixedCaption,
    #[error("the text has nothing to describe (it is empty or white space)")]
    EmptyText,
}

/// Everything the describer needs to know.
#[derive(Debug, Clone)]
pub struct DescribeSettings {
    pub method: Method,
    /// GGUF model for `llm`.
    pub model: PathBuf,
    /// `None`: chosen from the model (chat template or not).
    pub prompt: Option<PromptStyle>,
    /// The caption for `fixed`.
    pub caption: Option<String>,
    pub seed: u32,
    pub temperature: f32,
    /// Bound on one caption; past it the scene falls back to `text`.
    pub timeout: Duration,
    pub scenes: SceneBounds,
    pub threads: usize,
    /// Choose among a background engine's places and sources (catalog
    /// mode) instead of writing free text; `None`: free text.
    pub vocabulary: Option<Vocabulary>,
    /// The sentence-embedding model of catalog mode's semantic evidence;
    /// `None`: words, setting and the language model only.
    pub embedder: Option<EmbedderPaths>,
    /// Which evidence catalog mode weighs (all, unless a benchmark asks).
    pub evidence: EvidenceParts,
}

/// What one call may ask differently from the describer's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CallOptions {
    pub method: Option<Method>,
    /// The caption of method `fixed`.
    pub caption: Option<String>,
    pub seed: Option<u32>,
    /// Catalog mode: the sources to play, by id or phrase, instead of the
    /// describer's choice (a job file's `sounds`).
    pub sounds: Option<Vec<String>>,
    /// Catalog mode: the place, by id or phrase (a job file's `place`).
    pub place: Option<String>,
}

/// Method 3: the operator's caption for the whole text. It stands even
/// where it breaks a caption rule; the log says what AudioLDM2 is likely
/// to make of it.
fn fixed_caption(caption: Option<&str>, text: &str) -> Result<String, DescribeError> {
    let caption = caption
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or(DescribeError::NoFixedCaption)?;
    let breaks = caption::rule_breaks(caption, text);
    if !breaks.is_empty() {
        let breaks: Vec<String> = breaks.iter().map(|b| b.to_string()).collect();
        tracing::warn!(caption, rules = %breaks.join("; "), "fixed caption kept although it breaks caption rules");
    }
    Ok(caption.to_owned())
}

/// One scene's caption and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SceneCaption {
    /// Byte range of the scene in the text.
    pub span: Range<usize>,
    /// The same range in characters (Unicode scalar values).
    pub char_span: Range<usize>,
    pub caption: String,
    /// The method that made `caption`.
    pub method: Method,
    /// Why the requested method was not used, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// What method 1 made besides the caption (in the JSON record, its
    /// fields sit beside the caption's).
    #[serde(flatten)]
    pub made: Option<LlmMade>,
    pub seconds: f64,
}

/// What method 1 (`llm`) made for a scene besides its caption.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LlmMade {
    /// Free captions: the model's answer and what became of it.
    Free {
        answer: SoundAnswer,
        /// The sound phrases the caption names.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        sounds: Vec<String>,
        /// Token counts and timings of the model's answer.
        llm: LlmStats,
        /// Sounds of the answer left out of the caption, with the rule
        /// each broke.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        dropped: Vec<(String, String)>,
    },
    /// Catalog mode (also where the model failed and the other evidence
    /// chose).
    Catalog {
        /// The ids of the sources chosen.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        sounds: Vec<String>,
        /// Sources left out of the caption, with the rule each broke.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        dropped: Vec<(String, String)>,
        /// The place and sources chosen, each with where it came from
        /// (the text or the model), or the place's bed alone.
        choice: CatalogChoice,
    },
}

impl SceneCaption {
    /// The sounds the scene names: the caption's phrases (free captions)
    /// or the chosen sources' ids (catalog mode).
    pub fn sounds(&self) -> &[String] {
        match &self.made {
            Some(LlmMade::Free { sounds, .. } | LlmMade::Catalog { sounds, .. }) => sounds,
            None => &[],
        }
    }

    /// The model's answer (free captions).
    pub fn answer(&self) -> Option<&SoundAnswer> {
        match &self.made {
            Some(LlmMade::Free { answer, .. }) => Some(answer),
            _ => None,
        }
    }

    /// Token counts and timings of the model's answer (free captions).
    pub(crate) fn llm_stats(&self) -> Option<LlmStats> {
        match &self.made {
            Some(LlmMade::Free { llm, .. }) => Some(*llm),
            _ => None,
        }
    }

    /// The place and sources chosen (catalog mode).
    pub fn choice(&self) -> Option<&CatalogChoice> {
        match &self.made {
            Some(LlmMade::Catalog { choice, .. }) => Some(choice),
            _ => None,
        }
    }
}

/// The captions of a whole text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Description {
    /// The method asked for.
    pub requested: Method,
    /// The language model, when `llm` was asked for: its file and name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelInfo>,
    pub seed: u32,
    pub scenes: Vec<SceneCaption>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Description {
    /// Scenes that fell back to another method, with the reason.
    pub fn fallbacks(&self) -> impl Iterator<Item = &SceneCaption> {
        self.scenes.iter().filter(|s| s.fallback.is_some())
    }
}

/// Makes captions; keeps the language model loaded between texts.
#[derive(Debug)]
pub struct Describer {
    settings: DescribeSettings,
    llm: Option<LlmDescriber>,
    /// The embedded catalog, once loaded, or why it could not be.
    index: Option<Result<SceneIndex, String>>,
}

impl Describer {
    /// A describer; the model is loaded on first use (or by [`Self::load`]).
    pub fn new(settings: DescribeSettings) -> Self {
        Self {
            settings,
            llm: None,
            index: None,
        }
    }

    pub fn settings(&self) -> &DescribeSettings {
        &self.settings
    }

    /// Loads the language model now, if the method needs one, so a service
    /// pays for it at start and reports a missing model before any job.
    pub fn load(&mut self) -> Result<(), LlmError> {
        if self.settings.method == Method::Llm {
            self.llm_engine()?;
            self.scene_index();
        }
        Ok(())
    }

    /// The embedded catalog, loaded on first use; `None` (with a warning,
    /// once) when there is no embedding model or it cannot be used.
    fn scene_index(&mut self) -> Option<&SceneIndex> {
        if self.index.is_none() {
            let loaded = match (&self.settings.embedder, &self.settings.vocabulary) {
                (Some(paths), Some(vocabulary)) if self.settings.evidence.meaning => {
                    SceneIndex::load(paths, vocabulary).map_err(|e| {
                        tracing::warn!(error = %e, "no semantic evidence: the describer weighs words, setting and the language model only");
                        e.to_string()
                    })
                }
                (None, Some(_)) => Err("no sentence-embedding model is configured".to_owned()),
                _ => Err("semantic evidence is off".to_owned()),
            };
            self.index = Some(loaded);
        }
        self.index.as_ref().and_then(|i| i.as_ref().ok())
    }

    /// Why the semantic evidence is missing, once the describer has tried
    /// to load it (for the report and `vivid doctor`).
    pub(crate) fn index_problem(&self) -> Option<&str> {
        self.index
            .as_ref()
            .and_then(|i| i.as_ref().err())
            .map(String::as_str)
    }

    fn llm_engine(&mut self) -> Result<&mut LlmDescriber, LlmError> {
        let engine = match self.llm.take() {
            Some(engine) => engine,
            None => LlmDescriber::load(
                &self.settings.model,
                &LlmOptions {
                    style: self.settings.prompt,
                    threads: self.settings.threads,
                },
            )?,
        };
        Ok(self.llm.insert(engine))
    }

    /// Captions every scene of `text` with the configured method.
    pub fn describe(&mut self, text: &str) -> Result<Description, DescribeError> {
        self.describe_with(text, self.settings.method)
    }

    /// Captions every scene of `text` with `method`.
    pub(crate) fn describe_with(
        &mut self,
        text: &str,
        method: Method,
    ) -> Result<Description, DescribeError> {
        self.describe_call(
            text,
            &CallOptions {
                method: Some(method),
                ..CallOptions::default()
            },
        )
    }

    /// Captions every scene of `text`, with what this one call asks
    /// differently from the settings (a service job's method, caption or
    /// seed); the settings themselves stay as they are.
    pub(crate) fn describe_call(
        &mut self,
        text: &str,
        options: &CallOptions,
    ) -> Result<Description, DescribeError> {
        let method = options.method.unwrap_or(self.settings.method);
        let seed = options.seed.unwrap_or(self.settings.seed);
        let fixed = options
            .caption
            .clone()
            .or_else(|| self.settings.caption.clone());
        if text.trim().is_empty() {
            return Err(DescribeError::EmptyText);
        }
        let spans = match method {
            // The operator's caption stands for the whole text.
            Method::Fixed => vec![trimmed_span(text)],
            Method::Llm | Method::Text => scenes::split_scenes(text, self.settings.scenes),
        };
        let mut scenes = Vec::with_capacity(spans.len());
        // Character offsets, counted along the text once: scenes are in
        // order and do not overlap.
        let (mut counted_bytes, mut counted_chars) = (0, 0);
        let mut chars_up_to = |byte: usize| {
            counted_chars += text[counted_bytes..byte].chars().count();
            counted_bytes = byte;
            counted_chars
        };
        for span in spans {
            let started = Instant::now();
            let scene_text = &text[span.clone()];
            let char_span = chars_up_to(span.start)..chars_up_to(span.end);
            let mut scene = SceneCaption {
                char_span,
                span,
                caption: String::new(),
                method,
                fallback: None,
                made: None,
                seconds: 0.0,
            };
            match method {
                Method::Fixed => scene.caption = fixed_caption(fixed.as_deref(), text)?,
                Method::Text => scene.caption = caption::text_prompt(scene_text),
                Method::Llm if self.settings.vocabulary.is_some() => {
                    self.catalog_scene(&mut scene, scene_text, options);
                }
                Method::Llm => self.llm_scene(&mut scene, scene_text, seed),
            }
            scene.seconds = started.elapsed().as_secs_f64();
            tracing::info!(caption = %scene.caption, method = scene.method.as_str(), seconds = format!("{:.2}", scene.seconds), "scene described");
            scenes.push(scene);
        }
        let model = (method == Method::Llm).then(|| ModelInfo {
            path: self.settings.model.clone(),
            name: self.llm.as_ref().map(|l| l.name().to_owned()),
        });
        Ok(Description {
            requested: method,
            model,
            seed,
            scenes,
        })
    }

    /// Method 1, free captions: the model's answer composed into a
    /// caption, or the text itself (method 2) when the model fails, said
    /// in `fallback`.
    fn llm_scene(&mut self, scene: &mut SceneCaption, scene_text: &str, seed: u32) {
        match self.llm_caption(scene_text, seed) {
            Ok((answer, composed, stats)) => {
                scene.caption = composed.caption;
                scene.made = Some(LlmMade::Free {
                    answer,
                    sounds: composed.kept,
                    llm: stats,
                    dropped: composed.dropped,
                });
            }
            Err(reason) => {
                tracing::warn!(%reason, "caption from the language model failed; using the text itself");
                scene.method = Method::Text;
                scene.caption = caption::text_prompt(scene_text);
                scene.fallback = Some(reason);
            }
        }
    }

    /// Method 1 in catalog mode: the sources and place the evidence
    /// speaks for ([`evidence`]), or those a job names. Never fails:
    /// without the language model or the embedding model the other
    /// evidence chooses (the record says what was missing), and with no
    /// evidence at all the place's bed plays alone.
    fn catalog_scene(&mut self, scene: &mut SceneCaption, text: &str, options: &CallOptions) {
        let given = options.sounds.is_some() || options.place.is_some();
        let mut choice = match (&self.settings.vocabulary, given) {
            (Some(vocabulary), true) => vocabulary.choose_given(
                options.sounds.as_deref().unwrap_or_default(),
                options.place.as_deref(),
            ),
            _ => self.weigh_evidence(scene, text),
        };
        if given && options.sounds.is_none() {
            // A job that names only its place keeps the describer's sources.
            let weighed = self.weigh_evidence(scene, text);
            choice.sources = weighed.sources;
            choice.bed_only = weighed.bed_only;
        }
        let Some(vocabulary) = self.settings.vocabulary.as_ref() else {
            return;
        };
        let place_phrase = choice
            .place
            .as_deref()
            .and_then(|id| vocabulary.place_by_phrase(id))
            .map(|e| e.phrase.clone());
        let composed = caption::compose(
            &SoundAnswer {
                place: place_phrase.clone().unwrap_or_default(),
                sounds: choice.sources.iter().map(|s| s.phrase.clone()).collect(),
                level: choice.level.unwrap_or(AmbienceLevel::Moderate),
            },
            text,
        );
        if scene.fallback.is_some() {
            // The model failed: the choice stands on the other evidence,
            // and the caption (AudioLDM2's prompt, were it asked) is the
            // text itself, as method 2 makes it.
            scene.method = Method::Text;
        }
        scene.caption = match &composed {
            _ if scene.fallback.is_some() => caption::text_prompt(text),
            Some(c) => c.caption.clone(),
            None => match &place_phrase {
                Some(place) => format!("The quiet ambience of {place}."),
                None => "A quiet ambience.".to_owned(),
            },
        };
        scene.made = Some(LlmMade::Catalog {
            sounds: choice.sources.iter().map(|s| s.id.clone()).collect(),
            dropped: composed.map(|c| c.dropped).unwrap_or_default(),
            choice,
        });
    }

    /// Gathers every piece of evidence for one scene and chooses from it.
    fn weigh_evidence(&mut self, scene: &mut SceneCaption, text: &str) -> CatalogChoice {
        let (gathered, model_failure) = self.gather_evidence(text);
        if let Some(reason) = model_failure {
            scene.fallback = Some(reason);
        }
        match self.settings.vocabulary.as_ref() {
            Some(vocabulary) => choose(vocabulary, gathered),
            None => Vocabulary::default().choose_given(&[], None),
        }
    }

    /// Every source's and place's scores for `text` (catalog mode), and
    /// why the language model gave none when it failed. Public for the
    /// describer's benchmark, which records them to tune the weights.
    pub(crate) fn gather_evidence(&mut self, text: &str) -> (evidence::Gathered, Option<String>) {
        let parts = self.settings.evidence;
        let timeout = self.settings.timeout;
        let index_missing = self.scene_index().is_none() && parts.meaning;
        let empty = Vocabulary::default();
        let vocabulary = self.settings.vocabulary.as_ref().unwrap_or(&empty);
        let index = self.index.as_ref().and_then(|i| i.as_ref().ok());
        let mut gathered = evidence::gather(vocabulary, text, index, parts);
        if index_missing && let Some(problem) = self.index_problem() {
            gathered.missing.push(format!("meaning: {problem}"));
        }
        if parts.model {
            let (sources, places) = gathered.model_candidates();
            let phrases: Vec<String> = sources
                .iter()
                .map(|&i| vocabulary.sources[i].phrase.clone())
                .chain(
                    places
                        .iter()
                        .map(|&i| format!("the sounds of {}", vocabulary.places[i].phrase)),
                )
                .collect();
            let scored = self
                .llm_engine()
                .map_err(|e| e.to_string())
                .and_then(|engine| {
                    let started = Instant::now();
                    let scores = engine
                        .score_phrases(text, &phrases, timeout)
                        .map_err(|e| e.to_string());
                    tracing::debug!(
                        seconds = started.elapsed().as_secs_f64(),
                        "model weighed the candidates"
                    );
                    scores
                });
            match scored {
                Ok(lps) => {
                    let (s, p) = lps.split_at(sources.len().min(lps.len()));
                    let zip = |ids: &[usize], lps: &[f32]| -> Vec<(usize, f32)> {
                        ids.iter().copied().zip(lps.iter().copied()).collect()
                    };
                    gathered.add_model(&zip(&sources, s), &zip(&places, p));
                }
                Err(reason) => {
                    tracing::warn!(%reason, "the language model could not weigh the candidates; the other evidence chooses");
                    gathered.missing.push(format!("model: {reason}"));
                    return (gathered, Some(reason));
                }
            }
        }
        (gathered, None)
    }

    /// Method 1 for one scene, or why it gave nothing usable.
    fn llm_caption(
        &mut self,
        text: &str,
        seed: u32,
    ) -> Result<(SoundAnswer, caption::Composed, LlmStats), String> {
        let sampling = Sampling {
            seed,
            temperature: self.settings.temperature,
            timeout: self.settings.timeout,
        };
        let engine = self.llm_engine().map_err(|e| e.to_string())?;
        let generated = engine
            .generate(text, &sampling)
            .map_err(|e| e.to_string())?;
        tracing::debug!(raw = %generated.raw, stats = ?generated.stats, "model answer");
        let composed = caption::compose(&generated.answer, text).ok_or_else(|| {
            format!(
                "the model's answer has no usable sound (all broke the caption rules): {}",
                generated.raw
            )
        })?;
        Ok((generated.answer, composed, generated.stats))
    }
}

/// The choice from gathered evidence: sources, place, level, and the
/// runners-up, each with its scores.
fn choose(vocabulary: &Vocabulary, gathered: evidence::Gathered) -> CatalogChoice {
    use vocabulary::{ChosenSource, Considered};
    // A quiet scene plays two sources at most (the soundscape's own
    // bound), so the record names what plays.
    let max = match gathered.level {
        Some(AmbienceLevel::Quiet) => 2,
        _ => evidence::MAX_SOURCES,
    };
    let picked = evidence::choose_sources(vocabulary, &gathered.sources, max);
    let sources: Vec<ChosenSource> = picked
        .iter()
        .map(|&i| {
            let scores = gathered.sources[i].clone();
            ChosenSource {
                id: vocabulary.sources[i].id.clone(),
                phrase: vocabulary.sources[i].phrase.clone(),
                from: scores.strongest(),
                scores: Some(scores),
            }
        })
        .collect();
    let mut others: Vec<usize> = (0..gathered.sources.len())
        .filter(|i| !picked.contains(i) && gathered.sources[*i].total > 0.0)
        .collect();
    others.sort_by(|&a, &b| {
        gathered.sources[b]
            .total
            .total_cmp(&gathered.sources[a].total)
    });
    let considered = others
        .into_iter()
        .take(4)
        .map(|i| Considered {
            id: vocabulary.sources[i].id.clone(),
            total: gathered.sources[i].total,
        })
        .collect();
    let place = evidence::choose_place(&gathered.places);
    let place_scores = place.map(|i| gathered.places[i].clone());
    CatalogChoice {
        place: place.map(|i| vocabulary.places[i].id.clone()),
        place_from: place_scores.as_ref().map(evidence::Scores::strongest),
        place_scores,
        bed_only: sources.is_empty(),
        sources,
        level: gathered.level,
        setting: gathered.setting,
        considered,
        warnings: gathered.missing,
    }
}

fn trimmed_span(text: &str) -> Range<usize> {
    let start = text.len() - text.trim_start().len();
    let end = text.trim_end().len();
    start..end.max(start)
}
