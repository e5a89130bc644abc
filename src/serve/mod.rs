//! Serve: the watched-folder service. The job folders and every move
//! between them ([`spool`]), job files ([`job`]), disk space ([`disk`]),
//! the metrics file ([`metrics`]), the control socket ([`control`]), the
//! buttons and sensors that act through it ([`triggers`]) and the service
//! loop ([`service`]).

pub mod control;
pub mod disk;
pub mod job;
pub mod metrics;
pub mod service;
pub mod spool;
pub mod triggers;

/// Seconds since 1970, for the status file.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
