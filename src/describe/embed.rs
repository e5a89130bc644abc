//! Sentence embeddings: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT with
//! mean pooling and L2 normalisation, as sentence-transformers runs it),
//! read from its safetensors file and run on the CPU with `matrixmultiply`.
//!
//! Why not tract or candle: the model ships as safetensors, not ONNX, so
//! tract would need an export step with PyTorch on every device that
//! fetches it; candle's BERT would add a second tensor library to the
//! build (CI builds twice, x86-64 and arm64, and is close to its limit).
//! The forward pass of a BERT encoder is a few matrix products, a softmax
//! and two layer norms, and this one is checked against the similarity
//! matrix sentence-transformers publishes for this exact model.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use thiserror::Error;
use tokenizers::Tokenizer;
use tract_onnx::prelude::tract_ndarray::linalg::general_mat_mul;
use tract_onnx::prelude::tract_ndarray::{ArrayView2, ArrayViewMut2};

/// The encoder's width, heads and depth (the model's config.json).
const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const MAX_POSITIONS: usize = 512;
const LAYER_NORM_EPS: f32 = 1e-12;
/// sentence-transformers cuts inputs at 256 word pieces for this model
/// (sentence_bert_config.json); a longer text is described by its start.
pub(crate) const MAX_TOKENS: usize = 256;

#[derive(Debug, Error)]
pub enum EmbedError {
    #[error("cannot read the sentence-embedding model {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path} is not a usable all-MiniLM-L6-v2 safetensors file ({reason}); run `vivid models fetch` to reinstall it"
    )]
    Weights { path: PathBuf, reason: String },
    #[error("cannot load the tokenizer {path}: {reason}; run `vivid models fetch` to reinstall it")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("the tokenizer failed on a text: {0}")]
    Encode(String),
}

/// One encoder layer's weights, each matrix as stored ([out, in], row-major).
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

struct Linear {
    /// [out, in], row-major, as PyTorch stores it.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// The loaded model: tokenizer and weights (about 90 MB of f32).
pub struct SentenceEncoder {
    tokenizer: Tokenizer,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    vocab_size: usize,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder").finish_non_exhaustive()
    }
}

/// Cosine similarity of two embeddings (they are unit length, so the dot
/// product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl SentenceEncoder {
    /// Loads `model.safetensors` and `tokenizer.json`.
    pub fn load(weights: &Path, tokenizer: &Path) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(weights).map_err(|cause| EmbedError::Read {
            path: weights.to_path_buf(),
            cause,
        })?;
        let bad = |reason: String| EmbedError::Weights {
            path: weights.to_path_buf(),
            reason,
        };
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, EmbedError> {
            let view = tensors
                .tensor(name)
                .map_err(|_| bad(format!("no tensor {name}")))?;
            if view.dtype() != Dtype::F32 || view.shape() != shape {
                return Err(bad(format!(
                    "{name} is {:?} {:?}, expected F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let linear = |name: &str, outputs: usize, inputs: usize| -> Result<Linear, EmbedError> {
            Ok(Linear {
                weight: get(&format!("{name}.weight"), &[outputs, inputs])?,
                bias: get(&format!("{name}.bias"), &[outputs])?,
                inputs,
                outputs,
            })
        };
        let norm = |name: &str| -> Result<Norm, EmbedError> {
            Ok(Norm {
                gamma: get(&format!("{name}.weight"), &[HIDDEN])?,
                beta: get(&format!("{name}.bias"), &[HIDDEN])?,
            })
        };
        let word_view = tensors
            .tensor("embeddings.word_embeddings.weight")
            .map_err(|_| bad("no word embeddings".into()))?;
        let vocab_size = word_view.shape().first().copied().unwrap_or(0);
        let word = get("embeddings.word_embeddings.weight", &[vocab_size, HIDDEN])?;
        let position = get(
            "embeddings.position_embeddings.weight",
            &[MAX_POSITIONS, HIDDEN],
        )?;
        let token_type = get("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?;
        let embedding_norm = norm("embeddings.LayerNorm")?;
        let layers = (0..LAYERS)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    query: linear(&format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?,
                    key: linear(&format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?,
                    value: linear(&format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?,
                    attention_out: linear(&format!("{p}.attention.output.dense"), HIDDEN, HIDDEN)?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"), INTERMEDIATE, HIDDEN)?,
                    output: linear(&format!("{p}.output.dense"), HIDDEN, INTERMEDIATE)?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, EmbedError>>()?;
        let tokenizer = load_tokenizer(tokenizer)?;
        Ok(Self {
            tokenizer,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            vocab_size,
        })
    }

    /// The unit-length embedding of `text` (its first [`MAX_TOKENS`] word
    /// pieces).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut all = self.embed_all(&[text])?;
        Ok(all.pop().unwrap_or_default())
    }

    /// Embeddings of many texts. They go through the encoder in batches:
    /// the matrix products of short texts are too small to keep the
    /// kernels busy one by one (the catalog's 400 descriptions took 4×
    /// longer that way), and batches run on all cores.
    pub fn embed_all<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        use rayon::prelude::*;
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        // Batches of about BATCH_ROWS tokens, texts kept in order.
        const BATCH_ROWS: usize = 512;
        let mut batches: Vec<&[Vec<usize>]> = Vec::new();
        let (mut start, mut rows) = (0, 0);
        for (i, seq) in ids.iter().enumerate() {
            if rows > 0 && rows + seq.len() > BATCH_ROWS {
                batches.push(&ids[start..i]);
                (start, rows) = (i, 0);
            }
            rows += seq.len();
        }
        batches.push(&ids[start..]);
        Ok(batches
            .par_iter()
            .map(|batch| self.forward(batch))
            .collect::<Vec<_>>()
            .concat())
    }

    /// Word-piece ids with [CLS] and [SEP], at least one, at most
    /// [`MAX_TOKENS`].
    fn token_ids(&self, text: &str) -> Result<Vec<usize>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Encode(e.to_string()))?;
        let mut ids: Vec<usize> = encoding
            .get_ids()
            .iter()
            .map(|&id| (id as usize).min(self.vocab_size.saturating_sub(1)))
            .collect();
        ids.truncate(MAX_TOKENS);
        if ids.is_empty() {
            ids.push(0);
        }
        Ok(ids)
    }

    /// The encoder over several texts at once (their rows stacked, each
    /// attending only to itself), then mean pooling over each text's
    /// tokens and L2 normalisation.
    fn forward(&self, texts: &[Vec<usize>]) -> Vec<Vec<f32>> {
        let spans: Vec<std::ops::Range<usize>> = texts
            .iter()
            .scan(0, |at, ids| {
                let span = *at..*at + ids.len();
                *at = span.end;
                Some(span)
            })
            .collect();
        let rows = spans.last().map_or(0, |s| s.end);
        let mut x = vec![0.0f32; rows * HIDDEN];
        for (ids, span) in texts.iter().zip(&spans) {
            for (t, &id) in ids.iter().enumerate() {
                let row = &mut x[(span.start + t) * HIDDEN..][..HIDDEN];
                let word = &self.word[id * HIDDEN..][..HIDDEN];
                let position = &self.position[t * HIDDEN..][..HIDDEN];
                for (i, v) in row.iter_mut().enumerate() {
                    *v = word[i] + position[i] + self.token_type[i];
                }
            }
        }
        layer_norm(&mut x, &self.embedding_norm);
        for layer in &self.layers {
            encoder_layer(layer, &mut x, &spans);
        }
        spans
            .iter()
            .map(|span| {
                let mut pooled = vec![0.0f32; HIDDEN];
                for row in x[span.start * HIDDEN..span.end * HIDDEN].chunks_exact(HIDDEN) {
                    for (p, v) in pooled.iter_mut().zip(row) {
                        *p += v;
                    }
                }
                let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                pooled.iter_mut().for_each(|v| *v /= norm);
                pooled
            })
            .collect()
    }
}

/// One encoder layer over stacked texts: self-attention within each span,
/// then the feed-forward block, each with its residual and layer norm.
fn encoder_layer(layer: &Layer, x: &mut [f32], spans: &[std::ops::Range<usize>]) {
    let rows = x.len() / HIDDEN;
    let q = layer.query.apply(x, rows);
    let k = layer.key.apply(x, rows);
    let v = layer.value.apply(x, rows);
    let mut context = vec![0.0f32; rows * HIDDEN];
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    for span in spans {
        let mut scores = vec![0.0f32; span.len()];
        for h in 0..HEADS {
            let head = h * HEAD_DIM..(h + 1) * HEAD_DIM;
            for i in span.clone() {
                let qi = &q[i * HIDDEN..][head.clone()];
                for (s, j) in scores.iter_mut().zip(span.clone()) {
                    *s = dot(qi, &k[j * HIDDEN..][head.clone()]) * scale;
                }
                softmax(&mut scores);
                let out = &mut context[i * HIDDEN..][head.clone()];
                for (s, j) in scores.iter().zip(span.clone()) {
                    for (o, vv) in out.iter_mut().zip(&v[j * HIDDEN..][head.clone()]) {
                        *o += s * vv;
                    }
                }
            }
        }
    }
    let attended = layer.attention_out.apply(&context, rows);
    for (xi, a) in x.iter_mut().zip(&attended) {
        *xi += a;
    }
    layer_norm(x, &layer.attention_norm);
    let mut hidden = layer.intermediate.apply(x, rows);
    hidden.iter_mut().for_each(|h| *h = gelu(*h));
    let out = layer.output.apply(&hidden, rows);
    for (xi, o) in x.iter_mut().zip(&out) {
        *xi += o;
    }
    layer_norm(x, &layer.output_norm);
}

impl Linear {
    /// `x · Wᵀ + b` for `rows` rows of `inputs` values.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out: Vec<f32> = Vec::with_capacity(rows * self.outputs);
        for _ in 0..rows {
            out.extend_from_slice(&self.bias);
        }
        // The shapes hold by construction (rows×inputs, outputs×inputs);
        // ndarray hands the product to matrixmultiply's packed kernels.
        let (Ok(x), Ok(w), Ok(mut y)) = (
            ArrayView2::from_shape((rows, self.inputs), x),
            ArrayView2::from_shape((self.outputs, self.inputs), &self.weight),
            ArrayViewMut2::from_shape((rows, self.outputs), &mut out),
        ) else {
            return out;
        };
        general_mat_mul(1.0, &x, &w.t(), 1.0, &mut y);
        out
    }
}

fn layer_norm(x: &mut [f32], norm: &Norm) {
    for row in x.chunks_exact_mut(HIDDEN) {
        let mean = row.iter().sum::<f32>() / HIDDEN as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / HIDDEN as f32;
        let inv = 1.0 / (var + LAYER_NORM_EPS).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// BERT's GELU, the exact (erf) form.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
}

/// The tokenizer as sentence-transformers uses it: no padding (the file
/// pads to 128, which would change the mean), cut at [`MAX_TOKENS`].
fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbedError> {
    let bad = |reason: String| EmbedError::Tokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| bad(e.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokenizer)
}
