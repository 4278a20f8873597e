//! What each host was last confirmed to hold, so that a round contacts only the hosts that need
//! it: the in-cluster pusher keeps it in memory, `mirrorconf push` in a file ([`file`]).
//!
//! An entry names the host as it was reached (address, port, user, remote root) and the host key
//! it showed, and says which tree (a [`FileSet::digest`](crate::fileset::FileSet::digest)) it was
//! confirmed to hold and when. A host is skipped when its entry's tree is the one to push, its key
//! is still the one known_hosts pins, and its verification is not due. Verification (reading
//! every file instead of trusting the host's state file, to find someone's edit) is due
//! `interval * (0.75 + 0.5 * jitter)` after the last one, with a stable per-host jitter, so
//! hosts confirmed in one round come due spread over half an interval.
//!
//! Before a host is contacted to change it, its entry is marked pending (and, for the file,
//! saved): a push cut short never leaves an entry that calls the host current.

pub mod file;

use super::shard::jitter;
use super::{HostOutcome, Job};
use crate::push::Host;
use crate::sink::ssh::{HostKey, Pins};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Who a host is, as far as the record is concerned: the same name with another port, user or
/// remote root is another destination.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub remote_root: String,
}

impl Key {
    pub fn new(host: &Host, port: u16, remote_root: &str) -> Key {
        Key { address: host.address.clone(), port, user: host.user.clone(), remote_root: remote_root.to_string() }
    }

    fn jitter(&self) -> f64 {
        jitter(&format!("{}@{}:{}/{}", self.user, self.address, self.port, self.remote_root))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub host_key: HostKey,
    /// The tree confirmed on the host; `None` while a change is under way (pending).
    pub tree: Option<String>,
    /// Unix seconds of the last contact that confirmed the tree.
    pub confirmed_at: u64,
    /// Unix seconds of the last contact that read and compared every file.
    pub verified_at: u64,
}

/// Where a round pushes: the same on every host of it.
#[derive(Debug, Clone, Copy)]
pub struct Dest<'a> {
    pub port: u16,
    pub root: &'a str,
}

impl Dest<'_> {
    pub(crate) fn key(&self, host: &Host) -> Key {
        Key::new(host, self.port, self.root)
    }
}

/// When verification is due and how much earlier a host may be taken with others.
#[derive(Debug, Clone, Copy)]
pub struct Verify {
    pub interval: Duration,
    /// Contact every host and read its files, whatever the record says.
    pub all: bool,
    /// Hosts due within this window are verified now (the pusher batches its wake-ups).
    pub window: Duration,
}

/// What a round is to do.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// Hosts the record vouches for: not contacted.
    pub skipped: usize,
    /// The earliest time (unix seconds) a skipped host's verification comes due.
    pub next_due: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub entries: BTreeMap<Key, Entry>,
}

impl Record {
    /// When `key`'s files are to be read again.
    pub fn due_at(key: &Key, entry: &Entry, interval: Duration) -> u64 {
        let spread = interval.as_secs_f64() * (0.75 + 0.5 * key.jitter());
        entry.verified_at.saturating_add(spread as u64)
    }

    /// Which of `hosts` to contact for `tree`, and how.
    pub fn plan(&self, hosts: &[Host], dest: Dest<'_>, tree: &str, pins: &Pins, now: u64, v: Verify) -> Plan {
        let mut plan = Plan::default();
        for host in hosts {
            let key = dest.key(host);
            let entry = self.entries.get(&key).filter(|e| pins.pins(&host.address, dest.port, &e.host_key));
            let Some(e) = entry else {
                plan.jobs.push(Job { host: host.clone(), verify: true });
                continue;
            };
            let due_at = Self::due_at(&key, e, v.interval);
            let due = v.all || now.saturating_add(v.window.as_secs()) >= due_at;
            if e.tree.as_deref() == Some(tree) && !due {
                plan.skipped += 1;
                plan.next_due = Some(plan.next_due.map_or(due_at, |t| t.min(due_at)));
            } else {
                plan.jobs.push(Job { host: host.clone(), verify: due });
            }
        }
        plan
    }

    /// Marks pending every entry of a job that is to change its host (another tree, or a host key
    /// known_hosts no longer pins); true when the record changed and is to be saved before any
    /// host is contacted.
    pub fn claim(&mut self, jobs: &[Job], dest: Dest<'_>, tree: &str, pins: &Pins) -> bool {
        let mut changed = false;
        for job in jobs {
            if let Some(e) = self.entries.get_mut(&dest.key(&job.host)) {
                let keeps = e.tree.as_deref() == Some(tree) && pins.pins(&job.host.address, dest.port, &e.host_key);
                if !keeps && e.tree.is_some() {
                    e.tree = None;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Records what a round found: a confirmed host holds `tree` as of `now`; any other outcome
    /// leaves its entry pending (or absent), never current.
    pub fn update(&mut self, outcomes: &[HostOutcome], dest: Dest<'_>, tree: &str, now: u64) {
        for o in outcomes {
            let key = dest.key(&o.host);
            match (&o.host_key, o.confirmed()) {
                (Some(host_key), true) => {
                    let verified_at = match self.entries.get(&key) {
                        _ if o.verified => now,
                        Some(e) if &e.host_key == host_key => e.verified_at,
                        // Never verified under this key: due at once.
                        _ => 0,
                    };
                    let entry = Entry {
                        host_key: host_key.clone(),
                        tree: Some(tree.to_string()),
                        confirmed_at: now,
                        verified_at,
                    };
                    self.entries.insert(key, entry);
                }
                _ => {
                    if let Some(e) = self.entries.get_mut(&key) {
                        e.tree = None;
                    }
                }
            }
        }
    }

    /// Drops entries of hosts not in `keep` whose verification is long overdue: they vouch for
    /// nothing any more, and a record of a changing fleet would otherwise only grow.
    pub fn prune(&mut self, keep: &BTreeSet<Key>, interval: Duration, now: u64) {
        let horizon = interval.as_secs().saturating_mul(2);
        self.entries.retain(|k, e| keep.contains(k) || e.verified_at.saturating_add(horizon) >= now);
    }

    /// Forgets the hosts `keep` says no (the pusher: hosts of shards it did not hold throughout).
    pub fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
