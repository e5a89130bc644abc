//! Text to IPA phonemes with the system's libespeak-ng, clause by clause,
//! with each clause's closing punctuation, the way piper-tts reads it.
//!
//! piper-tts calls `espeak_TextToPhonemesWithTerminator` (espeak-ng 1.52),
//! which reports the punctuation that ended each clause. Debian 12 ships
//! 1.51, whose `espeak_TextToPhonemes` reports only how far it read. The
//! terminator is recovered from that: espeak-ng stops one character past
//! the clause (its look-ahead), so the clause text is what it consumed minus
//! that character; its last punctuation mark, after trailing whitespace and
//! closing quotes or brackets, is the terminator. A blank line after it is
//! a paragraph break, which espeak-ng reports as a sentence end without
//! punctuation. An ellipsis ends a clause without a terminator and without
//! ending the sentence. `tests/speech_parity.rs` checks the result against
//! piper-tts's own phonemes.
//!
//! libespeak-ng keeps global state and is not thread-safe: every call goes
//! through one process-wide lock.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;

use super::SpeechError;

/// One clause as espeak-ng read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// IPA phonemes, language-switch flags like `(fr)` removed.
    pub phonemes: String,
    /// The punctuation that ended it: one of `. ? ! , : ;`, or empty.
    pub(crate) terminator: &'static str,
    /// Whether the clause ends a sentence.
    pub(crate) end_of_sentence: bool,
}

struct EspeakState {
    initialized: bool,
    voice: Option<String>,
}

static ESPEAK: Mutex<EspeakState> = Mutex::new(EspeakState {
    initialized: false,
    voice: None,
});

// Values from espeak-ng's speak_lib.h.
const AUDIO_OUTPUT_SYNCHRONOUS: u32 = 0x02;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;
const EE_OK: i32 = 0;

/// Reads `text` with the espeak-ng voice `voice` (e.g. `en-us`).
pub(crate) fn clauses(voice: &str, text: &str) -> Result<Vec<Clause>, SpeechError> {
    // espeak-ng stops at a NUL; a text file with one in it should still be
    // read whole.
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| if b == 0 { b' ' } else { b })
        .collect();
    let c_text = CString::new(bytes).map_err(|e| SpeechError::Espeak(e.to_string()))?;
    let c_voice = CString::new(voice)
        .map_err(|_| SpeechError::Espeak(format!("voice name {voice:?} contains NUL")))?;

    let mut state = ESPEAK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !state.initialized {
        // SAFETY: espeak_Initialize takes no pointers we own beyond a NULL
        // data path (use the default or $ESPEAK_DATA_PATH); the lock
        // serializes it with every other espeak-ng call.
        let rate = unsafe {
            espeakng_sys::espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), 0)
        };
        if rate <= 0 {
            return Err(SpeechError::Espeak(
                "espeak-ng could not load its data (install espeak-ng-data, or set ESPEAK_DATA_PATH)"
                    .to_owned(),
            ));
        }
        state.initialized = true;
    }
    if state.voice.as_deref() != Some(voice) {
        // SAFETY: c_voice is a valid NUL-terminated string that outlives the
        // call; access is serialized by the lock.
        let rc = unsafe { espeakng_sys::espeak_SetVoiceByName(c_voice.as_ptr()) };
        if rc != EE_OK {
            state.voice = None;
            return Err(SpeechError::Espeak(format!(
                "espeak-ng has no voice {voice:?} (error {rc}); check the voice's espeak.voice setting"
            )));
        }
        state.voice = Some(voice.to_owned());
    }

    let all = c_text.as_bytes();
    let base = c_text.as_ptr();
    let mut cursor: *const c_void = base.cast();
    let mut out = Vec::new();
    while !cursor.is_null() {
        let start = offset_of(base, cursor, all.len());
        // SAFETY: `cursor` points into `c_text`, which is NUL-terminated and
        // alive for the whole loop; espeak-ng advances it within the buffer
        // or sets it to NULL at the end. The returned string is owned by
        // espeak-ng and valid until the next call, so it is copied at once.
        let phonemes = unsafe {
            let ptr: *const c_char = espeakng_sys::espeak_TextToPhonemes(
                &mut cursor,
                ESPEAK_CHARS_UTF8,
                ESPEAK_PHONEMES_IPA,
            );
            if ptr.is_null() {
                String::new()
            } else {
                CStr::from_ptr(ptr).to_string_lossy().into_owned()
            }
        };
        let (consumed, at_end) = if cursor.is_null() {
            (&all[start..], true)
        } else {
            let end = offset_of(base, cursor, all.len());
            (&all[start..end.max(start)], false)
        };
        let (terminator, end_of_sentence) = clause_end(consumed, at_end);
        out.push(Clause {
            phonemes: strip_language_flags(&phonemes),
            terminator,
            end_of_sentence,
        });
    }
    Ok(out)
}

fn offset_of(base: *const c_char, cursor: *const c_void, len: usize) -> usize {
    (cursor as usize).saturating_sub(base as usize).min(len)
}

/// Terminator and sentence end of a clause from the bytes espeak-ng
/// consumed for it (see the module comment).
fn clause_end(consumed: &[u8], at_end: bool) -> (&'static str, bool) {
    let text = String::from_utf8_lossy(consumed);
    let mut text: &str = &text;
    if !at_end {
        // Drop espeak-ng's one character of look-ahead.
        if let Some((i, _)) = text.char_indices().next_back() {
            text = &text[..i];
        }
    }
    let body = text.trim_end();
    let trailing_ws = &text[body.len()..];
    let body = body.trim_end_matches(['"', '\'', '\u{201d}', '\u{2019}', ')', ']', '}', '\u{bb}']);
    let paragraph = trailing_ws.matches('\n').count() >= 2;
    if paragraph {
        return ("", true);
    }
    if body.ends_with("...") || body.ends_with('\u{2026}') {
        return ("", at_end);
    }
    match body.chars().next_back() {
        Some('.') => (".", true),
        Some('?') => ("?", true),
        Some('!') => ("!", true),
        Some(',') => (",", at_end),
        Some(':') => (":", at_end),
        Some(';') => (";", at_end),
        _ => ("", at_end),
    }
}

/// Removes espeak-ng's language-switch marks, `(fr)` ... `(en)`.
fn strip_language_flags(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        match rest[open + 1..].find(')') {
            // `[^)]+`: at least one character between the brackets.
            Some(close) if close > 0 => {
                out.push_str(&rest[..open]);
                rest = &rest[open + 1 + close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_ends() {
        assert_eq!(clause_end(b"Hi, t", false), (",", false));
        assert_eq!(clause_end(b"Dr. S", false), (".", true));
        assert_eq!(clause_end(b"He said \"hi.\"", false), (".", true));
        assert_eq!(clause_end(b"hree? F", false), ("?", true));
        assert_eq!(clause_end(b"First paragraph.\n\nS", false), ("", true));
        assert_eq!(clause_end(b"our...", true), ("", true));
        assert_eq!(clause_end("Wait\u{2026} w".as_bytes(), false), ("", false));
        assert_eq!(clause_end(b"Hello world", true), ("", true));
        assert_eq!(clause_end(b"(really).", true), (".", true));
    }

    #[test]
    fn language_flags_are_removed() {
        assert_eq!(strip_language_flags("a(fr)b(en)c"), "abc");
        assert_eq!(strip_language_flags("a()b"), "a()b");
        assert_eq!(strip_language_flags("a(b"), "a(b");
    }

    #[test]
    fn reads_clauses_with_terminators() {
        let clauses = clauses("en-us", "Hello, world. Is it raining?").unwrap();
        let summary: Vec<(&str, bool)> = clauses
            .iter()
            .map(|c| (c.terminator, c.end_of_sentence))
            .collect();
        assert_eq!(summary, vec![(",", false), (".", true), ("?", true)]);
        assert!(clauses[0].phonemes.contains('h'), "{clauses:?}");
    }

    #[test]
    fn unknown_voice_is_an_error() {
        let err = clauses("xx-nonexistent", "hello").unwrap_err();
        assert!(err.to_string().contains("xx-nonexistent"), "{err}");
    }
}
