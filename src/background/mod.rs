//! Background: AudioLDM2 on tract, from a caption to a background waveform.
//!
//! So far this holds the bundle description ([`bundle`]), the prompt
//! tokenizers ([`tokens`]) and the diffusion schedulers ([`scheduler`]),
//! each checked against diffusers' recorded runs in the integration tests;
//! the stages that run the bundle's graphs follow `quantize/runner.py`, the
//! executable spec (issue #6).

pub mod bundle;
pub mod scheduler;
pub mod tokens;
