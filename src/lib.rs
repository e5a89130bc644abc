//! vivid: an offline narration appliance. A text file goes in; speech in a
//! natural voice over a background soundscape that fits the text comes out,
//! as a WAV file and through ALSA.
//!
//! The library is laid out by pipeline stage, and data flows one way:
//!
//! ```text
//! text ─┬─> describe (the scene: place, sources, level) ──> background ─┐
//!       │        (a small LLM with the catalog's evidence)  (soundscape │
//!       │                                                    or AudioLDM2)
//!       └─> speech (Piper VITS voice on tract) ──────────────────────────┴─> mix ─> output / play
//! ```
//!
//! - [`describe`]: a text's scenes, each with a caption and the catalog
//!   sources, place and level a listener should hear.
//! - [`speech`]: the Piper voice, matching piper-tts.
//! - [`background`]: two engines behind one seam: the procedural
//!   soundscape (the default; recipes and the user's library of
//!   recordings) and AudioLDM2 from an exported bundle.
//! - [`mix`], [`output`]: ducking, loudness, the WAV and its report, ALSA.
//! - [`render`]: the whole job, one text to one narration, run with
//!   [`render::RenderSettings`].
//! - [`serve`]: the service: the watched inbox, triggers, the control
//!   socket, metrics.
//! - [`config`]: the config file, and the one place where it and an
//!   [`config::Overrides`] (a command's flags, a job file) become each
//!   stage's settings; the stages never read the config.
//!
//! Shared ground, used by the stages and never using them: [`audio`]
//! (decoding, resampling, channel mapping), [`models`] (the manifest and
//! fetching), [`compute`], [`text`], `fsutil` (durable writes),
//! [`logging`]; and [`doctor`] and [`bench`], which check and measure the
//! installation.
//!
//! The `vivid` binary is this library's user: what it and the tests use
//! is public, the rest is `pub(crate)`.

pub mod audio;
pub mod background;
pub mod bench;
pub mod compute;
pub mod config;
pub mod describe;
pub mod doctor;
pub(crate) mod fsutil;
pub mod logging;
pub mod mix;
pub mod models;
pub mod output;
pub mod render;
pub mod serve;
pub mod speech;
pub mod text;

/// An error and its sources, one after the other ("a: b: c"), as anyhow's
/// `{:#}` writes them: for log lines of typed errors, whose own message
/// leaves the source to the chain.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
