//! Serve: the watched-folder service (issue #8). So far the job folders
//! and every move between them ([`spool`]); the watcher, the job queue
//! and systemd integration follow.

pub mod job;
pub mod service;
pub mod spool;
