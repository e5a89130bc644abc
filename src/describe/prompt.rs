//! What the describer asks the model, and the grammar that bounds what it
//! can answer.
//!
//! Chat-tuned models get a system message and a few worked examples as
//! earlier turns, rendered with the model's own chat template. Base models
//! (Gemma-3-270M has no template) echo a zero-shot instruction back, but
//! continue a few-shot list of "Text: ... / Sounds: {...}" pairs sensibly,
//! so they get that as a plain completion prompt. Either way the GBNF
//! grammar forces the answer into [`super::answer::SoundAnswer`]'s JSON.

use super::answer::{AmbienceLevel, SoundAnswer};

/// The JSON answer: a place, two to four sound sources, an ambience level.
/// Phrases are bounded (60 characters, [`super::answer::MAX_PHRASE_CHARS`]) and cannot
/// hold quotes or backslashes, so the answer is always valid JSON and never
/// long.
pub(crate) const ANSWER_GRAMMAR: &str = r#"
root   ::= "{" ws "\"place\":" ws phrase "," ws "\"sounds\":" ws "[" ws phrase ("," ws phrase){1,3} ws "]" "," ws "\"level\":" ws level ws "}"
phrase ::= "\"" [a-zA-Z] [a-zA-Z ,'-]{1,59} "\""
level  ::= "\"quiet\"" | "\"moderate\"" | "\"busy\""
ws     ::= " "?
"#;

/// The instruction, as the system message of a chat model and the header
/// of the completion prompt.
pub(crate) const INSTRUCTION: &str = "You choose the background sounds for a narrated text. \
Read the text and answer in JSON: the place where it happens, two to four concrete sounds a \
listener would hear there (a source and what it does, such as \"waves crashing on rocks\"), \
and how busy the ambience is (quiet, moderate or busy). Only sounds of things and nature: \
no speech, voices, talking, narration or singing. No music unless the text is about music.";

/// Worked examples shown before the text.
pub(crate) const EXAMPLES: &[(&str, &str, &[&str], AmbienceLevel)] = &[
    (
        "The fishing boats return at dusk. Nets are hauled onto the quay while the lighthouse \
         begins to turn.",
        "a harbour at dusk",
        &[
            "waves lapping against boats",
            "seagulls calling",
            "ropes creaking",
        ],
        AmbienceLevel::Moderate,
    ),
    (
        "In 1850 this forge made horseshoes for the whole valley. The smith worked from dawn \
         until dark.",
        "a village forge",
        &[
            "hammer striking an anvil",
            "fire crackling",
            "bellows blowing",
        ],
        AmbienceLevel::Moderate,
    ),
    (
        "Deep in the rainforest, the jaguar waits silently for nightfall.",
        "a rainforest at night",
        &[
            "insects chirping",
            "rain dripping from leaves",
            "frogs croaking",
        ],
        AmbienceLevel::Quiet,
    ),
    (
        "Every Saturday the square filled with farmers selling cheese, bread and live geese.",
        "a busy market square",
        &[
            "crowd footsteps on cobblestones",
            "cart wheels rolling",
            "geese honking",
        ],
        AmbienceLevel::Busy,
    ),
];

/// Longest narration passed to the model, in bytes; a scene is shorter
/// (see [`super::scenes::SceneBounds`]), a whole long text is cut here.
pub(crate) const MAX_TEXT_BYTES: usize = 1500;

/// How a model is prompted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// The model's chat template with system message and example turns.
    Chat,
    /// A few-shot completion prompt, for base models.
    Completion,
}

/// Where the narration goes in a rendered prompt; the prompt is rendered
/// once with this marker and split there, so the part before it can be
/// evaluated once and kept in the KV cache for every text.
pub(crate) const TEXT_MARKER: &str = "@@VIVID_NARRATION@@";

/// The answer to an example, as the model should write it.
pub(crate) fn example_answer(place: &str, sounds: &[&str], level: AmbienceLevel) -> String {
    let answer = SoundAnswer {
        place: place.to_owned(),
        sounds: sounds.iter().map(|s| (*s).to_owned()).collect(),
        level,
    };
    // Serializing strings and a unit enum cannot fail.
    serde_json::to_string(&answer).unwrap_or_default()
}

/// The user turn for one text.
pub(crate) fn user_turn(text: &str) -> String {
    format!("Text: {text}")
}

/// The narration as it goes into the prompt: one line, at most
/// [`MAX_TEXT_BYTES`], cut at a character boundary.
pub(crate) fn prompt_text(text: &str) -> String {
    let mut one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() > MAX_TEXT_BYTES {
        let mut cut = MAX_TEXT_BYTES;
        while !one_line.is_char_boundary(cut) {
            cut -= 1;
        }
        one_line.truncate(cut);
    }
    one_line
}

/// What the model is asked and allowed to answer: the instruction, the
/// worked examples and the grammar of a free-text answer (catalog mode
/// asks the model to weigh phrases instead, see [`super::evidence`]).
#[derive(Debug, Clone)]
pub(crate) struct PromptSet {
    /// The chat prompt's system message.
    pub instruction: String,
    /// The completion prompt's first paragraph.
    pub header: String,
    /// (text, answer JSON) pairs.
    pub examples: Vec<(String, String)>,
    pub(crate) grammar: String,
}

impl PromptSet {
    /// Free text: any place and sound phrases (for AudioLDM2's captions).
    pub fn free() -> PromptSet {
        PromptSet {
            instruction: INSTRUCTION.to_owned(),
            header: "Background sounds for narrated texts: for each text, the place and the \
                     sounds a listener would hear there, without speech or music."
                .to_owned(),
            examples: EXAMPLES
                .iter()
                .map(|(text, place, sounds, level)| {
                    ((*text).to_owned(), example_answer(place, sounds, *level))
                })
                .collect(),
            grammar: ANSWER_GRAMMAR.to_owned(),
        }
    }

    /// (role, content) turns of the chat prompt, the last one holding
    /// [`TEXT_MARKER`].
    pub(crate) fn chat_turns(&self) -> Vec<(&'static str, String)> {
        let mut turns = vec![("system", self.instruction.clone())];
        for (text, answer) in &self.examples {
            turns.push(("user", user_turn(text)));
            turns.push(("assistant", answer.clone()));
        }
        turns.push(("user", user_turn(TEXT_MARKER)));
        turns
    }

    /// The completion prompt, holding [`TEXT_MARKER`] where the text goes.
    pub(crate) fn completion_prompt(&self) -> String {
        let mut prompt = format!("{}\n\n", self.header);
        for (text, answer) in &self.examples {
            prompt.push_str(&format!("Text: {text}\nSounds: {answer}\n\n"));
        }
        prompt.push_str(&format!("Text: {TEXT_MARKER}\nSounds:"));
        prompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_keep_the_rules_they_teach() {
        for (text, place, sounds, level) in EXAMPLES {
            let answer: SoundAnswer =
                serde_json::from_str(&example_answer(place, sounds, *level)).unwrap();
            let composed = super::super::caption::compose(&answer, text).unwrap();
            assert_eq!(composed.kept.len(), sounds.len(), "{composed:?}");
            assert!((2..=4).contains(&sounds.len()));
            for phrase in sounds.iter().chain([place]) {
                assert!(
                    phrase.len() < super::super::answer::MAX_PHRASE_CHARS && !phrase.contains('"'),
                    "{phrase}"
                );
            }
        }
    }

    #[test]
    fn prompts_hold_the_marker_once_at_the_end() {
        let prompt = PromptSet::free().completion_prompt();
        assert_eq!(prompt.matches(TEXT_MARKER).count(), 1);
        assert!(prompt.ends_with("Sounds:"));
        let turns = PromptSet::free().chat_turns();
        assert_eq!(turns.len(), 2 + 2 * EXAMPLES.len());
        assert!(turns.last().unwrap().1.contains(TEXT_MARKER));
    }

    #[test]
    fn prompt_text_is_one_bounded_line() {
        let text = "Grüße aus Köln.\n\nZweiter Absatz. ".repeat(200);
        let line = prompt_text(&text);
        assert!(line.len() <= MAX_TEXT_BYTES);
        assert!(!line.contains('\n'));
    }
}
