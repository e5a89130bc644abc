//! Clauses to sentences of phonemes, and phonemes to model ids, exactly as
//! piper-tts 1.8 builds them.

use unicode_normalization::UnicodeNormalization;

use super::espeak::Clause;
use super::voice_config::{BOS, EOS, PAD, VoiceConfig};

/// One sentence: its clauses' phonemes, each with its terminator (and the
/// space piper puts after `, : ;`) already appended. Every `char` is one
/// phoneme (Unicode NFD, so accents are phonemes of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    pub(crate) clauses: Vec<String>,
}

impl Sentence {
    /// The whole sentence's phonemes.
    pub fn phonemes(&self) -> String {
        self.clauses.concat()
    }
}

/// Groups clauses into sentences; empty sentences are dropped.
pub fn sentences(clauses: &[Clause]) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for clause in clauses {
        let mut text = clause.phonemes.clone();
        text.push_str(clause.terminator);
        if matches!(clause.terminator, "," | ":" | ";") {
            text.push(' ');
        }
        current.push(text.nfd().collect::<String>());
        if clause.end_of_sentence {
            out.push(Sentence {
                clauses: std::mem::take(&mut current),
            });
        }
    }
    if !current.is_empty() {
        out.push(Sentence { clauses: current });
    }
    out.retain(|s| s.clauses.iter().any(|c| !c.is_empty()));
    out
}

/// Model input ids for phonemes: BOS, pad, then each phoneme followed by a
/// pad, then EOS. Phonemes the voice does not know are dropped (and logged).
pub(crate) fn phoneme_ids(phonemes: &str, config: &VoiceConfig) -> Vec<i64> {
    let pad = config.ids_of(PAD);
    let mut ids = Vec::with_capacity(phonemes.chars().count() * 2 + 3);
    ids.extend_from_slice(config.ids_of(BOS));
    ids.extend_from_slice(pad);
    let mut buf = [0u8; 4];
    for phoneme in phonemes.chars() {
        match config
            .phoneme_id_map
            .get(phoneme.encode_utf8(&mut buf) as &str)
        {
            Some(mapped) => {
                ids.extend_from_slice(mapped);
                ids.extend_from_slice(pad);
            }
            None => tracing::debug!(?phoneme, "phoneme not in the voice's map, dropped"),
        }
    }
    ids.extend_from_slice(config.ids_of(EOS));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(p: &str, t: &'static str, end: bool) -> Clause {
        Clause {
            phonemes: p.to_owned(),
            terminator: t,
            end_of_sentence: end,
        }
    }

    #[test]
    fn sentences_follow_piper() {
        let s = sentences(&[
            clause("hˈaɪ", ",", false),
            clause("ðˈɛɹ", ".", true),
            clause("", "", true),
            clause("wˈʌn", "", false),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].phonemes(), "hˈaɪ, ðˈɛɹ.".nfd().collect::<String>());
        assert_eq!(s[1].phonemes(), "wˈʌn");
    }

    #[test]
    fn ids_interleave_pad() {
        let json = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},
            "inference":{"noise_scale":0.6,"length_scale":1,"noise_w":0.8},
            "phoneme_id_map":{"_":[0],"^":[1],"$":[2],"a":[14],"b":[15]},"num_symbols":20}"#;
        let config: VoiceConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            phoneme_ids("ab?a", &config),
            vec![1, 0, 14, 0, 15, 0, 14, 0, 2]
        );
    }
}
