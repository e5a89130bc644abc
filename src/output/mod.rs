//! Output: finished audio written to disk and played.

pub mod play;
pub mod transport;
pub mod wav;
