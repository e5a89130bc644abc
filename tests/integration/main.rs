//! Integration tests: the real `vivid` binary and library on the real
//! default models. One test binary (not one per file) so the optimized
//! build links tract and espeak-ng once.

mod audioldm2_fixtures;
mod background_cli;
mod background_engine;
mod common;
mod control_cli;
mod describe_cli;
mod describe_evidence;
mod foundation;
mod play_cli;
mod realism;
mod render_cli;
mod serve_cli;
mod serve_disk;
mod sound_server;
mod speech_cli;
mod speech_parity;
