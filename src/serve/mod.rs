//! Serve: the watched-folder service, by role. The job folders and every
//! move between them ([`spool`]), the inbox's watcher and inputs
//! ([`inbox`]), job files ([`job`]), one job's run ([`run`]), what the
//! service tells systemd and `vivid status` ([`status`]), kiosk rounds
//! ([`kiosk`]), disk space ([`disk`]), the metrics file ([`metrics`]), the
//! control socket ([`control`]), the buttons and sensors that act through
//! it ([`triggers`]) and the service loop that holds them ([`service`]).

pub mod control;
pub mod disk;
mod inbox;
pub mod job;
mod kiosk;
pub mod metrics;
mod run;
pub mod service;
pub mod spool;
pub mod status;
pub mod triggers;

/// Seconds since 1970, for the status file.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
