//! The flags of `push` and of the in-cluster pusher (`run --kube --windows-push`): where the hosts
//! are, how to reach them, how many at once, what to remember, and how replicas share them.

use super::Manifests;
use crate::error::Error;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub manifests: Manifests,
    /// The `windows-instances` ConfigMap (YAML or JSON): key = DNS name or IPv4 address, value =
    /// `username=<user>`.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// Where to remember what each host was last confirmed to hold: a host whose tree, address,
    /// port, user, remote root and host key match is not contacted until its verification is due.
    /// Default: $XDG_STATE_HOME/mirrorconf/push-record.json, else
    /// ~/.local/state/mirrorconf/push-record.json, else /var/lib/mirrorconf/push-record.json.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Contact every host and read its files, whatever the record says (finds any drift now).
    #[arg(long)]
    pub verify_all: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// How to reach Windows hosts; shared by `push` and `run --windows-push`.
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// Private key to log in with (OpenSSH or PEM format, no passphrase). Required.
    #[arg(long, value_name = "KEYFILE")]
    pub identity: Option<PathBuf>,
    /// known_hosts file (OpenSSH format; `[host]:port` entries for ports other than 22). A host whose
    /// key is missing or different is refused. Required.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record the key of a host missing from --known-hosts instead of refusing it. A key that differs
    /// from a recorded one is still refused.
    #[arg(long)]
    pub trust_on_first_use: bool,
    #[arg(long, value_name = "N", default_value_t = 22)]
    pub ssh_port: u16,
    /// Where containerd's config_path points on the hosts; a relative path is relative to the SFTP
    /// start folder.
    #[arg(long, value_name = "PATH", default_value = crate::push::DEFAULT_REMOTE_ROOT)]
    pub remote_root: String,
    /// Hosts worked on at once. 1 is strictly one host at a time, in inventory order.
    #[arg(long, value_name = "N", default_value_t = crate::push::DEFAULT_PARALLEL as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Extra attempts for a host that failed in a way a retry can fix (not a host key or login).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// Wait before the first retry, doubled for each further one.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub retry_delay_ms: u64,
    /// Give up connecting to a host after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Give up on any single SSH operation (handshake, read, write) after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Give up on one attempt at one host, all of it (connect, log in, read, write), after this
    /// many seconds: a host that answers slowly cannot hold a worker longer.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub host_timeout: u64,
    /// Read every file of a host this often (on average; each host at its own stable offset,
    /// between 0.75 and 1.25 times this) rather than trusting its state file, to find a file
    /// someone edited or removed. Hosts whose tree did not change are not contacted in between.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub verify_interval: u64,
    /// Replace files at the paths mirrorconf writes that it did not write itself (a host the
    /// Windows Machine Config Operator configured before) and own them from then on. Without it
    /// such files are kept and reported. Files at other paths are never touched either way.
    #[arg(long)]
    pub take_over: bool,
}

impl SshArgs {
    pub fn options(&self) -> Result<crate::push::PushOptions, Error> {
        use std::time::Duration;
        let need = |v: &Option<PathBuf>, flag: &str| {
            v.clone().ok_or_else(|| Error::Usage(format!("{flag} is required to push to Windows hosts")))
        };
        Ok(crate::push::PushOptions {
            port: self.ssh_port,
            identity: need(&self.identity, "--identity <KEYFILE>")?,
            known_hosts: crate::sink::ssh::KnownHostsFile::new(
                need(&self.known_hosts, "--known-hosts <FILE>")?,
                self.trust_on_first_use,
            ),
            remote_root: self.remote_root.clone(),
            parallel: usize::from(self.parallel),
            retries: self.retries,
            retry_delay: Duration::from_millis(self.retry_delay_ms),
            connect_timeout: Duration::from_secs(self.connect_timeout),
            op_timeout: Duration::from_secs(self.timeout),
            host_timeout: Duration::from_secs(self.host_timeout),
            verify_interval: Duration::from_secs(self.verify_interval),
            take_over: self.take_over,
        })
    }
}

/// `run --kube --windows-push`: the in-cluster pusher (Lease per shard; replicas share the shards).
#[derive(Debug, Clone, Args)]
pub struct WindowsPushArgs {
    /// Instead of writing this node's files, keep the Windows hosts (the `windows-instances`
    /// ConfigMap and Nodes labelled kubernetes.io/os=windows) current over SSH. Needs --kube and the
    /// SSH flags of `push` (--identity, --known-hosts, ...).
    #[arg(id = "windows_push", long = "windows-push", requires = "kube", conflicts_with_all = ["base", "reload_crio", "on_change", "hook_timeout"])]
    pub enabled: bool,
    /// Namespace of the `windows-instances` ConfigMap.
    #[arg(long, value_name = "NS", default_value = crate::source::windows_hosts::DEFAULT_NAMESPACE)]
    pub inventory_namespace: String,
    /// User for Windows Nodes that are not in the ConfigMap.
    #[arg(long, value_name = "USER", default_value = "Administrator")]
    pub windows_user: String,
    /// Render and plan a round at least this often even without a change; hosts that failed are
    /// tried again this long after at the latest. Hosts confirmed current are not contacted
    /// (see --verify-interval).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_interval: u64,
    /// Namespace and name of the leader-election Lease (default namespace: $POD_NAMESPACE, else mirrorconf).
    #[arg(long, value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// With --shards above 1, the shard Leases are NAME-0 .. NAME-(N-1) and the replicas'
    /// member Leases NAME-member-0 .. NAME-member-(N-1).
    #[arg(long, value_name = "NAME", default_value = "mirrorconf-windows-push")]
    pub lease_name: String,
    /// Split the hosts into N shards by a stable hash of their address, one Lease each; the live
    /// replicas share the shards evenly. 1 (the default) is one Lease and one pushing replica.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub shards: u16,
    /// How long a Lease stays valid without renewal (a dead replica's hosts are taken over after
    /// this); the holder renews every 2/15 of it and steps down after 2/3 of it without renewal.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=600))]
    pub lease_duration: u64,
}
