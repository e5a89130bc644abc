//! Serve: the watched-folder service. The job folders and every move
//! between them ([`spool`]), job files ([`job`]), disk space ([`disk`]),
//! the metrics file ([`metrics`]) and the service loop ([`service`]).

pub mod disk;
pub mod job;
pub mod metrics;
pub mod service;
pub mod spool;
