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
