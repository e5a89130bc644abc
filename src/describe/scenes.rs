//! Splitting a narration into scenes, each described on its own: a tour that
//! walks from the harbour into the cathedral should not keep the gulls.
//!
//! A scene is a paragraph (text between blank lines). Paragraphs shorter
//! than `min_chars` are joined with the next one (a poem's stanzas, a list
//! of short labels) and a paragraph longer than `max_chars` is cut at
//! sentence ends, so every caption describes a bounded stretch of speech.

use std::ops::Range;

/// Bounds on a scene's length, in bytes of UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneBounds {
    pub(crate) min_chars: usize,
    pub(crate) max_chars: usize,
}

impl Default for SceneBounds {
    fn default() -> Self {
        Self {
            min_chars: 200,
            max_chars: 1200,
        }
    }
}

/// The scenes of `text` as byte ranges, in order, each trimmed of
/// surrounding white space. Empty for a text of white space only.
pub(crate) fn split_scenes(text: &str, bounds: SceneBounds) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    for paragraph in paragraphs(text) {
        split_long(text, paragraph, bounds.max_chars, &mut pieces);
    }
    let mut scenes: Vec<Range<usize>> = Vec::new();
    for piece in pieces {
        match scenes.last_mut() {
            Some(last)
                if last.len() < bounds.min_chars && piece.end - last.start <= bounds.max_chars =>
            {
                last.end = piece.end;
            }
            _ => scenes.push(piece),
        }
    }
    // A short last scene joins the one before it when that fits.
    if scenes.len() >= 2 {
        let n = scenes.len();
        if scenes[n - 1].len() < bounds.min_chars
            && scenes[n - 1].end - scenes[n - 2].start <= bounds.max_chars
        {
            let last = scenes.remove(n - 1);
            scenes[n - 2].end = last.end;
        }
    }
    scenes
}

/// Byte ranges of the paragraphs: runs of lines separated by lines that are
/// empty or white space only.
fn paragraphs(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(s..end);
            }
        } else {
            let lead = line.len() - line.trim_start().len();
            start.get_or_insert(line_start + lead);
            end = line_start + line.trim_end().len();
        }
    }
    if let Some(s) = start {
        out.push(s..end);
    }
    out
}

/// Cuts `range` of `text` at sentence ends into pieces of at most `max`
/// bytes where sentences allow (a single longer sentence stays whole).
fn split_long(text: &str, range: Range<usize>, max: usize, out: &mut Vec<Range<usize>>) {
    let mut start = range.start;
    while range.end - start > max {
        let window = &text[start..range.end];
        // The last sentence end within the limit, else the first after it.
        let ends = sentence_ends(window);
        let cut = ends
            .iter()
            .rev()
            .find(|&&e| e <= max)
            .or_else(|| ends.first())
            .copied();
        let Some(cut) = cut else { break };
        out.push(start..start + cut);
        let rest = &window[cut..];
        start += cut + (rest.len() - rest.trim_start().len());
    }
    if start < range.end {
        out.push(start..range.end);
    }
}

/// Byte offsets just past each sentence end in `text`: `.`, `!` or `?`
/// before white space, or a full-width `。！？` (Chinese and Japanese put no
/// space after them), with closing quotes kept with their sentence.
pub(crate) fn sentence_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let mut end = i + c.len_utf8();
        let ascii_end = matches!(c, '.' | '!' | '?');
        if !(ascii_end || matches!(c, '。' | '！' | '？')) {
            continue;
        }
        while let Some(&(j, q)) = chars.peek() {
            if !matches!(q, '"' | '\'' | '”' | '’' | '」' | '』' | '）' | ')') {
                break;
            }
            end = j + q.len_utf8();
            chars.next();
        }
        let rest = &text[end..];
        // "Stop!" she said: a lower-case word after the stop goes on
        // with the same sentence.
        let goes_on = rest
            .trim_start()
            .chars()
            .next()
            .is_some_and(char::is_lowercase);
        let spaced = rest.chars().next().is_some_and(char::is_whitespace);
        if !ascii_end || (spaced && !goes_on) {
            ends.push(end);
        }
    }
    ends
}

/// The sentences of `text`, trimmed, empty ones left out (the last one
/// may lack its full stop).
pub fn sentences(text: &str) -> Vec<&str> {
    let mut start = 0;
    let mut out = Vec::new();
    for end in sentence_ends(text).into_iter().chain([text.len()]) {
        if end <= start {
            continue;
        }
        let sentence = text[start..end].trim();
        if !sentence.is_empty() {
            out.push(sentence);
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(text: &'a str, scenes: &[Range<usize>]) -> Vec<&'a str> {
        scenes.iter().map(|r| &text[r.clone()]).collect()
    }

    #[test]
    fn paragraphs_become_scenes() {
        let harbour = "We start at the harbour, where the fishing fleet unloads its catch every morning and the gulls wait on every post for a share of it.";
        let cathedral = "Now step inside the cathedral. The nave is cool and dim, and the great west window throws coloured light onto the stone floor.";
        let text = format!("\n  {harbour}\r\n\r\n \n{cathedral}\n");
        let bounds = SceneBounds {
            min_chars: 100,
            max_chars: 1000,
        };
        let scenes = split_scenes(&text, bounds);
        assert_eq!(texts(&text, &scenes), vec![harbour, cathedral]);
    }

    #[test]
    fn short_paragraphs_are_joined_and_long_ones_cut() {
        let text = "Roses are red.\n\nViolets are blue.\n\nSugar is sweet.";
        let scenes = split_scenes(text, SceneBounds::default());
        assert_eq!(scenes, vec![0..text.len()]);

        let sentence = "The tide comes in over the flats and the birds lift off. ";
        let long = sentence.repeat(40);
        let bounds = SceneBounds {
            min_chars: 50,
            max_chars: 300,
        };
        let scenes = split_scenes(long.trim_end(), bounds);
        assert!(scenes.len() >= 8, "{scenes:?}");
        for s in &scenes {
            assert!(s.len() <= 300, "{s:?}");
            assert!(long[s.clone()].ends_with('.'));
        }
        // Nothing lost: the scenes cover every sentence in order.
        let joined: Vec<&str> = texts(&long, &scenes);
        assert_eq!(joined.join(" "), long.trim_end());
    }

    #[test]
    fn chinese_sentences_end_at_full_width_stops() {
        let text = "夜深了，客船停在江边。远处传来钟声！“你听见了吗？”他问。";
        assert_eq!(
            sentences(text),
            [
                "夜深了，客船停在江边。",
                "远处传来钟声！",
                "“你听见了吗？”",
                "他问。"
            ]
        );
        let long = "海浪拍打着礁石。".repeat(200);
        let scenes = split_scenes(&long, SceneBounds::default());
        assert!(scenes.len() > 1, "a long Chinese paragraph is cut");
        for s in &scenes {
            assert!(s.len() <= SceneBounds::default().max_chars && long[s.clone()].ends_with('。'));
        }
        assert_eq!(
            sentences("It rained. Then \"Stop!\" she said. 3.5 miles"),
            ["It rained.", "Then \"Stop!\" she said.", "3.5 miles"]
        );
    }

    #[test]
    fn white_space_only_has_no_scenes() {
        assert!(split_scenes(" \n\t\n", SceneBounds::default()).is_empty());
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "Ça y est. Déjà vu. Über alles. ".repeat(30);
        let bounds = SceneBounds {
            min_chars: 10,
            max_chars: 60,
        };
        for s in split_scenes(&text, bounds) {
            assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        }
    }
}
