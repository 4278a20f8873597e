//! The owned-files protocol, one set of rules for both sinks (a local root and a Windows host over
//! SFTP). See docs/design.md, "The owned-files protocol".
//!
//! A sink keeps a state file ([`Manifest`]) listing the files mirrorconf wrote under its root, with
//! the SHA-256 of their bytes, and the folders it created. [`apply`] brings a root in line with a
//! [`FileSet`] through a [`Store`] (the sink's primitive operations) in this order:
//!
//! 1. decide each wanted file: already right, someone else's (kept), or to be written;
//! 2. claim: record every file about to be written as [`PENDING`] and every folder about to be
//!    created, before any of them exists, so a run cut short never leaves a file nobody owns or a
//!    half-done file the state calls current;
//! 3. sweep the sink's own temp files left by a run that was killed (only in folders it writes);
//! 4. write (each file atomically), then remove owned files and folders no longer wanted;
//! 5. record the final state.
//!
//! The state file is untrusted input like everything else read: an entry that is not a clean
//! relative path under the root is dropped (and said once), so it can never steer a removal.

use crate::fileset::{check_relative_path, check_windows_path, File, FileSet};
use crate::text::sha256_hex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Recorded instead of a hash for a file about to be written: ownership is claimed before the
/// write, so a run cut short still knows the file is mirrorconf's, and never takes it as current.
pub const PENDING: &str = "pending";

/// The largest state file read (100,000 entries take about 10 MB); a larger one is refused.
pub const MAX_STATE_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// path -> sha256 (hex) of the bytes mirrorconf wrote, or [`PENDING`].
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Folders mirrorconf created (and may remove once empty).
    #[serde(default)]
    pub dirs: BTreeSet<String>,
}

/// Which paths a sink's state file may name.
#[derive(Debug, Clone, Copy)]
pub struct KeyRules {
    /// Paths must also be valid on Windows (the SSH sink writes to Windows hosts).
    pub windows: bool,
    /// The sink's own state lives here (a file or a folder): never a key.
    pub reserved: &'static str,
}

impl KeyRules {
    /// Why `key` cannot be an entry of the state file, if it cannot.
    pub fn refuse(&self, key: &str) -> Option<String> {
        let checked = if self.windows { check_windows_path(key) } else { check_relative_path(key) };
        if let Err(e) = checked {
            return Some(e.reason.to_string());
        }
        let reserved = self.reserved;
        if key == reserved || key.starts_with(&format!("{reserved}/")) || reserved.starts_with(&format!("{key}/")) {
            return Some(format!("it names mirrorconf's own state ({reserved})"));
        }
        None
    }
}

/// An entry of a state file that was dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedKey {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for DroppedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ignoring entry {:?}: {}", self.key, self.reason)
    }
}

impl Manifest {
    pub const VERSION: u32 = 1;

    /// Parses a state file, dropping every entry `rules` refuse. A hash that is not 64 hex digits
    /// counts as [`PENDING`]: the file stays owned but is never taken as current.
    pub fn parse(bytes: &[u8], rules: &KeyRules) -> Result<(Manifest, Vec<DroppedKey>), serde_json::Error> {
        let mut m: Manifest = serde_json::from_slice(bytes)?;
        let mut dropped = Vec::new();
        let mut keep = |key: &String| match rules.refuse(key) {
            Some(reason) => {
                dropped.push(DroppedKey { key: key.clone(), reason });
                false
            }
            None => true,
        };
        m.files.retain(|k, _| keep(k));
        m.dirs.retain(|k| keep(k));
        for hash in m.files.values_mut() {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                *hash = PENDING.to_string();
            }
        }
        Ok((m, dropped))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.version = Self::VERSION;
        let mut out = serde_json::to_vec_pretty(&m).expect("a manifest always serialises");
        out.push(b'\n');
        out
    }
}

/// How what a store holds at a path compares with the wanted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    Absent,
    Same,
    Differs,
}

/// What happened to an owned path the store was asked to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Already gone: nothing to do, and not an error.
    Absent,
    /// A folder someone else's file keeps alive: it stays, and stays owned.
    NotEmpty,
    /// The store will not remove it (e.g. it lies behind a symbolic link); it is no longer owned.
    Refused(String),
}

/// The primitive operations of a sink, on paths relative to its root. Each write is atomic.
pub trait Store {
    type Error;
    /// How the file at `rel` compares with `wanted`; `owned_hash` is what the state says was
    /// written there (a store may trust it instead of reading the file).
    fn compare(&self, rel: &str, wanted: &File, owned_hash: Option<&str>) -> Result<Current, Self::Error>;
    /// Called for a file of mirrorconf's that is already right (the local sink fixes its mode).
    fn keep(&self, _rel: &str, _file: &File) -> Result<(), Self::Error> {
        Ok(())
    }
    fn dir_exists(&self, rel: &str) -> Result<bool, Self::Error>;
    fn create_dir(&self, rel: &str) -> Result<(), Self::Error>;
    fn write(&self, rel: &str, file: &File) -> Result<(), Self::Error>;
    fn remove_file(&self, rel: &str) -> Result<Removal, Self::Error>;
    fn remove_dir(&self, rel: &str) -> Result<Removal, Self::Error>;
    fn write_state(&self, state: &Manifest) -> Result<(), Self::Error>;
    /// Removes the store's own temp files (and only those) directly in folder `rel` (`""` is the
    /// root); returns the paths removed.
    fn sweep(&self, rel: &str) -> Result<Vec<String>, Self::Error>;
}

/// What one apply did, as paths relative to the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Files someone else wrote at a path mirrorconf wanted; left as they are.
    pub kept_foreign: Vec<String>,
    /// Owned folders left because someone else's file is in them.
    pub kept_dirs: Vec<String>,
    /// Temp files of a run that was cut short, removed.
    pub swept: Vec<String>,
}

impl ApplyReport {
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The bytes are already there.
    Unchanged,
    /// Someone else's file with other bytes: left as it is.
    Foreign,
    Write,
}

/// What [`apply`] would do, worked out before anything changes (also what `diff` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<(String, Action)>,
    /// Owned files no longer wanted.
    pub remove_files: Vec<String>,
    /// Owned folders no wanted file needs, deepest first.
    pub remove_dirs: Vec<String>,
}

impl Plan {
    /// Nothing to write and nothing to remove.
    pub fn is_current(&self) -> bool {
        self.remove_files.is_empty()
            && self.remove_dirs.is_empty()
            && self.actions.iter().all(|(_, a)| *a != Action::Write)
    }

    fn writes(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().filter(|(_, a)| *a == Action::Write).map(|(p, _)| p.as_str())
    }
}

/// Every folder above `path` (not the root itself), parents first.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Decides every wanted file and finds what is owned but no longer wanted. `take_over`: replace
/// files someone else wrote at wanted paths (otherwise only files marked [`File::takes_over`] do).
pub fn plan<S: Store>(store: &S, wanted: &FileSet, owned: &Manifest, take_over: bool) -> Result<Plan, S::Error> {
    let mut actions = Vec::with_capacity(wanted.len());
    let mut needed = BTreeSet::new();
    for (rel, file) in wanted.iter() {
        let owned_hash = owned.files.get(rel).map(String::as_str);
        let action = match store.compare(rel, file, owned_hash)? {
            Current::Same => Action::Unchanged,
            Current::Absent => Action::Write,
            Current::Differs if owned_hash.is_some() || file.takes_over || take_over => Action::Write,
            Current::Differs => Action::Foreign,
        };
        actions.push((rel.to_string(), action));
        needed.extend(parents(rel));
    }
    let remove_files = owned.files.keys().filter(|k| wanted.get(k).is_none()).cloned().collect();
    let mut remove_dirs: Vec<String> = owned.dirs.iter().filter(|d| !needed.contains(d.as_str())).cloned().collect();
    // Deepest first, so a parent is tried only after its children are gone.
    remove_dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    Ok(Plan { actions, remove_files, remove_dirs })
}

/// Brings the store in line with `wanted`. `owned` is the state as read; `dirty` says it held
/// entries that were dropped, so it is rewritten even when nothing else changes. On an error the
/// claimed state stays recorded: whatever was written is still known to be mirrorconf's.
pub fn apply<S: Store>(
    store: &S,
    wanted: &FileSet,
    owned: Manifest,
    dirty: bool,
    take_over: bool,
) -> Result<ApplyReport, S::Error> {
    let plan = plan(store, wanted, &owned, take_over)?;
    let mut report = ApplyReport::default();
    let cut_short = owned.files.values().any(|h| h == PENDING);
    if plan.is_current() && !dirty && !cut_short {
        carry_out(store, wanted, &plan, &owned, &mut report)?;
        return Ok(report);
    }
    let (mut state, to_create) = claim(store, &plan, &owned)?;
    if state != owned || dirty {
        store.write_state(&state)?;
    }
    report.swept = sweep(store, wanted, &owned)?;
    for dir in &to_create {
        store.create_dir(dir)?;
    }
    carry_out(store, wanted, &plan, &owned, &mut report)?;
    // Only now that every new file is in place does anything go away.
    remove_stale(store, &plan, &mut state, &mut report)?;
    // Every wanted file that is right now and was or became ours carries its hash.
    for (rel, action) in &plan.actions {
        let owned_now = *action == Action::Write || (*action == Action::Unchanged && state.files.contains_key(rel));
        if owned_now {
            let file = wanted.get(rel).expect("the plan holds wanted paths");
            state.files.insert(rel.clone(), sha256_hex(&file.contents));
        }
    }
    store.write_state(&state)?;
    Ok(report)
}

/// The state to record before anything is written: every file about to be written [`PENDING`],
/// every folder about to be created listed. Also returns those folders, parents first.
fn claim<S: Store>(store: &S, plan: &Plan, owned: &Manifest) -> Result<(Manifest, Vec<String>), S::Error> {
    let mut to_create = Vec::new();
    let mut seen = BTreeSet::new();
    for rel in plan.writes() {
        for dir in parents(rel) {
            if seen.insert(dir) && !store.dir_exists(dir)? {
                to_create.push(dir.to_string());
            }
        }
    }
    let mut state = owned.clone();
    for rel in plan.writes() {
        state.files.insert(rel.to_string(), PENDING.to_string());
    }
    state.dirs.extend(to_create.iter().cloned());
    Ok((state, to_create))
}

/// Removes the debris of a run that was killed: only in folders this sink writes or owns.
fn sweep<S: Store>(store: &S, wanted: &FileSet, owned: &Manifest) -> Result<Vec<String>, S::Error> {
    let mut folders: BTreeSet<&str> = BTreeSet::from([""]);
    for rel in wanted.iter().map(|(p, _)| p).chain(owned.files.keys().map(String::as_str)) {
        folders.insert(rel.rsplit_once('/').map_or("", |(d, _)| d));
    }
    folders.extend(owned.dirs.iter().map(String::as_str));
    let mut swept = Vec::new();
    for dir in folders {
        if dir.is_empty() || store.dir_exists(dir)? {
            swept.extend(store.sweep(dir)?);
        }
    }
    Ok(swept)
}

/// Does what the plan says for each wanted file. A file that is already right is kept as it is
/// (its mode put right only when it is mirrorconf's: someone else's identical file is not touched).
fn carry_out<S: Store>(
    store: &S,
    wanted: &FileSet,
    plan: &Plan,
    owned: &Manifest,
    report: &mut ApplyReport,
) -> Result<(), S::Error> {
    for (rel, action) in &plan.actions {
        let file = wanted.get(rel).expect("the plan holds wanted paths");
        match action {
            Action::Unchanged => {
                if owned.files.contains_key(rel) {
                    store.keep(rel, file)?;
                }
                report.unchanged.push(rel.clone());
            }
            Action::Foreign => report.kept_foreign.push(rel.clone()),
            Action::Write => {
                store.write(rel, file)?;
                report.written.push(rel.clone());
            }
        }
    }
    Ok(())
}

/// Removes owned files no longer wanted, then owned folders no longer needed, and drops them from
/// `state`. What is already gone is no error; a folder someone else's file keeps alive stays owned.
fn remove_stale<S: Store>(
    store: &S,
    plan: &Plan,
    state: &mut Manifest,
    report: &mut ApplyReport,
) -> Result<(), S::Error> {
    for rel in &plan.remove_files {
        match store.remove_file(rel)? {
            Removal::Removed => report.removed.push(rel.clone()),
            Removal::Absent | Removal::NotEmpty => {}
            Removal::Refused(why) => tracing::warn!(path = %rel, "not removing: {why}; no longer owned"),
        }
        state.files.remove(rel);
    }
    for dir in &plan.remove_dirs {
        match store.remove_dir(dir)? {
            Removal::Removed | Removal::Absent => {
                state.dirs.remove(dir);
            }
            Removal::NotEmpty => report.kept_dirs.push(dir.clone()),
            Removal::Refused(why) => {
                tracing::warn!(path = %dir, "not removing: {why}; no longer owned");
                state.dirs.remove(dir);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
