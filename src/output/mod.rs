//! Output: finished audio written to disk and played.

pub mod play;
pub(crate) mod transport;
pub mod wav;
