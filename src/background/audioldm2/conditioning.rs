//! From a caption to what the UNet attends to: CLAP text embedding, FLAN-T5
//! states, the projection with its learned start and end tokens, and the
//! eight "language of audio" embeddings GPT-2 generates from them.
//!
//! diffusers' variable lengths are reproduced around the graphs (as
//! `quantize/runner.py`, the spec, does):
//! - T5 runs on the prompt's tokens; the negative prompt is padded or cut
//!   to the prompt's token count. Bundles from export.py leave T5's
//!   sequence axis free, so it runs at exactly that length; where it is
//!   fixed (older bundles, and on the GPU, where it is fixed to the
//!   longest) the tokens are padded to it with mask 0, which leaves the
//!   states at real tokens as they are, and only those rows are kept.
//! - The projection works token by token, so it runs on the sequence
//!   padded to its fixed length and the padded rows are cut out again:
//!   `[SOS, CLAP, EOS, SOS_1, T5 rows, EOS_1]`.
//! - GPT-2 is causal: each of the eight passes runs on the sequence so far
//!   (right-padded with mask 0 where its length is fixed), and the hidden
//!   state at the last real position is the next embedding. At a free
//!   length a caption of 20 tokens runs GPT-2 on 25 to 32 positions
//!   instead of the longest caption's 140.

use std::path::Path;

use super::bundle::BundleMeta;
use super::graph::{ComputeDevice, Graph, f32_tensor, f32_values, i64_tensor, i64_values};
use super::tokens::PromptTokenizer;
use super::{BackgroundError, Observer, Record};

/// CLAP, T5, projection and GPT-2, loaded together.
#[derive(Debug)]
pub(crate) struct TextStages {
    clap: Graph,
    t5: Graph,
    projection: Graph,
    gpt2: Graph,
    /// T5's input length where the graph fixes it (None: any).
    t5_fixed: Option<usize>,
    /// GPT-2's input length where the graph fixes it (None: any).
    gpt_fixed: Option<usize>,
    /// The projection's and the UNet's T5 length: the longest caption.
    padded: usize,
}

/// The conditioning of one text, in the UNet's input shapes.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// GPT-2's generated embeddings, `[1, new_tokens, width]`.
    pub(crate) gpt_states: Vec<f32>,
    /// T5 states padded to the UNet's length with zeros, `[1, padded, width]`.
    pub(crate) t5_states: Vec<f32>,
    /// 1 for the real T5 tokens, `[1, padded]`.
    pub(crate) t5_mask: Vec<i64>,
    /// T5 rows before padding (the prompt's token count).
    pub(crate) t5_length: usize,
}

/// Declared dimension `axis` of an input, as a length.
pub(super) fn declared(
    dir: &Path,
    meta: &BundleMeta,
    component: &str,
    input: &str,
    axis: usize,
) -> Result<usize, BackgroundError> {
    meta.input_shape(component, input)
        .and_then(|shape| shape.get(axis))
        .map(|&d| d.max(0) as usize)
        .ok_or_else(|| {
            BackgroundError::Bundle(super::bundle::BundleError::Invalid {
                path: dir.join("bundle.toml"),
                reason: format!("{component} has no input `{input}` with an axis {axis}"),
            })
        })
}

impl TextStages {
    pub fn load(
        dir: &Path,
        meta: &BundleMeta,
        device: ComputeDevice,
    ) -> Result<Self, BackgroundError> {
        let padded = declared(dir, meta, "projection", "t5_states", 1)?;
        // tract-cuda is not known to run these graphs at a free length:
        // on the GPU they are fixed to the longest caption, as before.
        let longest = |sequence: usize| (device == ComputeDevice::Cuda).then_some(sequence);
        let gpt_longest = padded + 5 + meta.gpt2_new_tokens.saturating_sub(1);
        let t5 = Graph::load_shaped(dir, meta, "t5_encoder", device, 1, longest(padded))?;
        let gpt2 = Graph::load_shaped(dir, meta, "gpt2", device, 1, longest(gpt_longest))?;
        Ok(Self {
            clap: Graph::load(dir, meta, "clap_text", device)?,
            projection: Graph::load(dir, meta, "projection", device)?,
            t5_fixed: t5.fixed_length("input_ids"),
            gpt_fixed: gpt2.fixed_length("inputs_embeds"),
            t5,
            gpt2,
            padded,
        })
    }

    pub fn graphs(&self) -> [&Graph; 4] {
        [&self.clap, &self.t5, &self.projection, &self.gpt2]
    }

    /// Conditions on `text`. `negative_of` is the prompt's T5 length when
    /// `text` is the negative prompt. `tag` ("0" prompt, "1" negative) names
    /// the recorded intermediates as diffusers' reference does.
    pub(crate) fn encode(
        &self,
        meta: &BundleMeta,
        tokenizer: &PromptTokenizer,
        text: &str,
        negative_of: Option<usize>,
        tag: &str,
        observer: &mut dyn Observer,
    ) -> Result<Conditioning, BackgroundError> {
        let clap_embeds = self.clap_embeds(meta, tokenizer, text, tag, observer)?;
        let t5 = self.t5_states(meta, tokenizer, text, negative_of, tag, observer)?;
        let (sequence, sequence_mask, width) = self.projected(&clap_embeds, &t5, tag, observer)?;
        let gpt_states = self.gpt2_states(meta, sequence, sequence_mask, width, tag, observer)?;
        Ok(Conditioning {
            gpt_states,
            t5_states: t5.states,
            t5_mask: t5.mask,
            t5_length: t5.length,
        })
    }

    /// CLAP's text embedding of `text`.
    fn clap_embeds(
        &self,
        meta: &BundleMeta,
        tokenizer: &PromptTokenizer,
        text: &str,
        tag: &str,
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError> {
        let clap_len = meta.clap_max_tokens;
        let clap_tokens = tokenizer.clap(text);
        let clap = self.clap.run(vec![
            i64_tensor(&[1, clap_len], &clap_tokens.ids)?,
            i64_tensor(&[1, clap_len], &clap_tokens.mask)?,
        ])?;
        let clap_embeds = f32_values("clap_text", first(&clap, "clap_text")?)?;
        if observer.wants_records() {
            observer.record(
                &format!("clap_input_ids_{tag}"),
                Record::I64(&[1, clap_len], &clap_tokens.ids),
            );
            observer.record(
                &format!("clap_embeds_{tag}"),
                Record::F32(&[1, 1, clap_embeds.len()], &clap_embeds),
            );
        }
        Ok(clap_embeds)
    }

    /// T5's states of `text` (the prompt, or the negative prompt padded to
    /// the prompt's length `negative_of`), padded with zero rows to the
    /// projection's and the UNet's length (masked there).
    fn t5_states(
        &self,
        meta: &BundleMeta,
        tokenizer: &PromptTokenizer,
        text: &str,
        negative_of: Option<usize>,
        tag: &str,
        observer: &mut dyn Observer,
    ) -> Result<T5States, BackgroundError> {
        let t5_tokens = match negative_of {
            None => tokenizer.t5_prompt(text),
            Some(length) => tokenizer.t5_negative(text, length),
        };
        let length = t5_tokens.ids.len();
        let real = t5_tokens.mask.iter().filter(|&&m| m == 1).count();
        let padded = self.padded;
        let t5_run = self.t5_fixed.unwrap_or(length);
        if length > t5_run || length > padded {
            return Err(BackgroundError::Internal(format!(
                "{length} T5 tokens for graphs of {t5_run} and {padded}"
            )));
        }
        let mut t5_ids = t5_tokens.ids.clone();
        t5_ids.resize(t5_run, i64::from(meta.t5_pad_id));
        let mut t5_run_mask = vec![1i64; real];
        t5_run_mask.resize(t5_run, 0);
        let t5 = self.t5.run(vec![
            i64_tensor(&[1, t5_run], &t5_ids)?,
            i64_tensor(&[1, t5_run], &t5_run_mask)?,
        ])?;
        let t5_output = f32_values("t5_encoder", first(&t5, "t5_encoder")?)?;
        let width = t5_output.len() / t5_run.max(1);
        let mut states = vec![0f32; padded * width];
        states[..length * width].copy_from_slice(&t5_output[..length * width]);
        let mut mask = vec![1i64; real];
        mask.resize(padded, 0);
        if observer.wants_records() {
            observer.record(
                &format!("t5_input_ids_{tag}"),
                Record::I64(&[1, length], &t5_tokens.ids),
            );
            observer.record(
                &format!("t5_states_{tag}"),
                Record::F32(&[1, length, width], &states[..length * width]),
            );
        }
        Ok(T5States {
            states,
            mask,
            length,
            width,
        })
    }

    /// The projection of CLAP's and T5's states into GPT-2's sequence:
    /// [SOS, CLAP, EOS, SOS_1, the real T5 rows, EOS_1], its mask and its
    /// width.
    fn projected(
        &self,
        clap_embeds: &[f32],
        t5: &T5States,
        tag: &str,
        observer: &mut dyn Observer,
    ) -> Result<(Vec<f32>, Vec<i64>, usize), BackgroundError> {
        let padded = self.padded;
        let projected = self.projection.run(vec![
            f32_tensor(&[1, 1, clap_embeds.len()], clap_embeds)?,
            i64_tensor(&[1, 1], &[1])?,
            f32_tensor(&[1, padded, t5.width], &t5.states)?,
            i64_tensor(&[1, padded], &t5.mask)?,
        ])?;
        let states = f32_values("projection", first(&projected, "projection")?)?;
        let mask = i64_values(
            "projection",
            projected
                .get(1)
                .ok_or_else(|| missing_output("projection"))?,
        )?;
        let rows = padded + 5;
        if states.len() % rows != 0 || mask.len() != rows {
            return Err(BackgroundError::Inference {
                component: "projection".into(),
                reason: format!("{} values for {rows} rows", states.len()),
            });
        }
        let width = states.len() / rows;
        let keep: Vec<usize> = (0..4 + t5.length).chain([4 + padded]).collect();
        let sequence: Vec<f32> = keep
            .iter()
            .flat_map(|&r| states[r * width..(r + 1) * width].iter().copied())
            .collect();
        let sequence_mask: Vec<i64> = keep.iter().map(|&r| mask[r]).collect();
        if observer.wants_records() {
            observer.record(
                &format!("projection_states_{tag}"),
                Record::F32(&[1, keep.len(), width], &sequence),
            );
            observer.record(
                &format!("projection_mask_{tag}"),
                Record::I64(&[1, keep.len()], &sequence_mask),
            );
        }
        Ok((sequence, sequence_mask, width))
    }

    /// GPT-2's new tokens after the projected sequence, one run a token.
    fn gpt2_states(
        &self,
        meta: &BundleMeta,
        mut sequence: Vec<f32>,
        mut sequence_mask: Vec<i64>,
        width: usize,
        tag: &str,
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError> {
        let new_tokens = meta.gpt2_new_tokens;
        let kept = sequence_mask.len();
        if let Some(gpt_len) = self.gpt_fixed
            && kept + new_tokens > gpt_len + 1
        {
            return Err(BackgroundError::Internal(format!(
                "GPT-2's graph holds {gpt_len} positions, the sequence needs {}",
                kept + new_tokens - 1
            )));
        }
        for _ in 0..new_tokens {
            let n = sequence_mask.len();
            let gpt_len = self.gpt_fixed.unwrap_or(n);
            let mut embeds = vec![0f32; gpt_len * width];
            embeds[..n * width].copy_from_slice(&sequence);
            let mut attention = vec![0i64; gpt_len];
            attention[..n].copy_from_slice(&sequence_mask);
            let hidden = self.gpt2.run(vec![
                f32_tensor(&[1, gpt_len, width], &embeds)?,
                i64_tensor(&[1, gpt_len], &attention)?,
            ])?;
            let hidden = f32_values("gpt2", first(&hidden, "gpt2")?)?;
            sequence.extend_from_slice(&hidden[(n - 1) * width..n * width]);
            sequence_mask.push(1);
        }
        let gpt_states = sequence[(sequence.len() - new_tokens * width)..].to_vec();
        if observer.wants_records() {
            observer.record(
                &format!("gpt2_embeds_{tag}"),
                Record::F32(&[1, new_tokens, width], &gpt_states),
            );
        }
        Ok(gpt_states)
    }
}

/// T5's states of a prompt, padded, with their mask, the prompt's token
/// count and the states' width.
struct T5States {
    states: Vec<f32>,
    mask: Vec<i64>,
    length: usize,
    width: usize,
}

fn missing_output(component: &str) -> BackgroundError {
    BackgroundError::Inference {
        component: component.to_owned(),
        reason: "the graph gave fewer outputs than bundle.toml lists".into(),
    }
}

pub(super) fn first<'a>(
    outputs: &'a [tract_onnx::prelude::Tensor],
    component: &str,
) -> Result<&'a tract_onnx::prelude::Tensor, BackgroundError> {
    outputs.first().ok_or_else(|| missing_output(component))
}
