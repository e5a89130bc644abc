//! The setting a text gives: time of day, season and weather, from its
//! words in the languages vivid narrates. A listener hears a night scene
//! differently from a morning one (an owl, crickets, no songbirds), and a
//! winter one without insects; the describer turns these cues into small
//! pushes for and against sources, and the record names the words.

use serde::{Deserialize, Serialize};

use crate::text::keyword_hits;

/// One kind of cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cue {
    Night,
    Dawn,
    Dusk,
    Winter,
    Summer,
    Rain,
    Storm,
}

/// The words of each cue: English, German, French, Spanish, Chinese.
const CUE_WORDS: &[(Cue, &[&str])] = &[
    (
        Cue::Night,
        &[
            "night",
            "midnight",
            "moon",
            "moonlight",
            "moonlit",
            "stars",
            "starlit",
            "nocturnal",
            "Nacht",
            "nachts",
            "Mitternacht",
            "Mond",
            "nuit",
            "minuit",
            "lune",
            "noche",
            "medianoche",
            "luna",
            "夜",
            "深夜",
            "午夜",
            "月光",
            "月亮",
            "月落",
        ],
    ),
    (
        Cue::Dawn,
        &[
            "dawn",
            "sunrise",
            "daybreak",
            "morning",
            "Morgen",
            "Morgengrauen",
            "Sonnenaufgang",
            "aube",
            "aurore",
            "matin",
            "alba",
            "amanecer",
            "madrugada",
            "清晨",
            "黎明",
            "早晨",
            "拂晓",
            "早上",
        ],
    ),
    (
        Cue::Dusk,
        &[
            "dusk",
            "evening",
            "twilight",
            "sunset",
            "nightfall",
            "Abend",
            "Dämmerung",
            "soir",
            "crépuscule",
            "anochecer",
            "atardecer",
            "黄昏",
            "傍晚",
        ],
    ),
    (
        Cue::Winter,
        &[
            "snow", "snowy", "winter", "frost", "frozen", "icy", "blizzard", "sleigh", "drifts",
            "Schnee", "Winter", "Frost", "neige", "hiver", "nieve", "invierno", "helada", "雪",
            "冬天", "冰", "霜",
        ],
    ),
    (
        Cue::Summer,
        &[
            "summer", "heat", "hot", "midday", "noon", "sunny", "warm", "Sommer", "Hitze", "été",
            "chaleur", "verano", "calor", "夏天", "炎热", "夏日",
        ],
    ),
    (
        Cue::Rain,
        &[
            "rain",
            "rainy",
            "drizzle",
            "shower",
            "downpour",
            "puddles",
            "umbrellas",
            "umbrella",
            "monsoon",
            "wet",
            "Regen",
            "regnet",
            "pluie",
            "pleut",
            "pleuvait",
            "lluvia",
            "llueve",
            "雨",
        ],
    ),
    (
        Cue::Storm,
        &[
            "storm",
            "tempest",
            "gale",
            "hurricane",
            "thunderstorm",
            "Sturm",
            "Gewitter",
            "tempête",
            "orage",
            "tormenta",
            "tempestad",
            "风暴",
            "暴风",
            "风雨",
        ],
    ),
];

/// What each cue does to the sources it concerns, in the evidence's own
/// units (a strong semantic match is about 1).
const CUE_EFFECTS: &[(Cue, &[(&str, f32)])] = &[
    (
        Cue::Night,
        &[
            ("owl", 0.5),
            ("crickets", 0.4),
            ("frogs", 0.2),
            ("songbirds", -0.6),
            ("cicadas", -0.3),
            ("bees", -0.6),
            ("seagulls", -0.3),
            ("pigeons", -0.4),
        ],
    ),
    (
        Cue::Dawn,
        &[
            ("songbirds", 0.4),
            ("farmyard", 0.2),
            ("owl", -0.3),
            ("crickets", -0.3),
        ],
    ),
    (Cue::Dusk, &[("crickets", 0.3), ("owl", 0.1)]),
    (
        Cue::Winter,
        &[
            ("footsteps-snow", 0.4),
            ("wind-howling", 0.3),
            ("crickets", -0.6),
            ("cicadas", -0.6),
            ("bees", -0.6),
            ("frogs", -0.5),
            ("songbirds", -0.3),
        ],
    ),
    (
        Cue::Summer,
        &[
            ("cicadas", 0.3),
            ("crickets", 0.2),
            ("bees", 0.2),
            ("footsteps-snow", -0.6),
            ("wind-howling", -0.3),
        ],
    ),
    (
        Cue::Rain,
        &[
            ("rain-light", 0.4),
            ("rain-heavy", 0.3),
            ("rain-roof", 0.2),
            ("bees", -0.4),
            ("cicadas", -0.3),
        ],
    ),
    (
        Cue::Storm,
        &[
            ("wind-gusts", 0.4),
            ("wind-howling", 0.3),
            ("rain-heavy", 0.3),
            ("thunder", 0.2),
            ("wind-breeze", -0.5),
            ("bees", -0.5),
        ],
    ),
];

/// The cues a text gives, each with the words that gave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub cues: Vec<Cue>,
}

impl Setting {
    /// The cues in `words` (stemmed, see [`crate::text::stems`]).
    pub(crate) fn from_words(words: &[String]) -> Setting {
        let cues = CUE_WORDS
            .iter()
            .filter(|(_, list)| {
                let list: Vec<String> = list.iter().map(|w| (*w).to_owned()).collect();
                keyword_hits(&list, words) > 0
            })
            .map(|(cue, _)| *cue)
            .collect();
        Setting { cues }
    }

    /// The push the setting gives source `id` (0 when it concerns none).
    pub(crate) fn effect_on(&self, id: &str) -> f32 {
        CUE_EFFECTS
            .iter()
            .filter(|(cue, _)| self.cues.contains(cue))
            .flat_map(|(_, effects)| effects.iter())
            .filter(|(source, _)| *source == id)
            .map(|(_, delta)| delta)
            .sum()
    }

    pub fn has(&self, cue: Cue) -> bool {
        self.cues.contains(&cue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::stems;

    #[test]
    fn cues_come_from_words_in_every_language() {
        let s = Setting::from_words(&stems("The courier rode on through the moonlit night."));
        assert!(s.has(Cue::Night) && !s.has(Cue::Dawn));
        assert!(s.effect_on("owl") > 0.0 && s.effect_on("songbirds") < 0.0);
        let s = Setting::from_words(&stems("Im Winter lag tiefer Schnee."));
        assert!(s.has(Cue::Winter));
        assert!(s.effect_on("crickets") < 0.0);
        let s = Setting::from_words(&stems("夜深了，客船停在江边。"));
        assert!(s.has(Cue::Night));
        let s = Setting::from_words(&stems("Thank you for visiting."));
        assert!(s.cues.is_empty());
        assert_eq!(s.effect_on("owl"), 0.0);
    }
}
