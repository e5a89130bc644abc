//! The first stage: reading a narration text from a file or stdin, with
//! errors that name the file and say what is wrong with it.

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Largest text accepted by default (a museum label is a few KB; a whole
/// book is a mistake, not a job).
pub const DEFAULT_MAX_TEXT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Error)]
pub enum TextError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path} is {size} bytes, more than the limit of {limit} bytes; split it into several texts"
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error(
        "{path} is not UTF-8 text (invalid byte at offset {offset}); save it as UTF-8 \
         (for example `iconv -f latin1 -t utf-8`)"
    )]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path} is empty or holds only white space")]
    Empty { path: PathBuf },
}

/// Reads `path` (`-` for stdin) as UTF-8 text: a byte-order mark removed,
/// CRLF and CR line ends turned into LF.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String, TextError> {
    let read_err = |cause| TextError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
    } else {
        let file = std::fs::File::open(path).map_err(read_err)?;
        file.take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
    }
    if bytes.len() as u64 > max_bytes {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(TextError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: max_bytes,
        });
    }
    decode_text(path, bytes)
}

/// The checks and clean-up of `read_text` on bytes already read.
pub(crate) fn decode_text(path: &Path, bytes: Vec<u8>) -> Result<String, TextError> {
    let text = String::from_utf8(bytes).map_err(|e| TextError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    if text.trim().is_empty() {
        return Err(TextError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

// Word matching, shared by the describer and the soundscape.

/// Words as the matcher compares them: lower case, apostrophes dropped,
/// crudely stemmed ("crackling", "crackle" and "crackles" meet). Chinese
/// and Japanese are written without spaces, so each ideograph or kana is a
/// word of its own and a keyword of several is matched as a run.
pub fn stems(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['\'', '’'], "");
    let mut words = Vec::new();
    let mut word = String::new();
    for c in lower.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                words.push(stem(&std::mem::take(&mut word)));
            }
            words.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            words.push(stem(&std::mem::take(&mut word)));
        }
    }
    if !word.is_empty() {
        words.push(stem(&word));
    }
    words
}

/// Ideographs, kana and hangul syllables: scripts whose words are not
/// separated by spaces.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2FA1F) // extensions B and later
}

fn stem(word: &str) -> String {
    let mut w = word.to_owned();
    let long = |w: &str| w.chars().count() > 4;
    for suffix in ["ing", "ed"] {
        if long(&w) && w.ends_with(suffix) {
            w.truncate(w.len() - suffix.len());
            break;
        }
    }
    if long(&w) && w.ends_with("es") && !w.ends_with("ses") {
        w.truncate(w.len() - 2);
    } else if w.chars().count() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.truncate(w.len() - 1);
    }
    if long(&w) && w.ends_with('e') {
        w.truncate(w.len() - 1);
    }
    // "clopping" -> "clopp": a doubled last consonant goes.
    let bytes = w.as_bytes();
    if bytes.len() > 4
        && bytes[bytes.len() - 1] == bytes[bytes.len() - 2]
        && !matches!(bytes[bytes.len() - 1], b'l' | b's')
    {
        w.truncate(w.len() - 1);
    }
    w
}

fn contains_run(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// How well `words` (stemmed) name something known by `phrases` and
/// `keywords`: a whole phrase counts 3 plus its length (the longest one
/// found), each keyword found counts 1. The soundscape's matcher and the
/// describer's lexical evidence both score this way.
pub(crate) fn phrase_score<'a>(
    phrases: impl IntoIterator<Item = &'a String>,
    keywords: &[String],
    words: &[String],
) -> u32 {
    let phrase_score = phrases
        .into_iter()
        .map(|s| stems(s))
        .filter(|s| contains_run(words, s))
        .map(|s| 3 + s.len() as u32)
        .max()
        .unwrap_or(0);
    phrase_score + keyword_hits(keywords, words) as u32
}

/// How many of `keywords` (each counted once, by stem) are among `words`;
/// a keyword of several words (Chinese ones are) counts where it appears
/// as a run.
pub(crate) fn keyword_hits(keywords: &[String], words: &[String]) -> usize {
    let mut stemmed: Vec<Vec<String>> = keywords.iter().map(|k| stems(k)).collect();
    stemmed.sort_unstable();
    stemmed.dedup();
    stemmed
        .iter()
        .filter(|k| match k.as_slice() {
            [one] => words.contains(one),
            run => contains_run(words, run),
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_bom_and_line_ends() {
        let text = decode_text(
            Path::new("a.txt"),
            b"\xef\xbb\xbfOne.\r\nTwo.\rThree.".to_vec(),
        )
        .unwrap();
        assert_eq!(text, "One.\nTwo.\nThree.");
    }

    #[test]
    fn rejects_bad_bytes_and_empty_text_naming_the_file() {
        let err = decode_text(Path::new("/in/label.txt"), b"caf\xe9".to_vec()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/in/label.txt") && msg.contains("offset 3"),
            "{msg}"
        );
        let err = decode_text(Path::new("/in/blank.txt"), b" \n\t ".to_vec()).unwrap_err();
        assert!(err.to_string().contains("/in/blank.txt"), "{err}");
    }

    #[test]
    fn chinese_is_matched_by_runs_of_characters() {
        let words = stems("夜里，海浪拍打着岸边。The Riders galloped.");
        assert!(words.contains(&"海".to_owned()) && words.contains(&"gallop".to_owned()));
        let keywords = vec!["海浪".to_owned(), "浪漫".to_owned(), "rider".to_owned()];
        assert_eq!(keyword_hits(&keywords, &words), 2, "{words:?}");
    }

    #[test]
    fn rejects_oversized_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("big.txt");
        std::fs::write(&path, vec![b'a'; 100]).unwrap();
        let err = read_text(&path, 10).unwrap_err();
        assert!(
            matches!(err, TextError::TooLarge { size: 100, .. }),
            "{err}"
        );
        assert_eq!(read_text(&path, 100).unwrap().len(), 100);
    }
}
