//! `mirrorconf push` and the in-cluster pusher's rounds: bring Windows hosts up to date over SSH.
//!
//! A round works on a bounded number of hosts at once ([`DEFAULT_PARALLEL`]; 1 is strictly one at
//! a time, in inventory order). A failing host is retried a bounded number of times with backoff,
//! later in the round, and then reported; it never stops or delays the others. [`record`] says
//! which hosts need contacting at all; [`shard`] splits hosts between pusher replicas;
//! [`sink::ssh`](crate::sink::ssh) does the work on one host.

pub mod inventory;
pub mod record;
pub mod report;
mod round;
pub mod shard;

use crate::fileset::FileSet;
use crate::render::hosts_toml::WINDOWS_ROOT;
use crate::sink::ssh::{HostKey, KnownHostsFile, Timings};
use crate::sink::ApplyReport;
pub use inventory::Host;
pub use round::{Admit, Gate, Pass};
use std::path::PathBuf;
use std::time::Duration;

/// The remote root on Windows hosts, where containerd's `config_path` points.
pub const DEFAULT_REMOTE_ROOT: &str = "C:/k/containerd/registries";

/// Hosts worked on at once unless told otherwise. Measured on 100 hosts (docs/benchmarks.md):
/// past this, a 2-core pusher gains little on a changed round, while each worker is one more
/// connection and thread; remote hosts wait on the network more than loopback ones, so they gain
/// at least as much from it.
pub const DEFAULT_PARALLEL: usize = 8;

pub struct PushOptions {
    pub port: u16,
    pub identity: PathBuf,
    pub known_hosts: KnownHostsFile,
    pub remote_root: String,
    /// Hosts worked on at once; 1 is strictly one host at a time, in inventory order.
    pub parallel: usize,
    /// Extra attempts after a failure that a retry can fix.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    /// One attempt on one host, all of it, gives up after this long.
    pub host_timeout: Duration,
    /// How often, on average, a host's files are read rather than taken on its state file's word.
    pub verify_interval: Duration,
    /// Replace files mirrorconf did not write at the paths it wants (see [`SshOptions::take_over`]).
    pub take_over: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStatus {
    /// The state file said the host is current: nothing was written.
    Current,
    /// Something was written or removed, or a file someone else wrote was kept.
    Updated(ApplyReport),
    Failed {
        error: String,
        attempts: u32,
    },
    /// Not started (or not retried): the round was told to stop (the pusher lost its Lease, or is
    /// shutting down). A host being written when that happens finishes its atomic replace first.
    NotStarted,
}

/// A host to contact in a round, and whether to read its files rather than trust its state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub host: Host,
    pub verify: bool,
}

#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub host: Host,
    pub status: HostStatus,
    pub elapsed: Duration,
    /// The files were read and compared, not taken on the state file's word.
    pub verified: bool,
    /// The key the host showed, when it was reached.
    pub host_key: Option<HostKey>,
    pub timings: Option<Timings>,
}

impl HostOutcome {
    pub fn ok(&self) -> bool {
        !matches!(self.status, HostStatus::Failed { .. } | HostStatus::NotStarted)
    }

    /// The host now holds every wanted file (nothing someone else wrote was kept in its place):
    /// what a record may remember as confirmed.
    pub fn confirmed(&self) -> bool {
        match &self.status {
            HostStatus::Current => true,
            HostStatus::Updated(r) => r.kept_foreign.is_empty(),
            HostStatus::Failed { .. } | HostStatus::NotStarted => false,
        }
    }

    /// One line for the operator: host, result, time.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        match &self.status {
            HostStatus::Current if self.verified => {
                format!("{:<28} current    {secs:.2}s  files verified", self.host.to_string())
            }
            HostStatus::Current => format!("{:<28} current    {secs:.2}s", self.host.to_string()),
            HostStatus::Updated(r) => {
                let mut what = format!("{} written, {} removed", r.written.len(), r.removed.len());
                if !r.kept_foreign.is_empty() {
                    what.push_str(&format!(
                        ", kept {} file(s) mirrorconf did not write (--take-over replaces them)",
                        r.kept_foreign.len()
                    ));
                }
                if !r.kept_dirs.is_empty() {
                    what.push_str(&format!(", kept {} folder(s) holding other files", r.kept_dirs.len()));
                }
                if self.verified {
                    what.push_str("; files verified");
                }
                format!("{:<28} updated    {secs:.2}s  {what}", self.host.to_string())
            }
            HostStatus::Failed { error, attempts } => {
                format!("{:<28} FAILED     {secs:.2}s  after {attempts} attempt(s): {error}", self.host.to_string())
            }
            HostStatus::NotStarted => format!("{:<28} not pushed (the round was stopped)", self.host.to_string()),
        }
    }
}

/// The Windows tree of a rendered file set, with paths relative to the remote root.
pub fn windows_tree(rendered: &FileSet) -> FileSet {
    rendered.subtree(WINDOWS_ROOT)
}

/// Pushes `wanted` to every job's host; `on_done` is called as each host finishes (from worker
/// threads). `admit` is asked before every attempt: no host starts, and no retry is made, once it
/// says no. Outcomes come back in job order.
pub fn push_all(
    jobs: &[Job],
    wanted: &FileSet,
    opts: &PushOptions,
    admit: Admit<'_>,
    on_done: &(dyn Fn(&HostOutcome) + Sync),
) -> Vec<HostOutcome> {
    round::run(jobs, wanted, opts, admit, on_done)
}
