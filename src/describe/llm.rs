//! The language model behind method 1, on llama.cpp.
//!
//! The model is loaded once and one context is kept with it. The prompt
//! part before the narration (instruction and examples, a few hundred
//! tokens) is evaluated once and stays in the KV cache; each text only
//! removes what came after it and evaluates its own tokens, so a caption
//! costs the narration's tokens plus the answer's.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use thiserror::Error;

use super::answer::SoundAnswer;
use super::prompt::{self, PromptStyle, TEXT_MARKER};

/// Context size: the prompt prefix (~400 tokens), a narration of at most
/// `MAX_TEXT_BYTES` (~400 tokens) and the answer fit with room to spare.
const CONTEXT_TOKENS: u32 = 2048;
/// The answer is at most ~60 tokens; the bound only matters for a model
/// that will not close its JSON.
const MAX_ANSWER_TOKENS: usize = 120;
/// Narration tokens kept (the start of a longer text describes it well).
const MAX_TEXT_TOKENS: usize = 480;
const BATCH_TOKENS: usize = 512;

#[derive(Debug, Error)]
pub enum LlmError {
    #[error("cannot read language model {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not a GGUF model file (it does not start with `GGUF`)")]
    NotGguf { path: PathBuf },
    #[error(
        "llama.cpp could not load {path}: the file is damaged or holds an architecture this \
         build does not know (run with -v for llama.cpp's reason)"
    )]
    Load { path: PathBuf },
    #[error("cannot start llama.cpp: {0}")]
    Backend(String),
    #[error("llama.cpp could not create a context for {path}: {reason}")]
    Context { path: PathBuf, reason: String },
    #[error("the chat template of {path} cannot be used: {reason}")]
    Template { path: PathBuf, reason: String },
    #[error("llama.cpp rejected the answer grammar: {0}")]
    Grammar(String),
    #[error("llama.cpp failed while reading the prompt or answering: {0}")]
    Decode(String),
    #[error("no answer within {0:.1} s")]
    Timeout(f64),
    #[error("the answer is not the expected JSON ({reason}): {raw:?}")]
    BadAnswer { raw: String, reason: String },
}

/// llama.cpp's process-wide state: initialised once, its log sent to
/// `tracing` (under the `llama-cpp-2` target, so `-v` does not show it
/// unless asked for with VIVID_LOG).
fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Backend(e.clone()))
}

type Context<'model> = LlamaContext<'model>;

self_cell::self_cell!(
    /// The model and the one context made from it, kept together.
    struct ModelContext {
        owner: LlamaModel,
        #[covariant]
        dependent: Context,
    }
);

/// Options fixed at load time.
#[derive(Debug, Clone)]
pub struct LlmOptions {
    /// `None`: chat when the model has a chat template, else completion.
    pub(crate) style: Option<PromptStyle>,
    pub threads: usize,
}

/// One generated answer.
#[derive(Debug, Clone)]
pub struct Generated {
    pub raw: String,
    pub answer: SoundAnswer,
    pub stats: LlmStats,
}

/// Where one answer's time went, for records and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlmStats {
    /// Tokens in the whole prompt.
    pub(crate) prompt_tokens: usize,
    /// Prompt tokens evaluated for this answer (the rest were cached).
    pub(crate) evaluated_tokens: usize,
    pub prompt_s: f64,
    pub(crate) answer_tokens: usize,
    pub answer_s: f64,
}

/// How to sample one answer.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    pub seed: u32,
    /// 0 picks the most likely token every time.
    pub temperature: f32,
    pub timeout: Duration,
}

/// Which prompt prefix the context's KV cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KvHolds {
    Nothing,
    Answer,
    Score,
}

/// The scoring prompt before the narration: two worked pairs, so that a
/// base model reads "Sound:" as the background of the text above it.
const SCORE_PREFIX: &str = "Background sounds for narrated stories.\n\
Text: At dusk the fishing boats came home round the point.\nSound: seagulls calling.\n\
Text: He shod every horse in the parish at his forge.\nSound: a hammer striking an anvil.\n\
Text: ";
/// Sequences of the context: the text's, and one for each candidate
/// weighed at once.
const SCORE_SEQUENCES: usize = 16;
/// Longest candidate phrase, in tokens (catalog phrases are under 12).
const MAX_PHRASE_TOKENS: usize = 24;
/// Between the narration and each candidate phrase.
const SCORE_SUFFIX: &str = "\nSound:";
/// The text with no content whose likelihoods calibrate the model's
/// (Zhao et al., "Calibrate before use", 2021).
const CONTENT_FREE_TEXT: &str = "N/A";

pub struct LlmDescriber {
    path: PathBuf,
    style: PromptStyle,
    inner: ModelContext,
    /// The prompt before the narration, evaluated and kept in the KV cache.
    prefix: Vec<LlamaToken>,
    /// The prompt after the narration (end of the user turn, start of the
    /// answer), tokenized with the template's special tokens parsed.
    suffix: Vec<LlamaToken>,
    /// Which prompt prefix the KV cache holds.
    kv: KvHolds,
    /// The scoring prompt's prefix (few-shot), kept in the cache between
    /// texts like the answer prompt's.
    score_prefix: Vec<LlamaToken>,
    /// Log-likelihood of each phrase after a text with no content, for
    /// contextual calibration (computed once per phrase).
    calibration: std::collections::HashMap<String, f32>,
    name: String,
    /// The GBNF grammar every answer keeps.
    grammar: String,
}

impl std::fmt::Debug for LlmDescriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmDescriber")
            .field("path", &self.path)
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

impl LlmDescriber {
    /// Loads a GGUF model and prepares its prompt.
    pub fn load(path: &Path, options: &LlmOptions) -> Result<Self, LlmError> {
        check_gguf(path)?;
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|_| LlmError::Load {
                path: path.to_path_buf(),
            })?;
        let name = model
            .meta_val_str("general.name")
            .unwrap_or_else(|_| path.display().to_string());
        let template = model.chat_template(None).ok();
        let style = options.style.unwrap_or(if template.is_some() {
            PromptStyle::Chat
        } else {
            PromptStyle::Completion
        });
        // The answer prompt writes free captions; catalog mode only weighs
        // phrases ([`Self::score_phrases`]) and never evaluates it.
        let prompts = prompt::PromptSet::free();
        let rendered = match style {
            PromptStyle::Completion => prompts.completion_prompt(),
            PromptStyle::Chat => {
                let template_err = |reason: String| LlmError::Template {
                    path: path.to_path_buf(),
                    reason,
                };
                let template = template.ok_or_else(|| {
                    template_err("the model has none; use prompt = \"completion\"".into())
                })?;
                let messages = prompts
                    .chat_turns()
                    .into_iter()
                    .map(|(role, content)| LlamaChatMessage::new(role.into(), content))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| template_err(e.to_string()))?;
                model
                    .apply_chat_template(&template, &messages, true)
                    .map_err(|e| template_err(e.to_string()))?
            }
        };
        let Some((before, after)) = rendered.split_once(TEXT_MARKER) else {
            return Err(LlmError::Template {
                path: path.to_path_buf(),
                reason: "the rendered prompt lost the narration".into(),
            });
        };
        // The model's own BOS setting decides whether the prompt starts
        // with one; the template's special tokens are parsed as such.
        let prefix = model.vocab().tokenize(before.as_bytes(), true, true);
        let suffix = model.vocab().tokenize(after.as_bytes(), false, true);
        let score_prefix = model.vocab().tokenize(SCORE_PREFIX.as_bytes(), true, false);
        let threads = i32::try_from(options.threads.max(1)).unwrap_or(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(CONTEXT_TOKENS))
            .with_n_batch(BATCH_TOKENS as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            // Candidates are weighed as sequences sharing the text's cache.
            .with_n_seq_max(SCORE_SEQUENCES as u32)
            .with_kv_unified(true);
        let inner = ModelContext::try_new(model, |model| model.new_context(backend, params))
            .map_err(|e| LlmError::Context {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        tracing::info!(model = %name, ?style, prefix_tokens = prefix.len(), "language model loaded");
        Ok(Self {
            path: path.to_path_buf(),
            style,
            inner,
            prefix,
            suffix,
            kv: KvHolds::Nothing,
            score_prefix,
            calibration: std::collections::HashMap::new(),
            name,
            grammar: prompts.grammar,
        })
    }

    pub fn style(&self) -> PromptStyle {
        self.style
    }

    /// The model's own name (GGUF `general.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks for the sound scene of `text`.
    pub fn generate(&mut self, text: &str, sampling: &Sampling) -> Result<Generated, LlmError> {
        let started = Instant::now();
        let deadline = started + sampling.timeout;
        let style = self.style;
        let narration = prompt::prompt_text(text);
        let prefix_ready = self.kv == KvHolds::Answer;
        let prefix = &self.prefix;
        let suffix = &self.suffix;
        let grammar = &self.grammar;
        let result = self.inner.with_dependent_mut(|model, ctx| {
            let decode_err = |e: &dyn std::fmt::Display| LlmError::Decode(e.to_string());
            let vocab = model.vocab();
            // The narration is tokenized as plain text, so a text cannot
            // inject the template's special tokens the suffix holds.
            let mut text_tokens = vocab.tokenize(narration.as_bytes(), false, false);
            text_tokens.truncate(MAX_TEXT_TOKENS);
            let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
            let prompt_started = Instant::now();
            let mut pos = start_after_prefix(ctx, &mut batch, prefix, prefix_ready)?;
            let tail: Vec<LlamaToken> = text_tokens
                .into_iter()
                .chain(suffix.iter().copied())
                .collect();
            let evaluated_tokens = if prefix_ready {
                tail.len()
            } else {
                pos + tail.len()
            };
            decode_tokens(ctx, &mut batch, &tail, &mut pos)?;
            let prompt_s = prompt_started.elapsed().as_secs_f64();
            let answer_started = Instant::now();
            let prompt_tokens = pos;

            let mut sampler = AnswerSampler::new(model, style, sampling, grammar)?;
            let mut raw = Vec::new();
            let mut answer_tokens = 0;
            while answer_tokens < MAX_ANSWER_TOKENS {
                if Instant::now() > deadline {
                    return Err(LlmError::Timeout(sampling.timeout.as_secs_f64()));
                }
                let token = sampler.sample(ctx, batch.n_tokens() - 1)?;
                answer_tokens += 1;
                if vocab.is_eog(token) {
                    break;
                }
                raw.extend(vocab.token_to_piece(token, false, None));
                if raw.ends_with(b"}") {
                    break;
                }
                batch.clear();
                batch
                    .add(token, pos as i32, &[0], true)
                    .map_err(|e| decode_err(&e))?;
                pos += 1;
                ctx.decode(&mut batch).map_err(|e| decode_err(&e))?;
            }
            let stats = LlmStats {
                prompt_tokens,
                evaluated_tokens,
                prompt_s,
                answer_tokens,
                answer_s: answer_started.elapsed().as_secs_f64(),
            };
            Ok((raw, stats))
        });
        // Whatever happened, the prefix is in the cache only if the first
        // decode got through; decoding it again next time is always safe.
        let (raw, stats) = match result {
            Ok(done) => {
                self.kv = KvHolds::Answer;
                done
            }
            Err(e) => {
                self.kv = KvHolds::Nothing;
                return Err(e);
            }
        };
        let raw = String::from_utf8_lossy(&raw).trim().to_owned();
        let answer =
            serde_json::from_str::<SoundAnswer>(&raw).map_err(|e| LlmError::BadAnswer {
                raw: raw.clone(),
                reason: e.to_string(),
            })?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "answer generated"
        );
        Ok(Generated { raw, answer, stats })
    }
}

impl LlmDescriber {
    /// The model's evidence for each phrase as the background of `text`:
    /// its log-likelihood after the text minus its log-likelihood after a
    /// text with no content, in nats. The model only weighs phrases it is
    /// given; it writes nothing.
    pub(crate) fn score_phrases(
        &mut self,
        text: &str,
        phrases: &[String],
        timeout: Duration,
    ) -> Result<Vec<f32>, LlmError> {
        let deadline = Instant::now() + timeout;
        let uncalibrated: Vec<String> = phrases
            .iter()
            .filter(|p| !self.calibration.contains_key(*p))
            .cloned()
            .collect();
        let timed_out = |e| match e {
            LlmError::Timeout(_) => LlmError::Timeout(timeout.as_secs_f64()),
            other => other,
        };
        if !uncalibrated.is_empty() {
            let base = self
                .phrase_logprobs(CONTENT_FREE_TEXT, &uncalibrated, deadline)
                .map_err(timed_out)?;
            self.calibration.extend(uncalibrated.into_iter().zip(base));
        }
        let scored = self
            .phrase_logprobs(text, phrases, deadline)
            .map_err(timed_out)?;
        Ok(phrases
            .iter()
            .zip(scored)
            .map(|(p, lp)| lp - self.calibration.get(p).copied().unwrap_or(0.0))
            .collect())
    }

    /// Log-likelihood of each phrase (with its full stop) after the
    /// scoring prompt with `text`.
    fn phrase_logprobs(
        &mut self,
        text: &str,
        phrases: &[String],
        deadline: Instant,
    ) -> Result<Vec<f32>, LlmError> {
        let narration = prompt::prompt_text(text);
        let prefix_ready = self.kv == KvHolds::Score;
        let prefix = &self.score_prefix;
        let result = self.inner.with_dependent_mut(|model, ctx| {
            let decode_err = |e: &dyn std::fmt::Display| LlmError::Decode(e.to_string());
            let vocab = model.vocab();
            let tokenize = |s: &str| vocab.tokenize(s.as_bytes(), false, false);
            let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
            let mut pos = start_after_prefix(ctx, &mut batch, prefix, prefix_ready)?;
            let mut tail = tokenize(&narration);
            tail.truncate(MAX_TEXT_TOKENS);
            tail.extend(tokenize(SCORE_SUFFIX));
            decode_tokens(ctx, &mut batch, &tail, &mut pos)?;
            let after_text = log_softmax(ctx.get_logits_ith(batch.n_tokens() - 1));
            let candidates: Vec<Vec<LlamaToken>> = phrases
                .iter()
                .map(|p| {
                    let mut tokens = tokenize(&format!(" {p}."));
                    tokens.truncate(MAX_PHRASE_TOKENS);
                    tokens
                })
                .collect();
            // Every candidate continues the text in a sequence of its own
            // (the text's cache shared, not evaluated again), all in one
            // batch: one pass over the weights for all of them.
            let mut scores = Vec::with_capacity(phrases.len());
            for group in candidates.chunks(SCORE_SEQUENCES - 1) {
                if Instant::now() > deadline {
                    return Err(LlmError::Timeout(0.0));
                }
                batch.clear();
                let mut rows = Vec::with_capacity(group.len());
                for (k, tokens) in group.iter().enumerate() {
                    let seq = k as i32 + 1;
                    ctx.copy_kv_cache_seq(0, seq, None, None)
                        .map_err(|e| decode_err(&e))?;
                    let first_row = batch.n_tokens();
                    for (i, t) in tokens.iter().enumerate() {
                        // The last token's logits predict nothing asked for.
                        batch
                            .add(*t, (pos + i) as i32, &[seq], i + 1 < tokens.len())
                            .map_err(|e| decode_err(&e))?;
                    }
                    rows.push(first_row);
                }
                if batch.n_tokens() > 0 && group.iter().any(|t| t.len() > 1) {
                    ctx.decode(&mut batch).map_err(|e| decode_err(&e))?;
                }
                for (tokens, first_row) in group.iter().zip(rows) {
                    let Some(first) = tokens.first() else {
                        scores.push(0.0);
                        continue;
                    };
                    let mut lp = token_logprob(&after_text, *first);
                    for (i, next) in tokens.iter().enumerate().skip(1) {
                        let row = first_row + i as i32 - 1;
                        lp += token_logprob(&log_softmax(ctx.get_logits_ith(row)), *next);
                    }
                    scores.push(lp);
                }
                for k in 0..group.len() {
                    ctx.clear_kv_cache_seq(Some(k as u32 + 1), None, None)
                        .map_err(|e| decode_err(&e))?;
                }
            }
            Ok(scores)
        });
        match result {
            Ok(scores) => {
                self.kv = KvHolds::Score;
                Ok(scores)
            }
            Err(e) => {
                self.kv = KvHolds::Nothing;
                Err(e)
            }
        }
    }
}

/// Natural-log probabilities from logits.
fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|l| l - lse).collect()
}

fn token_logprob(logprobs: &[f32], token: LlamaToken) -> f32 {
    usize::try_from(token.0)
        .ok()
        .and_then(|i| logprobs.get(i))
        .copied()
        .unwrap_or(f32::NEG_INFINITY)
}

fn check_gguf(path: &Path) -> Result<(), LlmError> {
    use std::io::Read;
    let read_err = |cause| LlmError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    file.read_exact(&mut magic).map_err(read_err)?;
    if &magic != b"GGUF" {
        return Err(LlmError::NotGguf {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Leaves the prompt's prefix (and nothing after it) in the KV cache:
/// drops what followed it when it is there already, else evaluates it.
/// Returns the position after it.
fn start_after_prefix(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    prefix: &[LlamaToken],
    prefix_ready: bool,
) -> Result<usize, LlmError> {
    if prefix_ready {
        ctx.clear_kv_cache_seq(Some(0), Some(prefix.len() as u32), None)
            .map_err(|e| LlmError::Decode(e.to_string()))?;
        return Ok(prefix.len());
    }
    ctx.clear_kv_cache();
    let mut pos = 0;
    decode_tokens(ctx, batch, prefix, &mut pos)?;
    Ok(pos)
}

/// Evaluates `tokens` at positions from `pos` on, in batches, asking for
/// logits only after the last one.
fn decode_tokens(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    tokens: &[LlamaToken],
    pos: &mut usize,
) -> Result<(), LlmError> {
    let last = tokens.len().saturating_sub(1);
    for (chunk_index, chunk) in tokens.chunks(BATCH_TOKENS).enumerate() {
        batch.clear();
        for (i, token) in chunk.iter().enumerate() {
            let index = chunk_index * BATCH_TOKENS + i;
            batch
                .add(*token, *pos as i32, &[0], index == last)
                .map_err(|e| LlmError::Decode(e.to_string()))?;
            *pos += 1;
        }
        ctx.decode(batch)
            .map_err(|e| LlmError::Decode(e.to_string()))?;
    }
    Ok(())
}

/// Picks each answer token: repeat penalty (base models loop without it),
/// then seeded sampling (or greedy at temperature 0), within the grammar.
///
/// Checking the grammar against the whole vocabulary for every token is
/// what made answers slow (Gemma has 262k tokens: 17 tokens/s against 30
/// for a 151k-token model twice its size), so, as llama.cpp's own
/// `common_sampler` does, a token is first sampled without the grammar and
/// only checked against it; only when the grammar rejects it is the whole
/// vocabulary filtered and the token sampled again. The result is a token
/// the grammar allows, chosen from the same distribution restricted to
/// what the grammar allows when the first pick was not.
struct AnswerSampler {
    grammar: LlamaSampler,
    chain: LlamaSampler,
}

impl AnswerSampler {
    fn new(
        model: &LlamaModel,
        style: PromptStyle,
        sampling: &Sampling,
        grammar: &str,
    ) -> Result<Self, LlmError> {
        let repeat_penalty = match style {
            PromptStyle::Completion => 1.3,
            PromptStyle::Chat => 1.1,
        };
        let grammar = LlamaSampler::grammar(model, grammar, "root")
            .map_err(|e| LlmError::Grammar(e.to_string()))?;
        let mut chain = vec![LlamaSampler::penalties(
            model.n_vocab(),
            64,
            repeat_penalty,
            0.0,
            0.0,
        )];
        if sampling.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.push(LlamaSampler::top_k(40));
            chain.push(LlamaSampler::top_p(0.95, 1));
            chain.push(LlamaSampler::temp(sampling.temperature));
            chain.push(LlamaSampler::dist(sampling.seed));
        }
        Ok(Self {
            grammar,
            chain: LlamaSampler::chain_simple(chain),
        })
    }

    fn sample(&mut self, ctx: &LlamaContext<'_>, index: i32) -> Result<LlamaToken, LlmError> {
        let no_token = || LlmError::Decode("the sampler chose no token".to_owned());
        let mut candidates = ctx.token_data_array_ith(index);
        candidates.apply_sampler(&mut self.chain);
        let first = candidates.selected_token().ok_or_else(no_token)?;
        let mut check = LlamaTokenDataArray::new(vec![LlamaTokenData::new(first, 1.0, 0.0)], false);
        check.apply_sampler(&mut self.grammar);
        let token = if check.data.first().is_some_and(|d| d.logit().is_finite()) {
            first
        } else {
            let mut candidates = ctx.token_data_array_ith(index);
            candidates.apply_sampler(&mut self.grammar);
            candidates.apply_sampler(&mut self.chain);
            candidates.selected_token().ok_or_else(no_token)?
        };
        self.grammar.accept(token);
        self.chain.accept(token);
        Ok(token)
    }
}
