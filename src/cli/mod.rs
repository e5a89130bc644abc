//! The command line: each command group's arguments and handlers. `main.rs`
//! parses and dispatches; handlers turn arguments into the library's plain
//! settings (on top of the resolved config) and print what happened.

pub mod background;
pub mod bench;
pub mod models;
pub mod narrate;
pub mod play;
mod progress;
pub mod service;

pub(crate) mod library;
pub(crate) use background::{BackgroundArgs, SoundsArgs, background, sounds};
pub(crate) use models::{models_fetch, models_list, models_verify};
pub(crate) use narrate::{DescribeArgs, RenderArgs, SpeakArgs, describe, render, speak};
pub(crate) use play::{PlayArgs, play};
pub(crate) use service::{ControlArgs, TriggersArgs, control, run_doctor, status, triggers};
