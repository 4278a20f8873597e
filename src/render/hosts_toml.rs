//! containerd `hosts.toml` trees: Windows nodes (`C:\k\containerd\registries\<dir>\hosts.toml`, the
//! Windows Machine Config Operator's format) and Linux nodes that run containerd
//! (`/etc/containerd/certs.d/<host[:port]>/hosts.toml`).
//!
//! containerd mirrors whole registries, not repositories: every source of one registry host is merged
//! into that host's file. A mirror is cut down to the part before the source's repository path, which
//! becomes `/v2/<prefix>` with `override_path = true` (containerd appends the repository itself).
//! Unlike the reference operator: a port makes a `host_port_` folder on Windows, duplicate mirrors
//! collapse into one table, the admin's mirror order is kept (topological merge), any
//! `NeverContactSource` wins, insecure registries get `skip_verify`, and registry CAs are referenced.
//!
//! Registry hosts may hold uppercase letters (`Quay.io` and `quay.io` are both valid sources).
//! Windows file systems are case-insensitive, so on the Windows layout two such hosts would be two
//! folders that are one folder on the node: [`render_for`] groups sources by host compared without
//! case into one folder with a lowercase name, which containerd on Windows finds whatever the case
//! of the image reference, since the file system ignores it. The Linux layout keeps hosts exactly as
//! written: containerd on Linux looks up `certs.d/<host>` with the reference's own spelling on a
//! case-sensitive file system, so `Quay.io/x` only ever finds a `Quay.io` folder.

mod warnings;
pub use warnings::warnings;

use crate::model::pull_secret::{PullSecret, PullSecretError};
use crate::policy::{merge::merge_mirror_lists, scope, Policy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

/// Where the tree lives under a node's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `C:\k\containerd\registries` (written as `k/containerd/registries` under the root).
    Windows,
    /// `/etc/containerd/certs.d`.
    Linux,
}

pub const WINDOWS_ROOT: &str = "k/containerd/registries";
pub const LINUX_ROOT: &str = "etc/containerd/certs.d";
/// The folder containerd uses for every registry host that has no folder of its own.
pub const DEFAULT_HOST: &str = "_default";
/// Where refused registries are pointed: a reserved name that never resolves, so containerd never
/// contacts them (the closest containerd gets to "blocked").
const REFUSED_SERVER: &str = "https://refused-by-allowedregistries.invalid/v2";

impl Layout {
    pub fn root(self) -> &'static str {
        match self {
            Layout::Windows => WINDOWS_ROOT,
            Layout::Linux => LINUX_ROOT,
        }
    }

    /// The folder containerd looks up for a registry host: on Windows a `:` cannot be in a path, and
    /// containerd tries `host_port_` first.
    pub fn dir_name(self, host: &str) -> String {
        match (self, host.split_once(':')) {
            (Layout::Windows, Some((h, port))) => format!("{h}_{port}_"),
            _ => host.to_string(),
        }
    }

    pub fn file_path(self, host: &str) -> String {
        format!("{}/{}/hosts.toml", self.root(), self.dir_name(host))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error(transparent)]
    PullSecret(#[from] PullSecretError),
    #[error("internal error: the hosts.toml template failed: {0}")]
    Template(#[from] minijinja::Error),
    /// Only the position and the parser's own message: the text can hold `authorization` headers,
    /// and toml_edit's `Display` quotes the offending line, so neither is shown.
    #[error(
        "internal error: rendered hosts.toml for {host} does not parse back (line {line}, column {column}): {message}"
    )]
    Unparsable { host: String, line: usize, column: usize, message: String },
}

/// Registry host -> the name of its CA file next to a hosts.toml that references it.
pub type CaFiles = BTreeMap<String, String>;

/// The CA file name for a registry host: the Windows folder spelling (no `:`) plus `.crt`.
pub fn ca_file_name(host: &str) -> String {
    format!("{}.crt", Layout::Windows.dir_name(host))
}

/// File names for every registry that has a CA.
pub fn ca_files<'a>(hosts: impl IntoIterator<Item = &'a String>) -> CaFiles {
    hosts.into_iter().map(|h| (h.clone(), ca_file_name(h))).collect()
}

/// One rendered registry: the host (`host[:port]`) and its hosts.toml text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsFile {
    pub host: String,
    pub text: String,
    /// The file carries pull-secret credentials.
    pub has_credentials: bool,
    /// Registries whose CA file the hosts.toml references: they go in the same folder.
    pub ca_hosts: BTreeSet<String>,
}

#[derive(Serialize)]
struct FileView {
    server: String,
    server_ca: Option<String>,
    server_skip_verify: bool,
    hosts: Vec<HostView>,
}

#[derive(Serialize)]
struct HostView {
    url: String,
    capabilities: Vec<&'static str>,
    ca: Option<String>,
    skip_verify: bool,
    authorization: Option<String>,
}

static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("toml", toml_filter);
    env.add_template("hosts.toml", include_str!("../../templates/hosts.toml.j2")).expect("the bundled template parses");
    env
});

/// Writes a string, or a list of strings, as a TOML value with every character escaped as needed.
fn toml_filter(v: minijinja::Value) -> Result<String, minijinja::Error> {
    if let Some(s) = v.as_str() {
        return Ok(toml_edit::Value::from(s).to_string());
    }
    let mut array = toml_edit::Array::new();
    for item in v.try_iter()? {
        let s = item.as_str().ok_or_else(|| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "toml filter takes strings")
        })?;
        array.push(s);
    }
    Ok(array.to_string())
}

/// The mirror part that containerd sees as the registry endpoint: the trailing path components the
/// mirror shares with the source are dropped (containerd appends the repository path itself). The
/// host is never dropped.
pub fn cut_down(mirror: &str, source: &str) -> String {
    let mut m: Vec<&str> = mirror.split('/').collect();
    let mut s: Vec<&str> = source.split('/').collect();
    while m.len() > 1 && s.len() > 1 && m.last() == s.last() {
        m.pop();
        s.pop();
    }
    m.join("/")
}

/// `https://<host>/v2[/<prefix>]` for a cut-down mirror location.
fn endpoint_url(location: &str) -> String {
    match location.split_once('/') {
        Some((host, prefix)) => format!("https://{host}/v2/{prefix}"),
        None => format!("https://{location}/v2"),
    }
}

/// The upstream endpoint of a registry host. Docker Hub's API lives on `registry-1.docker.io`.
pub fn server_url(host: &str) -> String {
    match host {
        "docker.io" => "https://registry-1.docker.io/v2".to_string(),
        _ => format!("https://{host}/v2"),
    }
}

#[derive(Default)]
struct HostPlan<'a> {
    digest_lists: Vec<Vec<String>>,
    tag_lists: Vec<Vec<String>>,
    never_contact_source: bool,
    sources: BTreeSet<&'a str>,
}

impl Layout {
    /// The key that decides which registry hosts share a folder: on Windows the host compared
    /// without case (see the module documentation), on Linux the host as written.
    fn folder_key(self, host: &str) -> String {
        match self {
            Layout::Windows => host.to_ascii_lowercase(),
            Layout::Linux => host.to_string(),
        }
    }
}

fn plan(policy: &Policy, layout: Layout) -> BTreeMap<String, HostPlan<'_>> {
    let mut hosts: BTreeMap<String, HostPlan<'_>> = BTreeMap::new();
    let digest = policy.digest_entries.iter().map(|e| (e, false));
    let tag = policy.tag_entries.iter().map(|e| (e, true));
    for (e, is_tag) in digest.chain(tag).filter(|(e, _)| !scope::is_wildcard(&e.source)) {
        let p = hosts.entry(layout.folder_key(scope::host_and_port(&e.source))).or_default();
        let list: Vec<String> = e.mirrors.iter().map(|m| cut_down(m, &e.source)).collect();
        if is_tag {
            p.tag_lists.push(list);
        } else {
            p.digest_lists.push(list);
        }
        p.never_contact_source |= e.never_contact_source;
        p.sources.insert(&e.source);
    }
    hosts
}

fn is_insecure(policy: &Policy, location: &str) -> bool {
    let host = scope::host_and_port(location);
    policy.insecure_scopes.iter().any(|s| scope::is_nested(location, s) || scope::is_nested(host, s))
}

/// Checks that a rendered file parses as TOML, reporting only where and why (see
/// [`HostsError::Unparsable`]).
fn parse_back(host: &str, text: &str) -> Result<(), HostsError> {
    let Err(e) = text.parse::<toml_edit::DocumentMut>() else { return Ok(()) };
    let (line, column, message) = crate::text::toml_error(text, &e);
    Err(HostsError::Unparsable { host: host.to_string(), line, column, message })
}

/// [`render_for`] with the Linux layout's grouping (hosts exactly as written).
pub fn render(policy: &Policy, pull_secret: Option<&PullSecret>, cas: &CaFiles) -> Result<Vec<HostsFile>, HostsError> {
    render_for(Layout::Linux, policy, pull_secret, cas)
}

/// Renders one hosts.toml per registry host that has mirrors, blocked hosts, and hosts with only a CA
/// (`cas`: host -> CA file name next to the hosts.toml), grouped into folders as `layout` needs
/// (on Windows, hosts that differ only in case share one lowercase folder). Every file is parsed
/// back before it is returned, since containerd silently ignores a file it cannot parse.
pub fn render_for(
    layout: Layout,
    policy: &Policy,
    pull_secret: Option<&PullSecret>,
    cas: &CaFiles,
) -> Result<Vec<HostsFile>, HostsError> {
    let mut out = Vec::new();
    let mut plans = plan(policy, layout);
    // A whole-host blocked scope: with mirrors, the source is never contacted; without, the host is
    // pointed at a reserved name that never resolves, the closest containerd gets to "blocked".
    let blocked_hosts: BTreeSet<String> = policy
        .blocked_scopes
        .iter()
        .filter(|s| !s.contains('/') && !scope::is_wildcard(s))
        .map(|s| layout.folder_key(s))
        .collect();
    for h in &blocked_hosts {
        plans.entry(h.clone()).or_default();
    }
    for h in cas.keys() {
        plans.entry(layout.folder_key(h)).or_default();
    }
    // allowedRegistries: every allowed host gets a folder of its own (so `_default` does not catch
    // it), every other host with a folder is refused, and `_default` refuses the rest.
    let allow_list = !policy.allowed_scopes.is_empty();
    for s in policy.allowed_scopes.iter().filter(|s| !scope::is_wildcard(s)) {
        plans.entry(layout.folder_key(scope::host_and_port(s))).or_default();
    }
    // The CA file of a registry host; on Windows a folder's host may be spelled in another case.
    let ca_for_host = |host: &str| -> Option<String> {
        cas.get(host)
            .or_else(|| {
                (layout == Layout::Windows)
                    .then(|| cas.iter().find(|(h, _)| h.eq_ignore_ascii_case(host)).map(|(_, f)| f))
                    .flatten()
            })
            .cloned()
    };

    for (host, mut p) in plans {
        let host = host.as_str();
        let refused = allow_list && !is_allowed_host(policy, host);
        if refused {
            // The image name is refused (as CRI-O's policy.json refuses it): no mirror either.
            p = HostPlan::default();
        }
        let digest_lists: Vec<&[String]> = p.digest_lists.iter().map(Vec::as_slice).collect();
        let tag_lists: Vec<&[String]> = p.tag_lists.iter().map(Vec::as_slice).collect();
        let mut mirrors: Vec<(String, bool)> =
            merge_mirror_lists(host, &digest_lists).into_iter().map(|m| (m, false)).collect();
        // Where each mirror is, so that adding the tag mirrors is not quadratic.
        let mut at: std::collections::HashMap<String, usize> =
            mirrors.iter().enumerate().map(|(i, (m, _))| (m.clone(), i)).collect();
        for m in merge_mirror_lists(host, &tag_lists) {
            match at.get(&m) {
                Some(&i) => mirrors[i].1 = true,
                None => {
                    at.insert(m.clone(), mirrors.len());
                    mirrors.push((m, true));
                }
            }
        }
        let blocked = refused || blocked_hosts.contains(host);
        let ca_for = |location: &str| ca_for_host(scope::host_and_port(location));
        let mut hosts: Vec<HostView> = mirrors
            .iter()
            .map(|(location, resolve)| HostView {
                url: endpoint_url(location),
                capabilities: if *resolve { vec!["pull", "resolve"] } else { vec!["pull"] },
                ca: ca_for(location),
                skip_verify: is_insecure(policy, location),
                authorization: pull_secret.and_then(|s| s.auth_for(location)).map(|a| format!("Basic {a}")),
            })
            .collect();
        let server = if hosts.is_empty() {
            if blocked {
                let unreachable = format!("https://{}.blocked.invalid/v2", scope::host_part(host));
                hosts.push(HostView {
                    url: unreachable.clone(),
                    capabilities: vec!["pull", "resolve"],
                    ca: None,
                    skip_verify: false,
                    authorization: None,
                });
                unreachable
            } else {
                // Only a CA: containerd needs at least one [host] table, so the registry itself is it.
                let url = server_url(host);
                hosts.push(HostView {
                    url: url.clone(),
                    capabilities: vec!["pull", "resolve"],
                    ca: ca_for(host),
                    skip_verify: is_insecure(policy, host),
                    authorization: None,
                });
                url
            }
        } else if p.never_contact_source || blocked {
            hosts[0].url.clone()
        } else {
            server_url(host)
        };
        let source_is_server = server == server_url(host);
        let view = FileView {
            server_ca: if source_is_server { ca_for(host) } else { None },
            server_skip_verify: source_is_server && is_insecure(policy, host),
            server,
            hosts,
        };
        let has_credentials = view.hosts.iter().any(|h| h.authorization.is_some());
        let referenced: BTreeSet<&String> =
            view.server_ca.iter().chain(view.hosts.iter().filter_map(|h| h.ca.as_ref())).collect();
        let ca_hosts = cas.iter().filter(|(_, f)| referenced.contains(f)).map(|(h, _)| h.clone()).collect();
        let text = TEMPLATES.get_template("hosts.toml").expect("registered").render(&view)?;
        parse_back(host, &text)?;
        out.push(HostsFile { host: host.to_string(), text, has_credentials, ca_hosts });
    }
    if allow_list {
        let refused = HostView {
            url: REFUSED_SERVER.to_string(),
            capabilities: vec!["pull", "resolve"],
            ca: None,
            skip_verify: false,
            authorization: None,
        };
        let view = FileView {
            server: REFUSED_SERVER.to_string(),
            server_ca: None,
            server_skip_verify: false,
            hosts: vec![refused],
        };
        let text = TEMPLATES.get_template("hosts.toml").expect("registered").render(&view)?;
        out.push(HostsFile { host: DEFAULT_HOST.to_string(), text, has_credentials: false, ca_hosts: BTreeSet::new() });
    }
    Ok(out)
}

/// Whether `host` (`host[:port]`) is inside allowedRegistries as containerd can tell: an allowed
/// scope on that host (a repository scope allows its whole host), or a wildcard scope above it.
/// Host names compare without case, as DNS (and a Windows folder) does.
pub fn is_allowed_host(policy: &Policy, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    policy.allowed_scopes.iter().any(|s| {
        let s = s.to_ascii_lowercase();
        if scope::is_wildcard(&s) {
            scope::is_nested(&host, &s)
        } else {
            scope::host_and_port(&s) == host
        }
    })
}

#[cfg(test)]
mod tests;
