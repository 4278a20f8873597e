//! The one part of the model that touches the filesystem: which files a `--manifests` argument
//! names, and reading each as bounded UTF-8 text. Everything else in [`super`] works on text.

use super::{size, Loader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) enum ReadError {
    /// The file would take the load past its total limit.
    OverLoad,
    Refused(String),
}

pub(super) fn read_bounded(path: &Path, file_limit: u64, load_left: u64) -> Result<String, ReadError> {
    let cap = file_limit.min(load_left);
    read_text_limited(path, cap).map_err(|e| match e {
        LimitedRead::TooBig { .. } if cap < file_limit => ReadError::OverLoad,
        LimitedRead::TooBig { size: Some(n) } => ReadError::Refused(format!(
            "{n} bytes, over {} (the limit for one file); refused before reading",
            size(file_limit)
        )),
        LimitedRead::TooBig { size: None } => ReadError::Refused(format!(
            "more than {} (the limit for one file) while reading; refused",
            size(file_limit)
        )),
        LimitedRead::NotUtf8 { offset } => {
            ReadError::Refused(format!("not UTF-8 text (invalid byte at offset {offset})"))
        }
        LimitedRead::Io(e) => ReadError::Refused(format!("cannot read: {e}")),
    })
}

/// Why [`read_text_limited`] gave no text.
#[derive(Debug)]
pub(crate) enum LimitedRead {
    /// Over the limit: `size` from the metadata when it said so, `None` when found while reading.
    TooBig {
        size: Option<u64>,
    },
    NotUtf8 {
        offset: usize,
    },
    Io(std::io::Error),
}

/// `4 MiB` for limits that are whole MiB, else the byte count (for messages).
pub(crate) fn describe_size(bytes: u64) -> String {
    size(bytes)
}

/// Reads a file as UTF-8 text of at most `limit` bytes. The size is checked from the metadata
/// first (nothing is read from a file that says it is too big) and enforced while reading, since
/// a FIFO, a device or a `/proc` file reports no size, and a file can grow meanwhile.
pub(crate) fn read_text_limited(path: &Path, limit: u64) -> Result<String, LimitedRead> {
    read_text_from(std::fs::File::open(path).map_err(LimitedRead::Io)?, limit)
}

/// [`read_text_limited`] for a file already open (one opened beneath a root, say).
pub(crate) fn read_text_from(file: std::fs::File, limit: u64) -> Result<String, LimitedRead> {
    use std::io::Read;
    let meta = file.metadata().map_err(LimitedRead::Io)?;
    if meta.is_file() && meta.len() > limit {
        return Err(LimitedRead::TooBig { size: Some(meta.len()) });
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() { meta.len() as usize + 1 } else { 8192 });
    file.take(limit + 1).read_to_end(&mut bytes).map_err(LimitedRead::Io)?;
    if bytes.len() as u64 > limit {
        return Err(LimitedRead::TooBig { size: None });
    }
    String::from_utf8(bytes).map_err(|e| LimitedRead::NotUtf8 { offset: e.utf8_error().valid_up_to() })
}

/// The files to read for one `--manifests` argument, sorted. A file named explicitly is read
/// whatever it is (a FIFO such as `<(oc get idms -o yaml)` included); in folders, only regular
/// `*.yaml`, `*.yml` and `*.json` files. Every folder is listed once, however many symlinks lead to
/// it, and a symlink back to a folder being walked is reported, not followed.
pub(super) fn collect_files(path: &Path, loader: &mut Loader) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            loader.error(path, None, format!("cannot read: {e}"));
            return Vec::new();
        }
    };
    if !meta.is_dir() {
        return vec![path.to_path_buf()];
    }
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let mut out = Vec::new();
    // Every folder listed so far, and where.
    let mut listed: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    listed.insert(id(&meta), path.to_path_buf());
    // Folders still to list, each with the folders above it in this walk.
    let mut stack = vec![(path.to_path_buf(), vec![id(&meta)])];
    while let Some((dir, above)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                loader.error(path, None, format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => loader.error(path, None, format!("cannot list {}: {e}", dir.display())),
            }
        }
        // Sorted, so that which of two paths to one folder is used never depends on directory order.
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            // Hidden files include editors' swap files and Kubernetes ConfigMap mount internals
            // (`..data`), which would otherwise be read twice.
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = dir.join(&name);
            let wanted = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let here = id(&m);
                    if above.contains(&here) {
                        let message =
                            format!("symlink loop: {} leads back to {}", p.display(), listed[&here].display());
                        loader.error(path, None, message);
                    } else if let Some(first) = listed.get(&here) {
                        tracing::warn!(folder = %p.display(), same_as = %first.display(), "a folder reached twice through symlinks is read once");
                    } else {
                        listed.insert(here, p.clone());
                        let mut chain = above.clone();
                        chain.push(here);
                        subdirs.push((p, chain));
                    }
                }
                Ok(m) if wanted && !m.is_file() => {
                    loader.error(
                        &p,
                        None,
                        "not a regular file (a FIFO, socket or device); only regular files are read from folders",
                    );
                }
                // Unreadable entries are read anyway, so that the reason is reported.
                _ if wanted => out.push(p),
                _ => {}
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    // Sorted so that messages and duplicate detection do not depend on the walk.
    out.sort();
    out
}
