//! The owned-files manifest: which files and folders mirrorconf created under a root, with the
//! SHA-256 of what it wrote. Only what is listed here is ever removed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Relative to the root the sink writes.
pub const MANIFEST_PATH: &str = "var/lib/mirrorconf/owned.json";

/// Recorded instead of a hash for a file about to be written: ownership is claimed before the
/// write, so a run cut short still knows the file is mirrorconf's, and never takes it as current.
pub const PENDING: &str = "pending";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// path -> sha256 (hex) of the bytes mirrorconf wrote.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Folders mirrorconf created (and may remove once empty).
    #[serde(default)]
    pub dirs: BTreeSet<String>,
}

impl Manifest {
    pub const VERSION: u32 = 1;

    pub fn parse(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.version = Self::VERSION;
        let mut out = serde_json::to_vec_pretty(&m).expect("a manifest always serialises");
        out.push(b'\n');
        out
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
