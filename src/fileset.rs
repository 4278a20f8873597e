//! [`FileSet`]: what a node should hold, as relative paths under its root with their bytes and mode.
//! Renderers produce one; both sinks (local root, SSH) apply one.

use std::collections::BTreeMap;

/// Mode for ordinary configuration files.
pub const MODE_PUBLIC: u32 = 0o644;
/// Mode for files that carry credentials (pull-secret headers).
pub const MODE_PRIVATE: u32 = 0o600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub contents: Vec<u8>,
    pub mode: u32,
    /// The file may replace one mirrorconf did not write (registries.conf, whose original is kept as
    /// the base). Any other file never overwrites someone else's.
    pub takes_over: bool,
}

/// Files keyed by a relative, `/`-separated path that cannot leave the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    files: BTreeMap<String, File>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing file path {path:?}: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

/// Checks that `path` is relative, `/`-separated, and has no empty, `.` or `..` component, and no
/// character that is special on Windows or Linux paths.
pub fn check_relative_path(path: &str) -> Result<(), PathError> {
    let fail = |reason| Err(PathError { path: path.to_string(), reason });
    if path.is_empty() {
        return fail("empty path");
    }
    if path.starts_with('/') {
        return fail("absolute path");
    }
    for c in path.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return fail("empty, '.' or '..' component");
        }
        if c.chars().any(|ch| ch == '\\' || ch == '\0' || ch.is_control()) {
            return fail("backslash or control character");
        }
    }
    Ok(())
}

/// [`check_relative_path`], and also nothing a Windows path cannot hold: none of `<>:"|?*`, no
/// component ending in `.` or a space, no device name (`CON`, `nul.txt`, `COM1`, ...). The remote
/// sink writes to Windows hosts, so every path it takes from its state file must pass this.
pub fn check_windows_path(path: &str) -> Result<(), PathError> {
    check_relative_path(path)?;
    let fail = |reason| Err(PathError { path: path.to_string(), reason });
    for c in path.split('/') {
        if c.chars().any(|ch| matches!(ch, '<' | '>' | ':' | '"' | '|' | '?' | '*')) {
            return fail("a character Windows paths cannot hold");
        }
        if c.ends_with('.') || c.ends_with(' ') {
            return fail("a component ending in '.' or a space");
        }
        let stem = c.split('.').next().unwrap_or("").to_ascii_uppercase();
        let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
            || (stem.len() == 4
                && (stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.as_bytes()[3].is_ascii_digit());
        if device {
            return fail("a Windows device name");
        }
    }
    Ok(())
}

impl FileSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(
        &mut self,
        path: impl Into<String>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<(), PathError> {
        self.insert_file(path.into(), File { contents: contents.into(), mode, takes_over: false })
    }

    /// Like [`FileSet::insert`], for a file that replaces whatever is there (see [`File::takes_over`]).
    pub fn insert_taking_over(
        &mut self,
        path: impl Into<String>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<(), PathError> {
        self.insert_file(path.into(), File { contents: contents.into(), mode, takes_over: true })
    }

    fn insert_file(&mut self, path: String, file: File) -> Result<(), PathError> {
        check_relative_path(&path)?;
        self.files.insert(path, file);
        Ok(())
    }

    /// A stable SHA-256 (hex) over every path and its bytes: equal for equal trees.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (path, f) in &self.files {
            h.update(path.as_bytes());
            h.update([0]);
            h.update((f.contents.len() as u64).to_be_bytes());
            h.update(&f.contents);
        }
        crate::text::hex(&h.finalize())
    }

    pub fn get(&self, path: &str) -> Option<&File> {
        self.files.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &File)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The files under the folder `dir`, with paths relative to it (a tree that is copied somewhere
    /// else as a whole, like the Windows registries folder).
    pub fn subtree(&self, dir: &str) -> FileSet {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        // A non-empty suffix of a checked path, cut at a '/', is a checked path.
        let files = self
            .files
            .iter()
            .filter_map(|(p, f)| {
                p.strip_prefix(&prefix).filter(|rel| !rel.is_empty()).map(|rel| (rel.to_string(), f.clone()))
            })
            .collect();
        FileSet { files }
    }

    /// Adds every file of `other`; a path in both takes `other`'s file.
    pub fn extend(&mut self, other: FileSet) {
        self.files.extend(other.files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_is_relative_to_its_folder() {
        let mut s = FileSet::new();
        s.insert("k/reg/a/hosts.toml", "a", MODE_PUBLIC).unwrap();
        s.insert("k/regx/b", "b", MODE_PUBLIC).unwrap();
        s.insert("etc/c", "c", MODE_PRIVATE).unwrap();
        let t = s.subtree("k/reg");
        assert_eq!(t.iter().map(|(p, _)| p).collect::<Vec<_>>(), vec!["a/hosts.toml"]);
        assert_eq!(s.subtree("etc/").get("c").unwrap().mode, MODE_PRIVATE);
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        for bad in ["", "/etc/x", "a/../b", "..", "a//b", "./a", "a/", "a\\..\\b", "a/\0"] {
            assert!(check_relative_path(bad).is_err(), "{bad:?}");
        }
        for ok in ["etc/containers/registries.conf", "k/containerd/registries/reg_5000_/hosts.toml", "a/b:1/c"] {
            assert!(check_relative_path(ok).is_ok(), "{ok:?}");
        }
        assert!(FileSet::new().insert("../x", "", MODE_PUBLIC).is_err());
    }

    #[test]
    fn windows_paths_refuse_what_windows_cannot_hold() {
        for bad in ["a/b:1/c", "C:/x", "a/con", "a/NUL.txt", "com1/x", "a/b.", "a/b ", "a/x?y", "..\\x", "../x"] {
            assert!(check_windows_path(bad).is_err(), "{bad:?}");
        }
        for ok in ["quay.io/hosts.toml", "reg_5000_/hosts.toml", "console.io/x", "com10/y", ".mirrorconf-state.json"] {
            assert!(check_windows_path(ok).is_ok(), "{ok:?}");
        }
    }
}
