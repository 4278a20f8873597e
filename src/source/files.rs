//! Watching files and folders with `notify` (inotify on Linux): the manifests folder and the base
//! registries.conf. Editors that save by writing a temp file and renaming it over the original are
//! seen too, because the parent folder is watched, not the file's inode.

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops the events.
pub struct FileWatch {
    _watcher: RecommendedWatcher,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", .path.display())]
pub struct WatchError {
    pub path: PathBuf,
    #[source]
    pub source: notify::Error,
}

/// Sends `()` on `triggers` whenever something under `dirs` (recursively) or one of `files` changes.
/// A file that does not exist yet is watched through its folder, so creating it is seen.
pub fn watch(dirs: &[PathBuf], files: &[PathBuf], triggers: mpsc::Sender<()>) -> Result<FileWatch, WatchError> {
    let dirs_abs: Vec<PathBuf> = dirs.iter().map(|d| absolute(d)).collect();
    let files_abs: HashSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let (dirs_m, files_m) = (dirs_abs.clone(), files_abs.clone());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(event) => {
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let relevant = event.paths.iter().any(|p| files_m.contains(p) || dirs_m.iter().any(|d| p.starts_with(d)));
            if relevant {
                // A full channel already holds a pending trigger: nothing is lost.
                let _ = triggers.try_send(());
            }
        }
        Err(e) => tracing::warn!("file watch error: {e}"),
    })
    .map_err(|source| WatchError { path: PathBuf::new(), source })?;
    for d in &dirs_abs {
        watcher.watch(d, RecursiveMode::Recursive).map_err(|source| WatchError { path: d.clone(), source })?;
    }
    for f in &files_abs {
        let parent = f.parent().unwrap_or(Path::new("/")).to_path_buf();
        std::fs::create_dir_all(&parent)
            .map_err(|e| WatchError { path: parent.clone(), source: notify::Error::io(e) })?;
        watcher.watch(&parent, RecursiveMode::NonRecursive).map_err(|source| WatchError { path: parent, source })?;
    }
    Ok(FileWatch { _watcher: watcher })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
