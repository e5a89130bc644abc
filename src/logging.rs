//! Log output through `tracing`: coloured and timestamped on a terminal,
//! plain text without timestamps under systemd (journald adds its own), plain
//! with timestamps when redirected to a file.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Environment variable with a full filter (`RUST_LOG` syntax) that overrides
/// the level from the config and -v/-q, e.g. `VIVID_LOG=vivid=trace`.
pub(crate) const LOG_ENV: &str = "VIVID_LOG";

/// Installs the global subscriber. Safe to call more than once (later calls
/// do nothing), which keeps tests simple.
pub fn init(level: LogLevel) {
    let filter = std::env::var(LOG_ENV)
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        // llama.cpp warns at every load about things that are normal for the
        // default model (Gemma's full-size SWA cache, a `</s>` token type);
        // its errors still show, and VIVID_LOG=llama-cpp-2=debug shows all.
        .unwrap_or_else(|| {
            EnvFilter::new(format!("warn,llama-cpp-2=error,vivid={}", level.as_str()))
        });
    let terminal = std::io::stderr().is_terminal();
    // systemd sets JOURNAL_STREAM when stderr goes to the journal.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal)
        .with_target(!terminal);
    let result = if under_journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // An error only means a subscriber is already installed.
    drop(result);
}
