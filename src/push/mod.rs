//! `mirrorconf push`: bring every Windows host of an inventory up to date over SSH.
//!
//! Hosts are done one at a time by default (as the Windows Machine Config Operator does), or by
//! `parallel` workers. A failing host is retried a bounded number of times with backoff and then
//! reported; it never stops the others. [`sink::ssh`](crate::sink::ssh) does the work on one host.

pub mod inventory;

use crate::fileset::FileSet;
use crate::render::hosts_toml::WINDOWS_ROOT;
use crate::sink::ssh::{self, KnownHostsFile, SshOptions};
use crate::sink::ApplyReport;
pub use inventory::Host;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The remote root on Windows hosts, where containerd's `config_path` points.
pub const DEFAULT_REMOTE_ROOT: &str = "C:/k/containerd/registries";

pub struct PushOptions {
    pub port: u16,
    pub identity: PathBuf,
    pub known_hosts: KnownHostsFile,
    pub remote_root: String,
    /// Hosts worked on at once; 1 (the default) is strictly one host at a time.
    pub parallel: usize,
    /// Extra attempts after a failure that a retry can fix.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    /// One attempt on one host, all of it, gives up after this long.
    pub host_timeout: Duration,
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

#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub host: Host,
    pub status: HostStatus,
    pub elapsed: Duration,
}

impl HostOutcome {
    pub fn ok(&self) -> bool {
        !matches!(self.status, HostStatus::Failed { .. } | HostStatus::NotStarted)
    }

    /// One line for the operator: host, result, time.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        match &self.status {
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

/// Pushes `wanted` to every host; `on_done` is called as each host finishes (from worker threads).
/// No host is started, and no retry made, once `keep_going` says false. Outcomes come back in
/// inventory order.
pub fn push_all(
    hosts: &[Host],
    wanted: &FileSet,
    opts: &PushOptions,
    keep_going: &(dyn Fn() -> bool + Sync),
    on_done: &(dyn Fn(&HostOutcome) + Sync),
) -> Vec<HostOutcome> {
    let next = AtomicUsize::new(0);
    let workers = opts.parallel.clamp(1, hosts.len().max(1));
    let mut outcomes: Vec<(usize, HostOutcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(host) = hosts.get(i) else { break };
                        let outcome = if keep_going() {
                            push_one(host, wanted, opts, keep_going)
                        } else {
                            HostOutcome { host: host.clone(), status: HostStatus::NotStarted, elapsed: Duration::ZERO }
                        };
                        on_done(&outcome);
                        done.push((i, outcome));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a push worker panicked")).collect()
    });
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

fn push_one(host: &Host, wanted: &FileSet, opts: &PushOptions, keep_going: &(dyn Fn() -> bool + Sync)) -> HostOutcome {
    let start = Instant::now();
    let ssh_opts = SshOptions {
        port: opts.port,
        identity: &opts.identity,
        known_hosts: &opts.known_hosts,
        remote_root: &opts.remote_root,
        connect_timeout: opts.connect_timeout,
        op_timeout: opts.op_timeout,
        host_timeout: opts.host_timeout,
        take_over: opts.take_over,
    };
    let mut attempts = 0;
    let mut delay = opts.retry_delay;
    let status = loop {
        attempts += 1;
        match ssh::push(&host.address, &host.user, wanted, &ssh_opts, false) {
            Ok(p) if !p.report.changed() && p.report.kept_foreign.is_empty() => break HostStatus::Current,
            Ok(p) => break HostStatus::Updated(p.report),
            Err(e) if e.is_permanent() || attempts > opts.retries => {
                tracing::warn!(host = %host, attempts, error = %e, "push failed");
                break HostStatus::Failed { error: e.to_string(), attempts };
            }
            Err(e) => {
                tracing::info!(host = %host, attempts, error = %e, retry_in = ?delay, "push failed, will retry");
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
                if !keep_going() {
                    break HostStatus::NotStarted;
                }
            }
        }
    };
    HostOutcome { host: host.clone(), status, elapsed: start.elapsed() }
}
