//! Output: finished audio written to disk (and, later, played).

pub mod wav;
