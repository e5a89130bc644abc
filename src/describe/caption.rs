//! From the model's JSON answer to an AudioCaps-style caption, and the
//! rules every caption keeps whichever method made it.
//!
//! AudioLDM2 was trained on captions like "Waves crash on rocks while gulls
//! call". It renders "a man speaks" as babble and adds music whenever a
//! caption mentions it, and speech is added separately anyway, so sources of
//! speech or singing are dropped, and music is dropped unless the narration
//! itself is about music.

use serde::Serialize;

use super::answer::{MAX_PHRASE_CHARS, MAX_SOUNDS, SoundAnswer};

/// Most words a caption may have. CLAP reads 77 tokens and AudioLDM2's T5
/// side 128; 40 words stays well inside both (about 1.3 tokens a word).
pub(crate) const MAX_CAPTION_WORDS: usize = 40;
/// Most words the `text` method passes on (method 2, the text as prompt).
pub(crate) const MAX_TEXT_PROMPT_WORDS: usize = 50;
/// Most words in one sound source or the place.
const MAX_PHRASE_WORDS: usize = 10;

/// A rule a caption broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RuleBreak {
    /// Names speech, voices, narration or singing (the word found).
    Speech(String),
    /// Names music although the text is not about music.
    Music(String),
    /// Longer than [`MAX_CAPTION_WORDS`].
    TooLong(usize),
    Empty,
}

impl std::fmt::Display for RuleBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleBreak::Speech(w) => write!(f, "names speech or singing (`{w}`)"),
            RuleBreak::Music(w) => write!(f, "names music (`{w}`) in a text not about music"),
            RuleBreak::TooLong(n) => write!(f, "{n} words, more than {MAX_CAPTION_WORDS}"),
            RuleBreak::Empty => write!(f, "is empty"),
        }
    }
}

/// Word stems of speech and singing. Matched at the start of a word, so
/// "speaks", "voices", "narrator" and "singing" are caught; a stem ending in
/// `=` matches only the word itself or its plural, for stems that also
/// start innocent words ("yell" in "yellow", "band" in "bandage"). Natural
/// sounds that merely sound like speech ("a babbling brook") are allowed.
const SPEECH_STEMS: &[&str] = &[
    "speak",
    "speech",
    "spoken",
    "voice",
    "talk",
    "narrat",
    "conversation",
    "chatter",
    "whisper",
    "announc",
    "lecture",
    "shout",
    "yell=",
    "yells=",
    "yelling=",
    "says=",
    "saying=",
    "said=",
    "word=",
    "dialog",
    // A cheering or laughing crowd is voices too: AudioLDM2 renders it as
    // babble, and the soundscape has no voices ("crowd footsteps" stays).
    "cheer",
    "applau",
    "clapping",
    "laugh",
    "singer",
    "singing",
    "sings",
    "sang",
    "sung",
    "song",
    "chant",
    "choir",
    "lyric",
];

const MUSIC_STEMS: &[&str] = &[
    "music",
    "melod",
    "song",
    "tune=",
    "guitar",
    "piano",
    "violin",
    "cello",
    "orchestra",
    "symphon",
    "band=",
    "organ=",
    "drummer",
    "flute",
    "trumpet",
    "harp=",
    "concert",
    "sonata",
    "choir",
    "instrument",
    "hymn",
    "fiddl",
    "saxophon",
    "accordion",
    "bagpipe",
    "jazz",
];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
}

fn stem_matches(stem: &str, word: &str) -> bool {
    match stem.strip_suffix('=') {
        Some(exact) => word == exact || word.strip_suffix('s') == Some(exact),
        None => word.starts_with(stem),
    }
}

fn first_match(text: &str, stems: &[&str]) -> Option<String> {
    words(text).find(|w| stems.iter().any(|s| stem_matches(s, w)))
}

/// Animals whose "song" is a natural sound, not singing: "birds singing"
/// is one of the commonest AudioCaps captions.
const SINGING_ANIMALS: &[&str] = &[
    "bird",
    "lark",
    "robin",
    "thrush",
    "nightingale",
    "blackbird",
    "wren",
    "finch",
    "warbler",
    "whale",
    "frog",
    "cricket",
    "cicada",
];

fn names_speech(text: &str) -> Option<String> {
    let animal = words(text).any(|w| SINGING_ANIMALS.iter().any(|a| w.starts_with(a)));
    words(text).find(|w| {
        SPEECH_STEMS.iter().any(|s| stem_matches(s, w))
            && !(animal
                && ["sing", "song", "sang", "sung"]
                    .iter()
                    .any(|s| w.starts_with(s)))
    })
}

/// True when the narration is about music, so a musical background fits.
pub(crate) fn text_is_about_music(text: &str) -> bool {
    first_match(text, MUSIC_STEMS).is_some()
}

/// Every rule `caption` breaks for a narration `text`.
pub fn rule_breaks(caption: &str, text: &str) -> Vec<RuleBreak> {
    let mut breaks = Vec::new();
    let count = words(caption).count();
    if count == 0 {
        breaks.push(RuleBreak::Empty);
    }
    if count > MAX_CAPTION_WORDS {
        breaks.push(RuleBreak::TooLong(count));
    }
    if let Some(word) = names_speech(caption) {
        breaks.push(RuleBreak::Speech(word));
    }
    if !text_is_about_music(text)
        && let Some(word) = first_match(caption, MUSIC_STEMS)
    {
        breaks.push(RuleBreak::Music(word));
    }
    breaks
}

/// What became of one answer: the caption, and the sounds dropped on the
/// way with the reason for each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Composed {
    pub caption: String,
    pub kept: Vec<String>,
    pub dropped: Vec<(String, String)>,
}

/// Builds the caption from an answer: sources that break a rule dropped,
/// duplicates and empty ones removed, at most [`MAX_SOUNDS`], joined as
/// "A, B and C in PLACE." `None` when no usable sound is left.
pub(crate) fn compose(answer: &SoundAnswer, text: &str) -> Option<Composed> {
    let mut kept: Vec<String> = Vec::new();
    let mut dropped = Vec::new();
    for sound in &answer.sounds {
        let sound = clean_phrase(sound);
        if sound.is_empty() {
            continue;
        }
        if let Some(rule) = rule_breaks(&sound, text)
            .into_iter()
            .find(|r| !matches!(r, RuleBreak::TooLong(_)))
        {
            dropped.push((sound, rule.to_string()));
            continue;
        }
        if kept.iter().any(|k| k.eq_ignore_ascii_case(&sound)) || kept.len() == MAX_SOUNDS {
            continue;
        }
        kept.push(sound);
    }
    if kept.is_empty() {
        return None;
    }
    let mut caption = join_sounds(&kept);
    let place = clean_phrase(&answer.place);
    if !place.is_empty() && rule_breaks(&place, text).is_empty() {
        caption.push(' ');
        caption.push_str(&place_phrase(&place));
    }
    caption.push('.');
    let mut chars = caption.chars();
    let caption = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => caption,
    };
    Some(Composed {
        caption,
        kept,
        dropped,
    })
}

/// Lower-case, single-spaced, bounded, without the trailing punctuation a
/// model likes to add, and without a last word the grammar's length bound
/// cut short.
fn clean_phrase(phrase: &str) -> String {
    let mut words: Vec<&str> = phrase.split_whitespace().collect();
    if phrase.chars().count() >= MAX_PHRASE_CHARS && words.len() > 1 {
        words.pop();
    }
    // A phrase that runs on ends at a dangling joining word: drop those.
    words.truncate(MAX_PHRASE_WORDS);
    while words.len() > 1
        && matches!(
            words.last().map(|w| w.to_lowercase()).as_deref(),
            Some("and" | "or" | "the" | "a" | "an" | "of" | "in" | "on" | "with" | "to" | "at")
        )
    {
        words.pop();
    }
    words
        .join(" ")
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_lowercase()
}

fn join_sounds(sounds: &[String]) -> String {
    match sounds {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "in a harbour", keeping the model's own preposition ("at the market",
/// "on a ship").
fn place_phrase(place: &str) -> String {
    const PREPOSITIONS: &[&str] = &[
        "in", "at", "on", "inside", "outside", "near", "by", "under", "over", "along", "beside",
        "across", "through", "within", "around",
    ];
    let first = place.split_whitespace().next().unwrap_or("");
    if PREPOSITIONS.contains(&first) {
        place.to_owned()
    } else {
        format!("in {place}")
    }
}

/// Method 2: the narration itself as the prompt, cut to
/// [`MAX_TEXT_PROMPT_WORDS`] words, at the end of a sentence where one
/// falls in the second half.
pub(crate) fn text_prompt(text: &str) -> String {
    let all: Vec<&str> = text.split_whitespace().collect();
    if all.len() <= MAX_TEXT_PROMPT_WORDS {
        return all.join(" ");
    }
    let head = &all[..MAX_TEXT_PROMPT_WORDS];
    let sentence_end = head
        .iter()
        .rposition(|w| w.ends_with(['.', '!', '?']))
        .filter(|&i| i + 1 >= MAX_TEXT_PROMPT_WORDS / 2);
    match sentence_end {
        Some(i) => head[..=i].join(" "),
        None => head.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::super::answer::AmbienceLevel;
    use super::*;

    fn answer(place: &str, sounds: &[&str]) -> SoundAnswer {
        SoundAnswer {
            place: place.to_owned(),
            sounds: sounds.iter().map(|s| (*s).to_owned()).collect(),
            level: AmbienceLevel::Moderate,
        }
    }

    #[test]
    fn composes_an_audiocaps_style_caption() {
        let c = compose(
            &answer(
                "a harbour at dusk",
                &[
                    "Waves lapping against boats",
                    "gulls calling.",
                    "ropes creaking",
                ],
            ),
            "The boats come home.",
        )
        .unwrap();
        assert_eq!(
            c.caption,
            "Waves lapping against boats, gulls calling and ropes creaking in a harbour at dusk."
        );
        let c = compose(&answer("at the market", &["carts rolling"]), "x").unwrap();
        assert_eq!(c.caption, "Carts rolling at the market.");
    }

    #[test]
    fn drops_speech_and_unasked_music() {
        let c = compose(
            &answer(
                "a tavern",
                &[
                    "people talking",
                    "a fiddle tune",
                    "glasses clinking",
                    "a man speaks",
                ],
            ),
            "The sailors drank in the tavern.",
        )
        .unwrap();
        assert_eq!(c.kept, vec!["glasses clinking"]);
        assert_eq!(c.dropped.len(), 3, "{:?}", c.dropped);
        // The same music is kept when the text is about music.
        let c = compose(
            &answer("a tavern", &["a fiddle tune", "glasses clinking"]),
            "The fiddler played a tune every night.",
        )
        .unwrap();
        assert_eq!(c.kept.len(), 2);
    }

    #[test]
    fn cut_and_dangling_words_are_dropped() {
        let cut = "rain dripping from the leaves of the tall trees in the ca";
        assert_eq!(cut.len(), super::MAX_PHRASE_CHARS - 3);
        let cut60 = format!("{cut}nop");
        let c = compose(&answer("", &[&cut60, "wind in the"]), "x").unwrap();
        assert_eq!(
            c.kept,
            vec!["rain dripping from the leaves of the tall trees", "wind"]
        );
    }

    #[test]
    fn nothing_usable_is_none() {
        assert!(compose(&answer("a hall", &["voices", "  ", "singing"]), "x").is_none());
    }

    #[test]
    fn keeps_at_most_four_distinct_sounds() {
        let c = compose(
            &answer("", &["rain", "Rain", "wind", "thunder", "hail", "leaves"]),
            "x",
        )
        .unwrap();
        assert_eq!(c.kept, vec!["rain", "wind", "thunder", "hail"]);
        assert_eq!(c.caption, "Rain, wind, thunder and hail.");
    }

    #[test]
    fn rules_catch_word_forms_but_not_innocent_words() {
        assert!(matches!(
            rule_breaks("A narrator speaks softly", "x")[0],
            RuleBreak::Speech(_)
        ));
        assert!(rule_breaks("Wind across a single field", "x").is_empty());
        assert!(rule_breaks("A yellow bandage, an organic harpoon", "x").is_empty());
        assert!(rule_breaks("Rain drumming on a roof by a babbling brook", "x").is_empty());
        assert!(!rule_breaks("A brass band plays", "x").is_empty());
        assert!(rule_breaks("Birds singing in a garden", "x").is_empty());
        assert!(!rule_breaks("A woman singing in a garden", "x").is_empty());
        let long = "word ".repeat(MAX_CAPTION_WORDS + 1);
        assert!(
            rule_breaks(&long, "x")
                .iter()
                .any(|r| matches!(r, RuleBreak::TooLong(_)))
        );
    }

    #[test]
    fn text_prompt_is_bounded_and_prefers_sentence_ends() {
        let short = "Rain on the roof.";
        assert_eq!(text_prompt(short), short);
        let sentence = "One two three four five six seven eight nine ten. ";
        let long = sentence.repeat(10);
        let cut = text_prompt(&long);
        assert!(cut.split_whitespace().count() <= MAX_TEXT_PROMPT_WORDS);
        assert!(cut.ends_with("ten."), "{cut}");
        let run_on = "word ".repeat(80);
        assert_eq!(
            text_prompt(&run_on).split_whitespace().count(),
            MAX_TEXT_PROMPT_WORDS
        );
    }
}
