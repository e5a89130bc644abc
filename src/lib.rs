//! vivid: an offline narration appliance. A text file goes in; speech in a
//! natural voice over a background soundscape that fits the text comes out,
//! as a WAV file and through ALSA.
//!
//! The library is laid out by pipeline stage, and data flows one way:
//!
//! ```text
//! text ─┬─> describe (LLM caption of the sound scene) ──> background (AudioLDM2)
//!       └─> speech (Piper VITS voice) ─────────────────────────────┴─> mix ─> output / play
//! ```
//!
//! Each stage lives in its own module and is added by its own piece of work;
//! the modules here are the ground they share: configuration, the model
//! manifest and fetching, installation checks, logging and durable file
//! writing.

pub mod audio;
pub mod background;
pub mod bench;
pub mod compute;
pub mod config;
pub mod describe;
pub mod doctor;
pub mod fsutil;
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
