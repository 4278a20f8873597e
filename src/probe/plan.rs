//! What to probe: every endpoint a runtime may use, in the order `resolve` gives (the inspect
//! explainers decide it; nothing here orders endpoints), each with what that runtime would connect
//! with: scheme, host, the CA files it reads for the host, insecure settings, and credentials.

use super::auth::Credentials;
use super::files::{CaFile, NodeFiles};
use crate::inspect::reference::ImageRef;
use crate::inspect::{containerd, linux, Endpoint};
use crate::model::pull_secret::PullSecret;
use crate::render::hosts_toml::Layout;
use crate::render::{registries_conf, Target};

/// Where containers/image looks for a host's CA files, in order; the first folder that exists wins,
/// with no merging, and only its `*.crt` files are CAs.
pub const LINUX_CERT_DIRS: [&str; 2] = ["etc/containers/certs.d", crate::render::certs::DOCKER_CERTS_D];

/// What one probe dials and asks; equal probes run once, however many rows share them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// TLS without verification (`insecure = true`, `skip_verify = true`).
    pub skip_verify: bool,
    /// containers/image's `insecure`: plain HTTP when TLS fails.
    pub http_fallback: bool,
    pub cas: Vec<CaFile>,
    pub credentials: Option<Credentials>,
    /// Where credentials for this host were looked for (said in messages, never the values).
    pub credentials_from: String,
    /// With `--image`: the manifest to ask for.
    pub manifest: Option<Manifest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// `/v2/<repository>/manifests/<tag or digest>`.
    pub path: String,
    /// The repository on this endpoint (the token scope).
    pub repository: String,
    pub by_digest: bool,
}

/// One line of the report: an endpoint of one registry (or of the image's resolution).
#[derive(Debug, Clone)]
pub struct Row {
    pub registry: String,
    /// As `resolve` shows it: a location or reference (Linux), a URL (containerd).
    pub endpoint: String,
    /// `mirror`, `source` or `server`.
    pub kind: String,
    pub probe: Probe,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<Row>,
    /// Endpoints named but never contacted (blocked, digest-only for a tag, a name that never
    /// resolves by design), each with why.
    pub skipped: Vec<String>,
}

/// Where credentials come from: a docker config.json (the pull secret, or the kubelet's on a node)
/// or, for containerd trees, the `authorization` headers their hosts.toml files carry.
pub struct Auths {
    pub secret: Option<PullSecret>,
    /// How to name the source in messages, e.g. "the pull secret".
    pub from: String,
}

/// Where CRI-O reads the node's pull secret on OpenShift (its `global_auth_file`).
pub const KUBELET_AUTH_FILE: &str = "var/lib/kubelet/config.json";

impl Auths {
    /// The credentials a node's runtime has: the kubelet's config.json for CRI-O; for containerd,
    /// the `authorization` headers of its hosts.toml files (read with the tree, in [`plan`]).
    pub fn of_node(files: &NodeFiles, target: Target) -> Result<Auths, String> {
        if target != Target::Linux {
            return Ok(Auths { secret: None, from: "the hosts.toml authorization headers".into() });
        }
        let secret = files
            .read(KUBELET_AUTH_FILE)?
            .map(|b| PullSecret::from_json(&b))
            .transpose()
            .map_err(|e| format!("/{KUBELET_AUTH_FILE}: {}", e.message))?;
        Ok(Auths { secret, from: format!("/{KUBELET_AUTH_FILE}") })
    }

    fn for_location(&self, location: &str) -> Option<Credentials> {
        self.secret.as_ref()?.auth_for(location).and_then(Credentials::from_basic)
    }
}

/// `host[:port]` -> (host, port); the default port is 443 (80 for plain HTTP).
fn split_host(authority: &str, https: bool) -> (String, u16) {
    let default = if https { 443 } else { 80 };
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(port) => (h.trim_start_matches('[').trim_end_matches(']').to_string(), port),
            Err(_) => (authority.to_string(), default),
        },
        _ => (authority.to_string(), default),
    }
}

/// A name reserved never to resolve: by design such an endpoint is never contacted.
fn never_resolves(host: &str) -> bool {
    host == "invalid" || host.ends_with(".invalid")
}

pub fn plan(files: &NodeFiles, target: Target, image: Option<&ImageRef>, auths: &Auths) -> Result<Plan, String> {
    match target {
        Target::Linux => plan_linux(files, image, auths),
        Target::Containerd => plan_containerd(files, Layout::Linux, image, auths),
        Target::Windows => plan_containerd(files, Layout::Windows, image, auths),
    }
}

fn plan_linux(files: &NodeFiles, image: Option<&ImageRef>, auths: &Auths) -> Result<Plan, String> {
    let conf = files.read_text(registries_conf::PATH)?.unwrap_or_default();
    let cert_dir = |host: &str| LINUX_CERT_DIRS.iter().map(|d| format!("{d}/{host}")).find(|d| files.is_dir(d));
    let cas = |host: &str| cert_dir(host).map(|d| format!("/{d}"));
    let mut plan = Plan::default();
    let add = |plan: &mut Plan, registry: &str, e: &Endpoint| -> Result<(), String> {
        let location = e.pull.split(['@']).next().unwrap_or_default();
        let authority = location.split('/').next().unwrap_or_default();
        // Docker Hub's API lives on registry-1.docker.io, as containers/image knows.
        let authority = if authority == "docker.io" { "registry-1.docker.io" } else { authority };
        let (host, port) = split_host(authority, true);
        let mut ca_files = vec![];
        if let Some(dir) = cert_dir(authority) {
            for name in files.list(&dir)?.into_iter().filter(|n| n.ends_with(".crt")) {
                let path = format!("{dir}/{name}");
                if let Some(pem) = files.read(&path)? {
                    ca_files.push(CaFile { path: format!("/{path}"), pem });
                }
            }
        }
        let manifest = match image {
            None => None,
            Some(_) => {
                // A location the file names may make no valid reference: that endpoint only is left out.
                let r = match ImageRef::parse(&e.pull) {
                    Ok(r) => r,
                    Err(err) => {
                        plan.skipped.push(format!("{}: {err}", e.pull));
                        return Ok(());
                    }
                };
                // A reference with a digest is pulled by it, its tag notwithstanding.
                let object = r.digest.clone().or(r.tag.clone()).unwrap_or_else(|| "latest".into());
                Some(Manifest {
                    path: format!("/v2/{}/manifests/{object}", r.repository),
                    repository: r.repository.clone(),
                    by_digest: r.digest.is_some(),
                })
            }
        };
        plan.rows.push(Row {
            registry: registry.to_string(),
            endpoint: e.pull.clone(),
            kind: e.kind.clone(),
            probe: Probe {
                https: true,
                host,
                port,
                skip_verify: e.insecure,
                http_fallback: e.insecure,
                cas: ca_files,
                credentials: auths.for_location(location),
                credentials_from: auths.from.clone(),
                manifest,
            },
        });
        Ok(())
    };
    match image {
        Some(reference) => {
            let r = linux::resolve(reference, &conf, &cas)?;
            for e in &r.endpoints {
                add(&mut plan, &reference.name(), e)?;
            }
            plan.skipped.extend(r.skipped.iter().map(|s| format!("{}: {}", s.pull, s.why)));
            plan.skipped.extend(r.refused.map(|why| format!("{reference}: REFUSED: {why}")));
        }
        None => {
            for table in linux::every_endpoint(&conf, &cas)? {
                for e in &table.endpoints {
                    add(&mut plan, &table.scope, e)?;
                }
                plan.skipped.extend(table.skipped.iter().map(|s| format!("{}: {}", s.pull, s.why)));
            }
        }
    }
    Ok(plan)
}

/// containerd's folder name back to the registry it serves (`host_port_` is `host:port`).
fn registry_of_dir(dir: &str, layout: Layout) -> String {
    if layout == Layout::Windows {
        if let Some((host, port)) = dir.strip_suffix('_').and_then(|d| d.rsplit_once('_')) {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                return format!("{host}:{port}");
            }
        }
    }
    dir.to_string()
}

fn plan_containerd(files: &NodeFiles, layout: Layout, image: Option<&ImageRef>, auths: &Auths) -> Result<Plan, String> {
    let tree = files.hosts_tree(layout)?;
    let headers = super::files::header_credentials(&tree);
    let mut plan = Plan::default();
    let add = |plan: &mut Plan, registry: &str, dir: Option<&str>, e: &Endpoint| {
        let Some((scheme, rest)) = e.pull.split_once("://") else {
            plan.skipped.push(format!("{}: not an http(s) URL", e.pull));
            return;
        };
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => {
                plan.skipped.push(format!("{}: not an http(s) URL", e.pull));
                return;
            }
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (host, port) = split_host(authority, https);
        if never_resolves(&host) {
            plan.skipped
                .push(format!("{}: a name that never resolves, so containerd never contacts it (by design)", e.pull));
            return;
        }
        // The location under the API root names the credentials, as the renderer keys them.
        let under_v2 = path.strip_prefix("v2").unwrap_or(path).trim_matches('/');
        let location = if under_v2.is_empty() { authority.to_string() } else { format!("{authority}/{under_v2}") };
        let credentials = headers.get(authority).cloned().or_else(|| auths.for_location(&location));
        let cas = match (&e.ca, dir) {
            (Some(ca), Some(dir)) => files.containerd_ca(layout, dir, ca),
            _ => vec![],
        };
        let manifest = image.and_then(|r| {
            let (repo_path, _) = path.rsplit_once("/manifests/")?;
            Some(Manifest {
                path: format!("/{path}"),
                repository: repo_path.strip_prefix("v2/").unwrap_or(repo_path).to_string(),
                by_digest: r.is_digested(),
            })
        });
        plan.rows.push(Row {
            registry: registry.to_string(),
            endpoint: e.pull.clone(),
            kind: e.kind.clone(),
            probe: Probe {
                https,
                host,
                port,
                skip_verify: e.insecure,
                http_fallback: false,
                cas,
                credentials,
                credentials_from: auths.from.clone(),
                manifest,
            },
        });
    };
    match image {
        Some(reference) => {
            let r = containerd::resolve(reference, &tree, layout)?;
            let dir = r.matched.as_deref().and_then(|m| m.strip_suffix("/hosts.toml"));
            for e in &r.endpoints {
                add(&mut plan, &reference.name(), dir, e);
            }
            plan.skipped.extend(r.skipped.iter().map(|s| format!("{}: {}", s.pull, s.why)));
            plan.skipped.extend(r.refused.map(|why| format!("{reference}: REFUSED: {why}")));
        }
        None => {
            for file in containerd::every_endpoint(&tree)? {
                let registry = registry_of_dir(&file.dir, layout);
                for e in &file.endpoints {
                    add(&mut plan, &registry, Some(&file.dir), e);
                }
                plan.skipped.extend(file.skipped.iter().map(|s| format!("{}: {}", s.pull, s.why)));
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
