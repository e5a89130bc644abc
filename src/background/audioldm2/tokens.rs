//! The prompt's token ids for the two text encoders, exactly as diffusers'
//! AudioLDM2 pipeline makes them: CLAP (RoBERTa BPE) padded to its maximum
//! length, T5 at the prompt's own length, and the negative prompt's T5 ids
//! padded or cut to the prompt's length.

use std::path::Path;

use tokenizers::Tokenizer;

use super::bundle::{BundleError, BundleMeta};

/// Token ids and attention mask of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
}

pub struct PromptTokenizer {
    clap: Tokenizer,
    t5: Tokenizer,
    clap_max: usize,
    t5_max: usize,
    clap_pad: u32,
    t5_pad: u32,
    clap_eos: u32,
}

impl PromptTokenizer {
    pub fn load(dir: &Path, meta: &BundleMeta) -> Result<Self, BundleError> {
        let load = |name: &str| {
            let path = dir.join(name);
            Tokenizer::from_file(&path).map_err(|e| BundleError::Tokenizer {
                path: path.clone(),
                reason: e.to_string(),
            })
        };
        let clap = load(&meta.clap_tokenizer)?;
        let clap_eos = clap
            .token_to_id("</s>")
            .ok_or_else(|| BundleError::Tokenizer {
                path: dir.join(&meta.clap_tokenizer),
                reason: "no </s> token".into(),
            })?;
        Ok(Self {
            t5: load(&meta.t5_tokenizer)?,
            clap,
            clap_max: meta.clap_max_tokens,
            t5_max: meta.t5_max_tokens,
            clap_pad: meta.clap_pad_id,
            t5_pad: meta.t5_pad_id,
            clap_eos,
        })
    }

    fn encode(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
        // Encoding plain text with the tokenizer's own post-processor
        // cannot fail for these models; an error leaves no ids.
        tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    /// CLAP: `<s> … </s>`, cut to the maximum length keeping `</s>` last,
    /// padded to it.
    pub fn clap(&self, text: &str) -> Tokens {
        let mut ids = Self::encode(&self.clap, text);
        if ids.len() >= self.clap_max {
            ids.truncate(self.clap_max);
            if let Some(last) = ids.last_mut() {
                *last = self.clap_eos;
            }
        }
        pad(ids, self.clap_max, self.clap_pad)
    }

    /// Says how a text is cut when it is longer than either encoder takes.
    pub(crate) fn truncation(&self, text: &str) -> Option<String> {
        let clap = Self::encode(&self.clap, text).len();
        let t5 = Self::encode(&self.t5, text).len();
        (clap > self.clap_max || t5 > self.t5_max).then(|| {
            format!(
                "{clap} CLAP tokens (it takes {}) and {t5} T5 tokens (it takes {}); the rest is ignored",
                self.clap_max, self.t5_max
            )
        })
    }

    /// T5 for the prompt: its own tokens (`</s>` last), at most the
    /// bundle's maximum.
    pub fn t5_prompt(&self, text: &str) -> Tokens {
        let ids = cut(Self::encode(&self.t5, text), self.t5_max);
        let len = ids.len();
        pad(ids, len, self.t5_pad)
    }

    /// T5 for the negative prompt: padded or cut to the prompt's length.
    pub fn t5_negative(&self, text: &str, length: usize) -> Tokens {
        pad(
            cut(Self::encode(&self.t5, text), length),
            length,
            self.t5_pad,
        )
    }
}

/// At most `limit` ids, the last (`</s>`) kept.
fn cut(mut ids: Vec<u32>, limit: usize) -> Vec<u32> {
    if ids.len() > limit && limit > 0 {
        let last = ids[ids.len() - 1];
        ids.truncate(limit);
        ids[limit - 1] = last;
    }
    ids
}

fn pad(ids: Vec<u32>, length: usize, pad_id: u32) -> Tokens {
    let real = ids.len().min(length);
    let mut padded: Vec<i64> = ids.iter().take(length).map(|&i| i64::from(i)).collect();
    padded.resize(length, i64::from(pad_id));
    let mut mask = vec![1i64; real];
    mask.resize(length, 0);
    Tokens { ids: padded, mask }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_the_end_token_and_pad_masks() {
        assert_eq!(cut(vec![5, 6, 7, 1], 3), vec![5, 6, 1]);
        assert_eq!(cut(vec![5, 1], 3), vec![5, 1]);
        let t = pad(vec![5, 1], 4, 0);
        assert_eq!(t.ids, vec![5, 1, 0, 0]);
        assert_eq!(t.mask, vec![1, 1, 0, 0]);
    }
}
