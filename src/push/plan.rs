//! What one host needs, worked out from the remote state file alone (pure, no I/O).
//!
//! The state file in the remote root is the same owned-files [`Manifest`] the local sink keeps: the
//! paths mirrorconf wrote there with their SHA-256, and the folders it created. A host whose state
//! lists exactly the wanted files with the wanted hashes is current and nothing is written.

use crate::fileset::FileSet;
use crate::sink::{sha256_hex, Manifest, PENDING};
use std::collections::BTreeSet;

/// The state file, relative to the remote root. containerd only reads `<root>/<host>/hosts.toml`,
/// so a file at the top of the root is never mistaken for registry configuration.
pub const STATE_FILE: &str = ".mirrorconf-state.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Paths (relative to the remote root) whose bytes differ from what the state says was written.
    pub write: Vec<String>,
    /// Wanted paths already current.
    pub unchanged: Vec<String>,
    /// Owned files no longer wanted; removed only after every write is in place.
    pub remove_files: Vec<String>,
    /// Owned folders that will hold no wanted file, deepest first (removed only when empty).
    pub remove_dirs: Vec<String>,
    /// Folders the wanted files need, parents first; the ones that do not exist yet get created.
    pub need_dirs: Vec<String>,
}

impl Plan {
    /// Nothing to write and nothing to remove: the host is current.
    pub fn is_current(&self) -> bool {
        self.write.is_empty() && self.remove_files.is_empty() && self.remove_dirs.is_empty()
    }
}

/// Every folder above `path` (not the root itself), parents first.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

pub fn plan(wanted: &FileSet, state: &Manifest) -> Plan {
    let mut p = Plan { write: vec![], unchanged: vec![], remove_files: vec![], remove_dirs: vec![], need_dirs: vec![] };
    let mut need_dirs = BTreeSet::new();
    for (path, file) in wanted.iter() {
        match state.files.get(path) {
            Some(hash) if *hash == sha256_hex(&file.contents) => p.unchanged.push(path.to_string()),
            _ => p.write.push(path.to_string()),
        }
        need_dirs.extend(parents(path).map(str::to_string));
    }
    p.remove_files = state.files.keys().filter(|k| wanted.get(k).is_none()).cloned().collect();
    let mut stale: Vec<String> = state.dirs.iter().filter(|d| !need_dirs.contains(*d)).cloned().collect();
    // Deepest first, so a parent is tried only after its children are gone.
    stale.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    p.remove_dirs = stale;
    // BTreeSet order puts "a" before "a/b": parents first.
    p.need_dirs = need_dirs.into_iter().collect();
    p
}

/// The state to write before any file: every file about to be written marked [`PENDING`] and every
/// folder about to be created listed, so a push cut short never leaves a file nobody owns, nor a
/// half-done file the state calls current. `None` when there is nothing to claim.
pub fn claim(state: &Manifest, plan: &Plan, created_dirs: &[String]) -> Option<Manifest> {
    let mut next = state.clone();
    for path in &plan.write {
        next.files.insert(path.clone(), PENDING.to_string());
    }
    next.dirs.extend(created_dirs.iter().cloned());
    (next != *state).then_some(next)
}

/// The state once every write and removal is done. Folders that could not be removed (someone
/// else's file is in them) stay owned, so a later push tries again.
pub fn finished(wanted: &FileSet, state: &Manifest, created_dirs: &[String], kept_dirs: &[String]) -> Manifest {
    let need: BTreeSet<&str> = wanted.iter().flat_map(|(p, _)| parents(p)).collect();
    let mut dirs: BTreeSet<String> = state.dirs.iter().filter(|d| need.contains(d.as_str())).cloned().collect();
    dirs.extend(created_dirs.iter().cloned());
    dirs.extend(kept_dirs.iter().cloned());
    Manifest {
        version: Manifest::VERSION,
        files: wanted.iter().map(|(p, f)| (p.to_string(), sha256_hex(&f.contents))).collect(),
        dirs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileset::MODE_PUBLIC;

    fn set(files: &[(&str, &str)]) -> FileSet {
        let mut s = FileSet::new();
        for (p, c) in files {
            s.insert(*p, c.as_bytes(), MODE_PUBLIC).unwrap();
        }
        s
    }

    #[test]
    fn a_fresh_host_gets_everything_and_claims_it_first() {
        let wanted = set(&[("quay.io/hosts.toml", "a"), ("quay.io/ca.crt", "b"), ("r_5000_/hosts.toml", "c")]);
        let p = plan(&wanted, &Manifest::default());
        assert_eq!(p.write.len(), 3);
        assert!(!p.is_current());
        assert_eq!(p.need_dirs, vec!["quay.io", "r_5000_"]);
        let claimed = claim(&Manifest::default(), &p, &["quay.io".into()]).unwrap();
        assert!(claimed.files.values().all(|h| h == PENDING));
        assert!(claimed.dirs.contains("quay.io"));
        let done = finished(&wanted, &claimed, &["quay.io".into()], &[]);
        assert_eq!(done.files["quay.io/hosts.toml"], sha256_hex(b"a"));
        assert_eq!(plan(&wanted, &done).write, Vec::<String>::new());
        assert!(plan(&wanted, &done).is_current());
    }

    #[test]
    fn an_unchanged_host_is_current_and_claims_nothing() {
        let wanted = set(&[("quay.io/hosts.toml", "a")]);
        let state = finished(&wanted, &Manifest::default(), &["quay.io".into()], &[]);
        let p = plan(&wanted, &state);
        assert!(p.is_current());
        assert_eq!(claim(&state, &p, &[]), None);
    }

    #[test]
    fn a_changed_file_is_rewritten_and_a_dropped_registry_removed_deepest_first() {
        let old = set(&[("quay.io/hosts.toml", "a"), ("gone.io/hosts.toml", "x"), ("gone.io/sub/f", "y")]);
        let mut state = finished(&old, &Manifest::default(), &[], &[]);
        state.dirs.extend(["gone.io".to_string(), "gone.io/sub".to_string(), "quay.io".to_string()]);
        let wanted = set(&[("quay.io/hosts.toml", "b")]);
        let p = plan(&wanted, &state);
        assert_eq!(p.write, vec!["quay.io/hosts.toml"]);
        assert_eq!(p.remove_files, vec!["gone.io/hosts.toml", "gone.io/sub/f"]);
        assert_eq!(p.remove_dirs, vec!["gone.io/sub", "gone.io"]);
        let done = finished(&wanted, &state, &[], &[]);
        assert_eq!(done.dirs.iter().collect::<Vec<_>>(), vec!["quay.io"]);
        // A folder someone else's file kept alive stays owned, to be tried again.
        let kept = finished(&wanted, &state, &[], &["gone.io".into()]);
        assert!(kept.dirs.contains("gone.io"));
    }

    #[test]
    fn a_file_being_replaced_is_pending_until_the_push_finishes() {
        let old = set(&[("quay.io/hosts.toml", "a")]);
        let state = finished(&old, &Manifest::default(), &[], &[]);
        let p = plan(&set(&[("quay.io/hosts.toml", "b")]), &state);
        let claimed = claim(&state, &p, &[]).unwrap();
        // Cut short now, a push back to "a" must still rewrite the file: it may hold "b".
        assert_eq!(plan(&old, &claimed).write, vec!["quay.io/hosts.toml"]);
    }

    #[test]
    fn a_pending_hash_never_counts_as_current() {
        let wanted = set(&[("quay.io/hosts.toml", "a")]);
        let mut state = Manifest::default();
        state.files.insert("quay.io/hosts.toml".into(), PENDING.into());
        assert_eq!(plan(&wanted, &state).write, vec!["quay.io/hosts.toml"]);
    }
}
