//! The answer the describer's model gives for a scene: a place, the sound
//! sources, an ambience level. The prompt asks for it, its grammar bounds
//! it (`prompt`), and a caption is composed from it (`caption`).

use serde::{Deserialize, Serialize};

/// Most sound sources kept from one answer.
pub(crate) const MAX_SOUNDS: usize = 4;
/// Longest phrase the grammar lets through; a phrase this long was most
/// likely cut mid-word.
pub(crate) const MAX_PHRASE_CHARS: usize = 60;

/// The answer the grammar forces the model to give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoundAnswer {
    /// Where the scene happens, e.g. "a harbour at dusk".
    pub place: String,
    /// Concrete sound sources with what they do, e.g. "gulls calling".
    pub sounds: Vec<String>,
    /// How busy the ambience is: quiet, moderate or busy.
    pub level: AmbienceLevel,
}

/// How busy a scene's ambience is: how many sources play and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmbienceLevel {
    Quiet,
    Moderate,
    Busy,
}
