//! Where rendered files go. Each sink applies a [`FileSet`](crate::fileset::FileSet): it writes only
//! files whose bytes change, each atomically, and removes only files its owned-files manifest says
//! mirrorconf created.

pub mod local;
mod manifest;
#[cfg(feature = "cli")]
pub mod ssh;

pub use manifest::{sha256_hex, Manifest, MANIFEST_PATH, PENDING};

/// What one apply did, as relative paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Files someone else wrote at a path mirrorconf wanted; left as they are.
    pub kept_foreign: Vec<String>,
}

impl ApplyReport {
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}
