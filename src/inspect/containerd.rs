//! Which endpoints containerd tries for a reference, read from a hosts.toml tree the way containerd's
//! `config_path` resolver reads it: the registry host's folder (`host_port_` first on Windows, then
//! `host:port`, then `_default`), its `[host]` tables in file order keeping those whose capabilities
//! fit (a digest needs `pull`; a tag needs `pull` and `resolve`), then `server`. Mirrors are per
//! registry: the whole repository path is appended to each host.

use super::reference::ImageRef;
use super::{Endpoint, Resolution, Skipped};
use crate::fileset::FileSet;
use crate::render::hosts_toml::Layout;
use toml_edit::{DocumentMut, Item};

/// containerd's default when no hosts.toml applies: the registry itself (`registry-1.docker.io` for
/// docker.io), the same upstream the renderer writes.
fn default_server(registry: &str) -> String {
    crate::render::hosts_toml::server_url(registry)
}

/// The URL a host entry is asked for, as containerd makes it (`parseHostConfig`, docs/hosts.md):
/// `/v2` is appended unless `override_path` says the URL is final or its path already ends in
/// `/v2` (containerd does not double it).
fn api_base(url: &str, override_path: bool) -> String {
    let url = url.trim_end_matches('/');
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    if override_path || path.ends_with("/v2") {
        url.to_string()
    } else {
        format!("{url}/v2")
    }
}

pub fn resolve(reference: &ImageRef, tree: &FileSet, layout: Layout) -> Result<Resolution, String> {
    let mut res = Resolution {
        reference: reference.to_string(),
        matched: None,
        endpoints: vec![],
        skipped: vec![],
        refused: None,
    };
    let object = match (&reference.digest, &reference.tag) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let path_of = |base: &str| format!("{base}/{}/manifests/{object}", reference.repository);
    let mut candidates =
        vec![Layout::Windows.dir_name(&reference.registry), reference.registry.clone(), "_default".to_string()];
    if layout == Layout::Linux {
        candidates.remove(0);
    }
    let found = candidates.iter().find_map(|dir| tree.get(&format!("{dir}/hosts.toml")).map(|f| (dir.clone(), f)));
    let Some((dir, file)) = found else {
        res.endpoints.push(Endpoint {
            pull: path_of(&default_server(&reference.registry)),
            kind: "source".into(),
            why: "no hosts.toml for this registry: containerd's default".into(),
            insecure: false,
            ca: None,
        });
        return Ok(res);
    };
    res.matched = Some(format!("{dir}/hosts.toml"));
    let text = std::str::from_utf8(&file.contents).map_err(|_| format!("{dir}/hosts.toml is not UTF-8"))?;
    let doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("{dir}/hosts.toml does not parse ({})", crate::text::toml_error_text(text, &e)))?;
    let server = doc.get("server").and_then(Item::as_str).unwrap_or_default();
    if server.contains(".invalid/") {
        let rule = if dir == crate::render::hosts_toml::DEFAULT_HOST {
            "not inside allowedRegistries"
        } else {
            "refused by allowedRegistries or blockedRegistries"
        };
        res.refused = Some(format!(
            "{rule}: {dir}/hosts.toml points {} at {server}, a name that never resolves, so containerd never contacts it",
            reference.registry
        ));
    }
    let (endpoints, skipped) = file_endpoints(&doc, &path_of, Some(!reference.is_digested()), &reference.registry);
    res.endpoints = endpoints;
    res.skipped = skipped;
    Ok(res)
}

/// The endpoints of one hosts.toml, in the order containerd tries them: its `[host]` tables in file
/// order, then `server`. `path_of` turns an API base URL into what is fetched there. `need_resolve`
/// says whether the reference is a tag (a host then needs `resolve` as well as `pull`); `None` keeps
/// every host that can pull, for a listing of all a file may use. `registry` names containerd's
/// default server when the file has none.
fn file_endpoints(
    doc: &DocumentMut,
    path_of: &dyn Fn(&str) -> String,
    need_resolve: Option<bool>,
    registry: &str,
) -> (Vec<Endpoint>, Vec<Skipped>) {
    let (mut endpoints, mut skipped) = (vec![], vec![]);
    if let Some(hosts) = doc.get("host").and_then(Item::as_table_like) {
        for (url, entry) in hosts.iter() {
            let Some(t) = entry.as_table_like() else { continue };
            let caps: Vec<&str> = t
                .get("capabilities")
                .and_then(Item::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_else(|| vec!["pull", "resolve", "push"]);
            let override_path = t.get("override_path").and_then(Item::as_bool).unwrap_or(false);
            let pull = path_of(&api_base(url, override_path));
            let tag = need_resolve == Some(true);
            if !caps.contains(&"pull") || (tag && !caps.contains(&"resolve")) {
                let why = if tag {
                    "a tag needs the resolve capability (an ImageDigestMirrorSet/ICSP mirror has only pull)"
                } else {
                    "no pull capability"
                };
                skipped.push(Skipped { pull, why: why.into() });
                continue;
            }
            endpoints.push(Endpoint {
                pull,
                kind: "mirror".into(),
                why: format!("capabilities {caps:?}"),
                insecure: t.get("skip_verify").and_then(Item::as_bool).unwrap_or(false),
                ca: t.get("ca").and_then(Item::as_str).map(String::from),
            });
        }
    }
    let server = doc.get("server").and_then(Item::as_str).map(String::from);
    let override_path = doc.get("override_path").and_then(Item::as_bool).unwrap_or(false);
    let server_url = match &server {
        Some(s) => api_base(s, override_path),
        None => default_server(registry),
    };
    endpoints.push(Endpoint {
        pull: path_of(&server_url),
        kind: "server".into(),
        why: if server.is_some() {
            "the file's server (tried last)".into()
        } else {
            "containerd's default server (tried last)".into()
        },
        insecure: doc.get("skip_verify").and_then(Item::as_bool).unwrap_or(false),
        ca: doc.get("ca").and_then(Item::as_str).map(String::from),
    });
    (endpoints, skipped)
}

/// One registry folder of a hosts.toml tree and every endpoint it may send a pull to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEndpoints {
    /// The folder (`host:port`, `host_port_` on Windows, or `_default`).
    pub dir: String,
    /// Each API base URL (`https://m.example/v2/prefix`), in the order they are tried.
    pub endpoints: Vec<Endpoint>,
    pub skipped: Vec<Skipped>,
}

/// Every endpoint of every `<dir>/hosts.toml` in `tree`, by folder name: what `check` probes when
/// no image is named. A file that does not parse is an error naming it.
pub fn every_endpoint(tree: &FileSet) -> Result<Vec<FileEndpoints>, String> {
    let mut out = vec![];
    for (path, file) in tree.iter() {
        let Some(dir) = path.strip_suffix("/hosts.toml").filter(|d| !d.contains('/')) else { continue };
        let text = std::str::from_utf8(&file.contents).map_err(|_| format!("{path} is not UTF-8"))?;
        let doc: DocumentMut =
            text.parse().map_err(|e| format!("{path} does not parse ({})", crate::text::toml_error_text(text, &e)))?;
        let (endpoints, skipped) = file_endpoints(&doc, &|base| base.to_string(), None, dir);
        out.push(FileEndpoints { dir: dir.to_string(), endpoints, skipped });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileset::MODE_PUBLIC;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn tree() -> FileSet {
        let mut t = FileSet::new();
        let text = r#"server = "https://reg.local:5000/v2"

override_path = true

[host."https://digest.local/v2/p"]
  capabilities = ["pull"]
  override_path = true

[host."https://tag.local/v2/q"]
  capabilities = ["pull", "resolve"]
  override_path = true
  skip_verify = true
"#;
        t.insert("reg.local_5000_/hosts.toml", text, MODE_PUBLIC).unwrap();
        t
    }

    #[test]
    fn capabilities_decide_and_the_server_comes_last() {
        let digest = ImageRef::parse(&format!("reg.local:5000/team/app@{D}")).unwrap();
        let r = resolve(&digest, &tree(), Layout::Windows).unwrap();
        let pulls: Vec<_> = r.endpoints.iter().map(|e| e.pull.as_str()).collect();
        assert_eq!(
            pulls,
            vec![
                format!("https://digest.local/v2/p/team/app/manifests/{D}"),
                format!("https://tag.local/v2/q/team/app/manifests/{D}"),
                format!("https://reg.local:5000/v2/team/app/manifests/{D}"),
            ]
        );
        let tag = ImageRef::parse("reg.local:5000/team/app:v1").unwrap();
        let r = resolve(&tag, &tree(), Layout::Windows).unwrap();
        assert_eq!(r.endpoints[0].pull, "https://tag.local/v2/q/team/app/manifests/v1");
        assert!(r.endpoints[0].insecure);
        assert_eq!(r.skipped.len(), 1);
        // No file for the registry: containerd's default.
        let other = ImageRef::parse("busybox").unwrap();
        let r = resolve(&other, &tree(), Layout::Windows).unwrap();
        assert_eq!(r.endpoints[0].pull, "https://registry-1.docker.io/v2/library/busybox/manifests/latest");
    }

    #[test]
    fn a_url_already_ending_in_v2_is_not_given_another() {
        for (url, override_path, base) in [
            ("https://m.local/v2", false, "https://m.local/v2"),
            ("https://m.local/v2/", false, "https://m.local/v2"),
            ("https://m.local/prefix/v2", false, "https://m.local/prefix/v2"),
            ("https://m.local", false, "https://m.local/v2"),
            ("https://m.local/prefix", false, "https://m.local/prefix/v2"),
            ("https://m.local/v2x", false, "https://m.local/v2x/v2"),
            // A host named v2 is no path.
            ("https://v2", false, "https://v2/v2"),
            ("https://m.local/prefix", true, "https://m.local/prefix"),
        ] {
            assert_eq!(api_base(url, override_path), base, "{url} override_path = {override_path}");
        }
        let mut tree = FileSet::new();
        let text = "server = \"https://reg.local/v2\"\n[host.\"https://m.local/v2\"]\n  capabilities = [\"pull\"]\n";
        tree.insert("reg.local/hosts.toml", text, MODE_PUBLIC).unwrap();
        let pulls: Vec<_> = every_endpoint(&tree).unwrap()[0].endpoints.iter().map(|e| e.pull.clone()).collect();
        assert_eq!(pulls, ["https://m.local/v2", "https://reg.local/v2"]);
    }

    /// A broken line can hold a credential: the message says where and why, never the line.
    #[test]
    fn a_file_that_does_not_parse_is_named_without_quoting_it() {
        let mut tree = FileSet::new();
        let text = "[host.\"https://m.local/v2\"]\n  [host.\"https://m.local/v2\".header]\n    authorization = \"Basic dXNlcjpzM2NyZXQ=\n";
        tree.insert("reg.local/hosts.toml", text, MODE_PUBLIC).unwrap();
        let e = every_endpoint(&tree).unwrap_err();
        assert!(e.starts_with("reg.local/hosts.toml does not parse (line 3, column "), "{e}");
        assert!(!e.contains("dXNlcjpzM2NyZXQ") && !e.contains("Basic") && !e.contains("authorization"), "{e}");
        let reference = ImageRef::parse("reg.local/team/app:v1").unwrap();
        let e = resolve(&reference, &tree, Layout::Linux).unwrap_err();
        assert!(e.starts_with("reg.local/hosts.toml does not parse (line 3"), "{e}");
        assert!(!e.contains("dXNlcjpzM2NyZXQ") && !e.contains("Basic"), "{e}");
    }

    #[test]
    fn every_endpoint_lists_each_host_that_can_pull_then_the_server() {
        let files = every_endpoint(&tree()).unwrap();
        let [file] = &files[..] else { panic!("{files:?}") };
        assert_eq!(file.dir, "reg.local_5000_");
        let pulls: Vec<_> = file.endpoints.iter().map(|e| e.pull.as_str()).collect();
        assert_eq!(pulls, vec!["https://digest.local/v2/p", "https://tag.local/v2/q", "https://reg.local:5000/v2"]);
        assert!(file.skipped.is_empty());
    }
}
