//! Where rendered files go. Each sink applies a [`FileSet`](crate::fileset::FileSet) by the one
//! owned-files protocol of [`owned`]: it writes only files whose bytes change, each atomically,
//! and removes only files its owned-files manifest says mirrorconf created.

pub mod local;
pub mod owned;
pub mod root;
#[cfg(feature = "cli")]
pub mod ssh;

pub use local::MANIFEST_PATH;
pub use owned::{ApplyReport, Manifest, PENDING};
