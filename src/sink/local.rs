//! Applying a [`FileSet`] under a local root (`/` on a node, any folder in tests and `render`),
//! following the owned-files protocol of [`super::owned`].
//!
//! Each file is written to a temp file in its own folder, fsynced, renamed over the old one, and the
//! folder is fsynced, so a reader sees the old or the new file, never a partial one. Unchanged bytes
//! are not rewritten (mtime stays). Files and folders are removed only when the owned-files manifest
//! lists them, never through a symbolic link. One apply at a time per root (a lock file), so the
//! temp files of a killed run can be swept without touching a live one's. Every path is opened
//! beneath the root by [`super::root::Root`], so a link planted under it never leads outside.

use super::owned::{self, Current, KeyRules, Manifest, Plan, Removal, Store, MAX_STATE_BYTES};
use super::root::{Kind, Root, TEMP_PREFIX, TEMP_RANDOM, TEMP_SUFFIX};
use super::ApplyReport;
use crate::fileset::{Change, File, FileSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Relative to the root the sink writes.
pub const MANIFEST_PATH: &str = "var/lib/mirrorconf/owned.json";
/// mirrorconf's own state folder under the root: never an owned-files entry.
pub const STATE_DIR: &str = "var/lib/mirrorconf";
const LOCK_PATH: &str = "var/lib/mirrorconf/lock";
const KEYS: KeyRules = KeyRules { windows: false, reserved: STATE_DIR };

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct SinkError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> SinkError + '_ {
    move |source| SinkError { path: path.to_path_buf(), source }
}

/// What [`LocalSink::apply`] would change, and the files someone else wrote that would be kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    pub changes: Vec<Change>,
    pub kept_foreign: Vec<String>,
}

/// The lock on a root; released when dropped (or when the process dies).
pub struct RootLock {
    _file: fs::File,
}

pub struct LocalSink {
    root: Root,
}

impl LocalSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSink { root: Root::new(root) }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// `rel` under the root, for messages.
    fn shown(&self, rel: &str) -> PathBuf {
        self.root.shown(rel)
    }

    /// The owned-files manifest (empty when there is none yet) without the entries that could not
    /// be mirrorconf's (each logged), and whether there were any.
    pub fn manifest(&self) -> Result<(Manifest, bool), SinkError> {
        let path = self.shown(MANIFEST_PATH);
        let Some(bytes) = self.read_limited(MANIFEST_PATH, MAX_STATE_BYTES)? else {
            return Ok((Manifest::default(), false));
        };
        let (manifest, dropped) = Manifest::parse(&bytes, &KEYS)
            .map_err(|e| SinkError { path: path.clone(), source: io::Error::new(io::ErrorKind::InvalidData, e) })?;
        for d in &dropped {
            tracing::warn!(state = %path.display(), "{d}");
        }
        Ok((manifest, !dropped.is_empty()))
    }

    /// The file at `rel`, `None` when there is none.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, SinkError> {
        self.read_limited(rel, MAX_FILE_BYTES)
    }

    /// At most `limit` bytes of the regular file at `rel`; `None` when there is none. Larger is refused.
    fn read_limited(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, SinkError> {
        match self.root.open_file(rel) {
            Ok(file) => read_at_most(file, limit).map(Some).map_err(err(&self.shown(rel))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SinkError { path: self.shown(rel), source }),
        }
    }

    /// What [`LocalSink::apply`] would change, without changing anything.
    pub fn preview(&self, files: &FileSet) -> Result<Preview, SinkError> {
        let (owned, _) = self.manifest()?;
        let Plan { actions, remove_files, .. } = owned::plan(self, files, &owned, false)?;
        let mut preview = Preview::default();
        for (rel, action) in actions {
            match action {
                owned::Action::Unchanged => {}
                owned::Action::Foreign => preview.kept_foreign.push(rel),
                owned::Action::Write => {
                    let new = files.get(&rel).map(|f| f.contents.clone());
                    preview.changes.push(Change { old: self.read(&rel)?, path: rel, new });
                }
            }
        }
        for rel in remove_files {
            if let Some(old) = self.read(&rel)? {
                preview.changes.push(Change { path: rel, old: Some(old), new: None });
            }
        }
        Ok(preview)
    }

    /// Takes this root's lock: one apply at a time per root, so that sweeping a killed run's temp
    /// files never touches a live one's. Held until the returned guard is dropped.
    pub fn lock(&self) -> Result<RootLock, SinkError> {
        self.root.create_dir_all(STATE_DIR).map_err(err(&self.shown(STATE_DIR)))?;
        let lock_path = self.shown(LOCK_PATH);
        let file = self.root.open_lock(LOCK_PATH).map_err(err(&lock_path))?;
        // A second render on the same root waits here.
        file.lock().map_err(err(&lock_path))?;
        Ok(RootLock { _file: file })
    }

    /// Brings the root in line with `files` (see [`owned::apply`]), under the root's lock.
    pub fn apply(&self, files: &FileSet) -> Result<ApplyReport, SinkError> {
        let lock = self.lock()?;
        self.apply_locked(files, &lock)
    }

    /// [`LocalSink::apply`] for a caller that holds the lock already (and wrote other files of
    /// mirrorconf's own state under it, such as an adopted base).
    pub fn apply_locked(&self, files: &FileSet, _lock: &RootLock) -> Result<ApplyReport, SinkError> {
        let mut swept = Vec::new();
        for dir in [STATE_DIR.to_string(), format!("{STATE_DIR}/base")] {
            if self.root.is_dir(&dir) {
                swept.extend(self.sweep(&dir)?);
            }
        }
        let (owned, dirty) = self.manifest()?;
        let mut report = owned::apply(self, files, owned, dirty, false)?;
        report.swept.extend(swept);
        Ok(report)
    }

    /// The first folder on the way to `rel` (below the root) that is a symbolic link, if any.
    fn symlink_on_the_way(&self, rel: &str, include_last: bool) -> Option<String> {
        let parts: Vec<&str> = rel.split('/').collect();
        let upto = if include_last { parts.len() } else { parts.len() - 1 };
        (1..=upto)
            .map(|n| parts[..n].join("/"))
            .find(|p| matches!(self.root.kind_no_follow(p), Ok(Some(Kind::Symlink))))
    }
}

impl Store for LocalSink {
    type Error = SinkError;

    fn compare(&self, rel: &str, wanted: &File, _owned_hash: Option<&str>) -> Result<Current, SinkError> {
        // Always the bytes on disk: an owned file someone edited is put right.
        Ok(match self.read(rel)? {
            None => Current::Absent,
            Some(b) if b == wanted.contents => Current::Same,
            Some(_) => Current::Differs,
        })
    }

    fn keep(&self, rel: &str, file: &File) -> Result<(), SinkError> {
        let path = self.shown(rel);
        if self.root.mode(rel).map_err(err(&path))? != file.mode {
            self.root.set_mode(rel, file.mode).map_err(err(&path))?;
        }
        Ok(())
    }

    fn dir_exists(&self, rel: &str) -> Result<bool, SinkError> {
        Ok(self.root.is_dir(rel))
    }

    fn create_dir(&self, rel: &str) -> Result<(), SinkError> {
        self.root.create_dir(rel).map_err(err(&self.shown(rel)))
    }

    fn write(&self, rel: &str, file: &File) -> Result<(), SinkError> {
        let path = self.shown(rel);
        self.root.write_atomic(rel, &file.contents, file.mode).map_err(err(&path))?;
        tracing::info!(path = %path.display(), "wrote");
        Ok(())
    }

    fn remove_file(&self, rel: &str) -> Result<Removal, SinkError> {
        if let Some(link) = self.symlink_on_the_way(rel, false) {
            return Ok(Removal::Refused(format!("{link} is a symbolic link")));
        }
        let path = self.shown(rel);
        match self.root.remove_file(rel) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed");
                Ok(Removal::Removed)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Absent),
            Err(e) => Err(SinkError { path, source: e }),
        }
    }

    fn remove_dir(&self, rel: &str) -> Result<Removal, SinkError> {
        if let Some(link) = self.symlink_on_the_way(rel, true) {
            return Ok(Removal::Refused(format!("{link} is a symbolic link")));
        }
        match self.root.remove_dir(rel) {
            Ok(()) => Ok(Removal::Removed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Absent),
            // Not empty (or not ours to remove): someone else put files there; leave it.
            Err(_) => Ok(Removal::NotEmpty),
        }
    }

    fn write_state(&self, state: &Manifest) -> Result<(), SinkError> {
        let path = self.shown(MANIFEST_PATH);
        self.root.write_atomic(MANIFEST_PATH, &state.to_bytes(), 0o644).map_err(err(&path))
    }

    fn sweep(&self, rel: &str) -> Result<Vec<String>, SinkError> {
        let dir = self.shown(rel);
        let mut swept = Vec::new();
        for (name, kind) in self.root.read_dir(rel).map_err(err(&dir))? {
            let Some(name) = name.to_str().filter(|n| is_temp_name(n)) else { continue };
            if kind != Kind::File {
                continue;
            }
            let path = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
            match self.root.remove_file(&path) {
                Ok(()) => swept.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(SinkError { path: self.shown(&path), source }),
            }
        }
        if !swept.is_empty() {
            tracing::info!(folder = %dir.display(), count = swept.len(), "removed temp files of a run that was cut short");
        }
        Ok(swept)
    }
}

/// Whether `name` is one of this sink's temp files (exactly what [`write_atomic`] creates).
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|r| r.len() == TEMP_RANDOM && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Reads at most `limit` bytes of `path`; `None` when there is no such file. Larger is refused.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, SinkError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SinkError { path: path.to_path_buf(), source: e }),
    };
    read_at_most(file, limit).map(Some).map_err(err(path))
}

/// The largest file the sink reads back to compare or show (`diff`); a node file is a few KiB.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// At most `limit` bytes of `file`; larger is refused.
fn read_at_most(file: fs::File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {limit} bytes (the limit)")));
    }
    Ok(bytes)
}

/// Writes `contents` to `path` atomically: temp file in the same folder, fsync, rename, fsync folder.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent folder"))?;
    let mut tmp =
        tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).rand_bytes(TEMP_RANDOM).tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fsync_dir(dir)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
