//! Applying a [`FileSet`] under a local root (`/` on a node, any folder in tests and `render`).
//!
//! Each file is written to a temp file in its own folder, fsynced, renamed over the old one, and the
//! folder is fsynced, so a reader sees the old or the new file, never a partial one. Unchanged bytes
//! are not rewritten (mtime stays). Files and folders are removed only when the owned-files manifest
//! lists them.

use super::manifest::{sha256_hex, Manifest, MANIFEST_PATH, PENDING};
use super::ApplyReport;
use crate::fileset::{File, FileSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// What `apply` does with one wanted file.
enum Action {
    /// The bytes are already there (only the mode may be fixed).
    Unchanged,
    /// Someone else's file with other bytes: left as it is.
    Foreign,
    /// Written; `old` is what is there now, if anything.
    Write { old: Option<Vec<u8>> },
}

pub struct LocalSink {
    root: PathBuf,
}

impl LocalSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSink { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The owned-files manifest, empty when there is none yet.
    pub fn manifest(&self) -> Result<Manifest, SinkError> {
        let path = self.root.join(MANIFEST_PATH);
        match fs::read(&path) {
            Ok(bytes) => Manifest::parse(&bytes)
                .map_err(|e| SinkError { path, source: io::Error::new(io::ErrorKind::InvalidData, e) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(SinkError { path, source: e }),
        }
    }

    /// The file at `rel`, `None` when there is none.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.root.join(rel);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SinkError { path, source }),
        }
    }

    /// What happens to each wanted file: the one place that decides, for `apply` and `preview` alike.
    fn decide<'f>(&self, files: &'f FileSet, owned: &Manifest) -> Result<Vec<(&'f str, &'f File, Action)>, SinkError> {
        files
            .iter()
            .map(|(rel, file)| {
                let action = match self.read(rel)? {
                    Some(current) if current == file.contents => Action::Unchanged,
                    Some(_) if !owned.files.contains_key(rel) && !file.takes_over => Action::Foreign,
                    old => Action::Write { old },
                };
                Ok((rel, file, action))
            })
            .collect()
    }

    /// What [`LocalSink::apply`] would change, without changing anything: every file whose bytes
    /// would be written or removed, and the files someone else wrote that would be kept.
    pub fn preview(&self, files: &FileSet) -> Result<(Vec<crate::inspect::diff::Change>, Vec<String>), SinkError> {
        use crate::inspect::diff::Change;
        let owned = self.manifest()?;
        let mut changes = Vec::new();
        let mut kept = Vec::new();
        for (rel, file, action) in self.decide(files, &owned)? {
            match action {
                Action::Unchanged => {}
                Action::Foreign => kept.push(rel.to_string()),
                Action::Write { old } => {
                    changes.push(Change { path: rel.to_string(), old, new: Some(file.contents.clone()) })
                }
            }
        }
        for rel in owned.files.keys().filter(|p| files.get(p).is_none()) {
            if let Some(old) = self.read(rel)? {
                changes.push(Change { path: rel.clone(), old: Some(old), new: None });
            }
        }
        Ok((changes, kept))
    }

    /// Brings the root in line with `files`. The manifest is updated even when a step fails, so that
    /// whatever was written is still known to be mirrorconf's.
    pub fn apply(&self, files: &FileSet) -> Result<ApplyReport, SinkError> {
        let mut owned = self.manifest()?;
        let decisions = self.decide(files, &owned)?;
        // Claim first: every file and folder this apply will create is recorded before it exists,
        // so a process killed half way never leaves a file of its own it would then call foreign.
        let claimed = self.claim(&decisions, &owned);
        if claimed != owned {
            let path = self.root.join(MANIFEST_PATH);
            self.ensure_parent(&path, &mut None)?;
            write_atomic(&path, &claimed.to_bytes(), 0o644).map_err(err(&path))?;
            owned = claimed;
        }
        let before = owned.clone();
        let mut report = ApplyReport::default();
        let result = self.apply_inner(files, &decisions, &mut owned, &mut report);
        if owned != before {
            let path = self.root.join(MANIFEST_PATH);
            self.ensure_parent(&path, &mut None)?;
            write_atomic(&path, &owned.to_bytes(), 0o644).map_err(err(&path))?;
        }
        result.map(|()| report)
    }

    /// `owned` plus the files `apply` will create (hash [`PENDING`]) and the folders it will make.
    fn claim(&self, decisions: &[(&str, &File, Action)], owned: &Manifest) -> Manifest {
        let mut claimed = owned.clone();
        for (rel, _, action) in decisions {
            if !matches!(action, Action::Write { .. }) || owned.files.contains_key(*rel) {
                continue;
            }
            claimed.files.insert(rel.to_string(), PENDING.to_string());
            let mut dir = String::new();
            for part in rel.split('/').collect::<Vec<_>>().split_last().map_or(&[][..], |(_, d)| d) {
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(part);
                if !self.root.join(&dir).is_dir() {
                    claimed.dirs.insert(dir.clone());
                }
            }
        }
        claimed
    }

    fn apply_inner(
        &self,
        files: &FileSet,
        decisions: &[(&str, &File, Action)],
        owned: &mut Manifest,
        report: &mut ApplyReport,
    ) -> Result<(), SinkError> {
        for (rel, file, action) in decisions {
            let path = self.root.join(rel);
            match action {
                Action::Foreign => {
                    tracing::warn!(path = %path.display(), "not replacing a file mirrorconf did not write");
                    report.kept_foreign.push(rel.to_string());
                }
                Action::Unchanged => {
                    let meta = fs::metadata(&path).map_err(err(&path))?;
                    if meta.permissions().mode() & 0o7777 != file.mode {
                        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode)).map_err(err(&path))?;
                    }
                    report.unchanged.push(rel.to_string());
                }
                Action::Write { .. } => {
                    self.ensure_parent(&path, &mut Some(&mut *owned))?;
                    write_atomic(&path, &file.contents, file.mode).map_err(err(&path))?;
                    owned.files.insert(rel.to_string(), sha256_hex(&file.contents));
                    report.written.push(rel.to_string());
                    tracing::info!(path = %path.display(), "wrote");
                }
            }
        }
        // Removal comes after every new file is in place.
        let stale: Vec<String> = owned.files.keys().filter(|p| files.get(p).is_none()).cloned().collect();
        for rel in stale {
            let path = self.root.join(&rel);
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed");
                    report.removed.push(rel.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SinkError { path, source: e }),
            }
            owned.files.remove(&rel);
            if let Some(parent) = path.parent() {
                fsync_dir(parent).map_err(err(parent))?;
            }
        }
        // Folders mirrorconf created go once empty, deepest first.
        let mut dirs: Vec<String> = owned.dirs.iter().cloned().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for rel in dirs {
            let path = self.root.join(&rel);
            let in_use = files.iter().any(|(f, _)| f.starts_with(&format!("{rel}/")))
                || rel == "var/lib/mirrorconf"
                || "var/lib/mirrorconf".starts_with(&format!("{rel}/"));
            if in_use {
                continue;
            }
            match fs::remove_dir(&path) {
                Ok(()) => {
                    owned.dirs.remove(&rel);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    owned.dirs.remove(&rel);
                }
                // Not empty: someone else put files there; leave it.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Creates the missing folders above `path`, recording each one it creates.
    fn ensure_parent(&self, path: &Path, owned: &mut Option<&mut Manifest>) -> Result<(), SinkError> {
        let parent = path.parent().expect("a file path under the root has a parent");
        if parent.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.root).map_err(err(&self.root))?;
        let rel = parent.strip_prefix(&self.root).unwrap_or(parent);
        let mut current = self.root.clone();
        let mut rel_so_far = PathBuf::new();
        for c in rel.components() {
            current.push(c);
            rel_so_far.push(c);
            if current.is_dir() {
                continue;
            }
            fs::create_dir(&current).map_err(err(&current))?;
            if let Some(m) = owned.as_deref_mut() {
                m.dirs.insert(rel_so_far.to_string_lossy().into_owned());
            }
            if let Some(up) = current.parent() {
                fsync_dir(up).map_err(err(up))?;
            }
        }
        Ok(())
    }
}

/// Writes `contents` to `path` atomically: temp file in the same folder, fsync, rename, fsync folder.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent folder"))?;
    let mut tmp = tempfile::Builder::new().prefix(".mirrorconf-").suffix(".tmp").tempfile_in(dir)?;
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
mod tests {
    use super::*;
    use crate::fileset::MODE_PUBLIC;
    use std::os::unix::fs::MetadataExt;

    fn set(files: &[(&str, &str)]) -> FileSet {
        let mut s = FileSet::new();
        for (p, c) in files {
            s.insert(*p, *c, MODE_PUBLIC).unwrap();
        }
        s
    }

    #[test]
    fn writes_then_skips_unchanged_files() {
        let root = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(root.path());
        let r = sink.apply(&set(&[("etc/a.conf", "one")])).unwrap();
        assert_eq!(r.written, ["etc/a.conf"]);
        let ino = fs::metadata(root.path().join("etc/a.conf")).unwrap().ino();
        let r = sink.apply(&set(&[("etc/a.conf", "one")])).unwrap();
        assert!(!r.changed());
        assert_eq!(r.unchanged, ["etc/a.conf"]);
        // Not rewritten: a rename would have given a new inode.
        assert_eq!(fs::metadata(root.path().join("etc/a.conf")).unwrap().ino(), ino);
        sink.apply(&set(&[("etc/a.conf", "two")])).unwrap();
        assert_eq!(fs::read_to_string(root.path().join("etc/a.conf")).unwrap(), "two");
        let leftovers: Vec<_> = fs::read_dir(root.path().join("etc")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn removes_only_what_it_created() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/certs.d/foreign")).unwrap();
        fs::write(root.path().join("etc/certs.d/foreign/ca.crt"), "theirs").unwrap();
        fs::write(root.path().join("etc/certs.d/mine-looking.crt"), "theirs too").unwrap();
        let sink = LocalSink::new(root.path());
        sink.apply(&set(&[("etc/certs.d/ours/ca.crt", "x"), ("etc/keep.conf", "k")])).unwrap();
        let r = sink.apply(&set(&[("etc/keep.conf", "k")])).unwrap();
        assert_eq!(r.removed, ["etc/certs.d/ours/ca.crt"]);
        assert!(!root.path().join("etc/certs.d/ours").exists(), "its own empty folder goes");
        assert!(root.path().join("etc/certs.d/foreign/ca.crt").exists());
        assert!(root.path().join("etc/certs.d/mine-looking.crt").exists());
        assert!(root.path().join("etc/keep.conf").exists());
    }

    #[test]
    fn a_folder_someone_else_filled_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(root.path());
        sink.apply(&set(&[("d/ours/f", "x")])).unwrap();
        fs::write(root.path().join("d/ours/theirs"), "y").unwrap();
        sink.apply(&FileSet::new()).unwrap();
        assert!(!root.path().join("d/ours/f").exists());
        assert!(root.path().join("d/ours/theirs").exists());
    }

    #[test]
    fn never_overwrites_someone_elses_file_unless_it_takes_over() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/certs.d/reg.io")).unwrap();
        fs::write(root.path().join("etc/certs.d/reg.io/ca.crt"), "admin's").unwrap();
        fs::write(root.path().join("etc/main.conf"), "original").unwrap();
        let sink = LocalSink::new(root.path());
        let mut s = set(&[("etc/certs.d/reg.io/ca.crt", "ours")]);
        s.insert_taking_over("etc/main.conf", "rendered", MODE_PUBLIC).unwrap();
        let r = sink.apply(&s).unwrap();
        assert_eq!(r.kept_foreign, ["etc/certs.d/reg.io/ca.crt"]);
        assert_eq!(r.written, ["etc/main.conf"]);
        assert_eq!(fs::read_to_string(root.path().join("etc/certs.d/reg.io/ca.crt")).unwrap(), "admin's");
        // Once the admin removes theirs, mirrorconf manages the path; and never removes the kept one.
        sink.apply(&FileSet::new()).unwrap();
        assert!(root.path().join("etc/certs.d/reg.io/ca.crt").exists());
        fs::remove_file(root.path().join("etc/certs.d/reg.io/ca.crt")).unwrap();
        let r = sink.apply(&s).unwrap();
        assert_eq!(r.written, ["etc/certs.d/reg.io/ca.crt", "etc/main.conf"]);
    }

    #[test]
    fn fixes_the_mode_without_rewriting() {
        let root = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(root.path());
        sink.apply(&set(&[("f", "x")])).unwrap();
        fs::set_permissions(root.path().join("f"), fs::Permissions::from_mode(0o666)).unwrap();
        let mut s = FileSet::new();
        s.insert("f", "x", 0o600).unwrap();
        let r = sink.apply(&s).unwrap();
        assert!(!r.changed());
        assert_eq!(fs::metadata(root.path().join("f")).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
