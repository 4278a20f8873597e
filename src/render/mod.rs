//! Pure renderers: policy (plus the node's base file) in, [`FileSet`] out. Nothing here touches the
//! filesystem; the sinks do.

pub mod certs;
pub mod hosts_toml;
pub mod policy_json;
pub mod registries_conf;

use crate::fileset::{FileSet, PathError, MODE_PRIVATE, MODE_PUBLIC};
use crate::model::Inputs;
use crate::policy::Policy;

/// Which kind of node the files are for. `render --target` takes these spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Target {
    /// CRI-O, podman, skopeo: `/etc/containers/registries.conf` and its search-registries drop-in.
    Linux,
    /// containerd on Linux: `/etc/containerd/certs.d/<host[:port]>/hosts.toml`.
    Containerd,
    /// containerd on Windows: `C:\k\containerd\registries\<dir>\hosts.toml`.
    Windows,
}

impl Target {
    /// The targets a command was given, each once, in one order (render's order).
    pub fn set(targets: &[Target]) -> Vec<Target> {
        let mut set = targets.to_vec();
        set.sort();
        set.dedup();
        set
    }

    /// containerd's hosts.toml carries the pull secret's credentials; CRI-O reads the kubelet's
    /// own copy, so a Linux target neither needs the Secret nor changes when it does.
    pub fn renders_pull_secret(self) -> bool {
        matches!(self, Target::Containerd | Target::Windows)
    }

    /// The target a [`Target::name`] names.
    pub fn from_name(name: &str) -> Option<Target> {
        [Target::Linux, Target::Containerd, Target::Windows].into_iter().find(|t| t.name() == name)
    }

    /// The name used on the command line and in the Node annotation `status` reads.
    pub fn name(self) -> &'static str {
        match self {
            Target::Linux => "linux",
            Target::Containerd => "containerd",
            Target::Windows => "windows",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    RegistriesConf(#[from] registries_conf::RenderError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    HostsToml(#[from] hosts_toml::HostsError),
    #[error(transparent)]
    PolicyJson(#[from] policy_json::PolicyJsonError),
}

/// What renderers read besides the policy.
pub struct NodeInputs<'a> {
    pub inputs: &'a Inputs,
    pub policy: &'a Policy,
    /// The node's original registries.conf (empty when there was none).
    pub base_registries_conf: &'a str,
    /// The node's original policy.json (`None` when there was none).
    pub base_policy_json: Option<&'a str>,
}

/// Renders every file for the given targets.
pub fn render(targets: &[Target], node: &NodeInputs<'_>) -> Result<FileSet, RenderError> {
    let mut files = FileSet::new();
    for target in targets {
        match target {
            Target::Linux => {
                let conf = registries_conf::render(node.policy, node.base_registries_conf)?;
                // The node's own registries.conf is the base, so replacing it loses nothing; the drop-in
                // has the same role as the MCO's file of that name.
                files.insert_taking_over(registries_conf::PATH, conf, MODE_PUBLIC)?;
                if let Some(drop_in) = registries_conf::render_search_drop_in(node.policy) {
                    files.insert_taking_over(registries_conf::SEARCH_DROP_IN_PATH, drop_in, MODE_PUBLIC)?;
                }
                // Like registries.conf, the node's own policy.json is the base.
                if let Some(policy_json) = policy_json::render(node.policy, node.base_policy_json)? {
                    files.insert_taking_over(policy_json::PATH, policy_json, MODE_PUBLIC)?;
                }
                for (path, pem) in certs::docker_certs_d(node.policy) {
                    files.insert(path, pem, MODE_PUBLIC)?;
                }
            }
            Target::Containerd | Target::Windows => {
                let layout =
                    if *target == Target::Windows { hosts_toml::Layout::Windows } else { hosts_toml::Layout::Linux };
                // The pull secret was parsed (and refused if broken) with the rest of the policy.
                let cas = hosts_toml::ca_files(node.policy.registry_cas.keys());
                for f in hosts_toml::render_for(layout, node.policy, node.policy.pull_secret.as_ref(), &cas)? {
                    // A file with registry credentials is readable by root only.
                    let mode = if f.has_credentials { MODE_PRIVATE } else { MODE_PUBLIC };
                    let dir = format!("{}/{}", layout.root(), layout.dir_name(&f.host));
                    for ca_host in &f.ca_hosts {
                        let pem = &node.policy.registry_cas[ca_host];
                        files.insert(format!("{dir}/{}", cas[ca_host]), pem.as_str(), MODE_PUBLIC)?;
                    }
                    files.insert(format!("{dir}/hosts.toml"), f.text, mode)?;
                }
            }
        }
    }
    Ok(files)
}
