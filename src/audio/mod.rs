//! Audio helpers that several stages share, and that depend on no stage:
//! reading sound files, changing their sample rate, mapping channels,
//! seeded noise. `mix`, `output` and
//! the background engines use them; this module imports none of them.

pub mod channels;
pub mod decode;
pub mod noise;
pub(crate) mod resample;

use std::path::PathBuf;

/// Why a sound file could not be read or converted.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
    Resample { from: u32, to: u32, reason: String },
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a sound file vivid reads ({reason}): use WAV, FLAC or Ogg Vorbis", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{} is damaged: {reason}", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{} holds no sound (it is empty)", path.display())]
    Empty { path: PathBuf },
    #[error("{} is {seconds:.0} s long, over the {limit_s:.0} s vivid reads: cut it into shorter files", path.display())]
    TooLong {
        path: PathBuf,
        seconds: f64,
        limit_s: f64,
    },
}
