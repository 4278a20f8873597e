//! The node files a probe reads: either rendered in memory from the policy (`--manifests`,
//! `--kube`), or the files a node actually holds under a root (`--root`). Both are addressed by
//! paths relative to the node's `/`; reads from a root are bounded and resolved beneath it
//! ([`Root`]), so a link planted under the root never leads outside it.

use super::auth::Credentials;
use crate::fileset::{check_relative_path, FileSet, MODE_PUBLIC};
use crate::model::{read_text_from, LimitedRead};
use crate::render::hosts_toml::Layout;
use crate::sink::root::{Kind, Root};
use std::collections::HashMap;
use toml_edit::{DocumentMut, Item};

/// A CA file the runtime reads for a host: its path on the node (for messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaFile {
    pub path: String,
    pub pem: Vec<u8>,
}

/// The largest file read from a root (registries.conf, hosts.toml, a CA bundle, an auth file).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most registry folders read from one hosts.toml tree.
const MAX_DIRS: usize = 10_000;

pub enum NodeFiles {
    Rendered(FileSet),
    Root(Root),
}

impl NodeFiles {
    /// A file's bytes, `None` when it does not exist.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, String> {
        check_relative_path(rel).map_err(|e| e.to_string())?;
        match self {
            NodeFiles::Rendered(set) => Ok(set.get(rel).map(|f| f.contents.clone())),
            NodeFiles::Root(root) => {
                let path = root.shown(rel);
                let read = root.open_file(rel).map_err(LimitedRead::Io).and_then(|f| read_text_from(f, MAX_FILE_BYTES));
                match read {
                    Ok(text) => Ok(Some(text.into_bytes())),
                    Err(LimitedRead::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(LimitedRead::Io(e)) => Err(format!("cannot read {}: {e}", path.display())),
                    Err(LimitedRead::TooBig { .. }) => {
                        Err(format!("{}: over 1 MiB, the limit for a file check reads; refused", path.display()))
                    }
                    Err(LimitedRead::NotUtf8 { offset }) => {
                        Err(format!("{}: not UTF-8 text (invalid byte at offset {offset})", path.display()))
                    }
                }
            }
        }
    }

    pub fn read_text(&self, rel: &str) -> Result<Option<String>, String> {
        Ok(self.read(rel)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Whether `rel` is a folder (in a rendered set: whether any file lies under it).
    pub fn is_dir(&self, rel: &str) -> bool {
        match self {
            NodeFiles::Rendered(set) => !set.subtree(rel).is_empty(),
            NodeFiles::Root(root) => check_relative_path(rel).is_ok() && root.is_dir(rel),
        }
    }

    /// The names of the files directly in the folder `rel`, sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = match self {
            NodeFiles::Rendered(set) => {
                set.subtree(rel).iter().filter(|(p, _)| !p.contains('/')).map(|(p, _)| p.to_string()).collect()
            }
            NodeFiles::Root(root) => {
                check_relative_path(rel).map_err(|e| e.to_string())?;
                root.read_dir(rel)
                    .map_err(|e| format!("cannot list {}: {e}", root.shown(rel).display()))?
                    .into_iter()
                    .filter(|(_, kind)| matches!(kind, Kind::File | Kind::Symlink))
                    .filter_map(|(name, _)| name.into_string().ok())
                    .take(MAX_DIRS)
                    .collect()
            }
        };
        names.sort();
        Ok(names)
    }

    /// The containerd tree (`<dir>/hosts.toml`, relative to the layout's root).
    pub fn hosts_tree(&self, layout: Layout) -> Result<FileSet, String> {
        match self {
            NodeFiles::Rendered(set) => Ok(set.subtree(layout.root())),
            NodeFiles::Root(root) => {
                let mut tree = FileSet::new();
                let entries = match root.read_dir(layout.root()) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tree),
                    Err(e) => return Err(format!("cannot list {}: {e}", root.shown(layout.root()).display())),
                };
                for name in entries.into_iter().filter_map(|(name, _)| name.into_string().ok()).take(MAX_DIRS) {
                    let rel = format!("{name}/hosts.toml");
                    if check_relative_path(&rel).is_err() {
                        continue;
                    }
                    if let Some(bytes) = self.read(&format!("{}/{rel}", layout.root()))? {
                        tree.insert(rel, bytes, MODE_PUBLIC).map_err(|e| e.to_string())?;
                    }
                }
                Ok(tree)
            }
        }
    }

    /// The CA file a hosts.toml `ca` names: relative to its folder, or absolute on the node (a
    /// Windows path `C:\...` maps under the root too). A path that would leave the root, or a file
    /// that is missing, gives nothing: the runtime then has only the system roots.
    pub fn containerd_ca(&self, layout: Layout, dir: &str, ca: &str) -> Vec<CaFile> {
        let unixish = ca.replace('\\', "/");
        let (rel, shown) = if let Some(abs) = unixish.strip_prefix('/') {
            (abs.to_string(), ca.to_string())
        } else if unixish.len() > 2 && unixish.as_bytes()[1] == b':' {
            (unixish[2..].trim_start_matches('/').to_string(), ca.to_string())
        } else {
            let rel = format!("{}/{dir}/{unixish}", layout.root());
            (rel.clone(), format!("/{rel}"))
        };
        match self.read(&rel) {
            Ok(Some(pem)) => vec![CaFile { path: shown, pem }],
            _ => vec![],
        }
    }
}

/// containerd sends a host's `[host."URL".header] authorization` (mirrorconf writes `Basic` from
/// the pull secret there): its credentials by `host[:port]`.
pub fn header_credentials(tree: &FileSet) -> HashMap<String, Credentials> {
    let mut out = HashMap::new();
    for (_, file) in tree.iter() {
        let Ok(doc) = String::from_utf8_lossy(&file.contents).parse::<DocumentMut>() else { continue };
        let Some(hosts) = doc.get("host").and_then(Item::as_table_like) else { continue };
        for (url, entry) in hosts.iter() {
            let value = entry
                .as_table_like()
                .and_then(|t| t.get("header"))
                .and_then(Item::as_table_like)
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v))
                .and_then(|v| {
                    v.as_str().map(String::from).or_else(|| v.as_array()?.get(0)?.as_str().map(String::from))
                });
            let Some(basic) = value.as_deref().and_then(|v| v.strip_prefix("Basic ")) else { continue };
            let authority = url.split_once("://").map_or(url, |(_, r)| r).split('/').next().unwrap_or_default();
            if let Some(c) = Credentials::from_basic(basic) {
                out.insert(authority.to_string(), c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_is_read_within_itself() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("k/containerd/registries/r_5000_")).unwrap();
        std::fs::write(root.path().join("k/containerd/registries/r_5000_/m.crt"), "pem").unwrap();
        std::fs::write(
            root.path().join("k/containerd/registries/r_5000_/hosts.toml"),
            "server = \"https://r:5000/v2\"\n",
        )
        .unwrap();
        let files = NodeFiles::Root(Root::new(root.path()));
        assert!(files.read("../etc/passwd").is_err(), "no path leaves the root");
        assert_eq!(files.read("missing").unwrap(), None);
        let ca = files.containerd_ca(Layout::Windows, "r_5000_", "m.crt");
        assert_eq!(ca[0].path, "/k/containerd/registries/r_5000_/m.crt");
        let abs = files.containerd_ca(Layout::Windows, "x", "C:\\k\\containerd\\registries\\r_5000_\\m.crt");
        assert_eq!(abs[0].pem, b"pem");
        assert!(files.containerd_ca(Layout::Windows, "r_5000_", "../../../../etc/passwd").is_empty());
        let tree = files.hosts_tree(Layout::Windows).unwrap();
        assert!(tree.get("r_5000_/hosts.toml").is_some());
        assert_eq!(files.list("k/containerd/registries/r_5000_").unwrap(), ["hosts.toml", "m.crt"]);
    }

    #[test]
    fn authorization_headers_become_credentials_by_host() {
        let mut tree = FileSet::new();
        let text = "server = \"https://s/v2\"\n[host.\"https://m.local:5000/v2/x\"]\n  [host.\"https://m.local:5000/v2/x\".header]\n    authorization = \"Basic YTpi\"\n";
        tree.insert("s/hosts.toml", text, MODE_PUBLIC).unwrap();
        let creds = header_credentials(&tree);
        assert_eq!(creds["m.local:5000"], Credentials { user: "a".into(), password: "b".into() });
    }
}
