//! What the in-cluster pusher says about each Windows host it keeps: current (and with which
//! policy), failing (why, since when) or holding files mirrorconf did not write. The pusher keeps
//! it per host across rounds ([`HostReports`]) and publishes it, one ConfigMap per shard, where
//! `mirrorconf status` reads it: the only place a BYOH host that is no Node yet can be seen
//! (docs/design.md, "The fleet view").
//!
//! Pure: the pusher feeds it round outcomes, the cluster edge writes and reads the JSON. What is
//! read back is untrusted (anyone with write access to the ConfigMap can put anything there), so
//! parsing checks every entry and drops the bad ones with a message naming field and value.

use super::record::{Dest, Record};
use super::{Host, HostOutcome, HostStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label that marks a host-report ConfigMap (its value: the pusher's Lease name).
pub const LABEL: &str = "mirrorconf.io/windows-host-report";
/// The ConfigMap key that holds the report.
pub const DATA_KEY: &str = "hosts.json";
/// A ConfigMap holds at most 1 MiB; past this much the current hosts are counted, not listed.
pub const MAX_REPORT_BYTES: usize = 900 * 1024;
/// How far a report's `updated` may be ahead of the reader's clock (the pusher runs on another node).
pub const MAX_CLOCK_SKEW: u64 = 300;

/// The name of the ConfigMap that holds shard `shard`'s report of the pusher whose Lease is
/// `lease_name`: the one place that ties a report to its shard.
pub fn report_name(lease_name: &str, shard: usize) -> String {
    format!("{lease_name}-hosts-{shard}")
}

/// Where one host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// Every file of the tree is in place, as confirmed by its last contact (or the record).
    Current,
    /// The last attempt failed (unreachable, refused host key, login, write); its old files stay.
    Failed,
    /// It holds files mirrorconf did not write at paths the tree wants (`--take-over` replaces them).
    Kept,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// `user@address`, as the inventory names it.
    pub host: String,
    pub address: String,
    /// The Node this host is, when one has this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub state: HostState,
    /// Why it is not current, in one line; empty when current.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Unix seconds since it has been in this state (for a failing host: since its first failure).
    pub since: u64,
    /// The policy fingerprint its files were last confirmed to hold. In the JSON, left out when it
    /// is the report's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// One shard's hosts, as one ConfigMap holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    pub shard: usize,
    pub shards: usize,
    /// `valid`, or `refused` when the pusher refused the current input (hosts keep their files).
    pub input: String,
    /// The fingerprint of the policy the pusher last rendered (Windows targets carry the pull secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Unix seconds of the round this report comes from.
    pub updated: u64,
    pub hosts: Vec<HostReport>,
    /// Current hosts left out to keep the ConfigMap under its size limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current_not_listed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What the pusher knows of every host of the shards it holds, carried from round to round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReports {
    by_host: BTreeMap<Host, HostReport>,
}

impl HostReports {
    /// Folds one round in. `hosts`: every host of the shards held now (others are forgotten);
    /// `outcomes`: the hosts contacted; a host not contacted is current when `record` vouches for
    /// `digest` there. `fingerprint`: the policy the tree `digest` was rendered from.
    pub fn after_round(
        &mut self,
        hosts: &[Host],
        outcomes: &[HostOutcome],
        record: &Record,
        dest: Dest<'_>,
        (digest, fingerprint): (&str, &str),
        now: u64,
    ) {
        let contacted: BTreeMap<&Host, &HostOutcome> = outcomes.iter().map(|o| (&o.host, o)).collect();
        let mut next = BTreeMap::new();
        for host in hosts {
            let before = self.by_host.remove(host);
            let recorded = record.entries.get(&dest.key(host)).and_then(|e| e.tree.as_deref()) == Some(digest);
            let last_fp = before.as_ref().and_then(|b| b.fingerprint.clone());
            let (state, reason, fp) = match contacted.get(host).map(|o| (&o.status, o.confirmed())) {
                Some((_, true)) => (HostState::Current, String::new(), Some(fingerprint.to_string())),
                Some((HostStatus::Updated(r), false)) => (
                    HostState::Kept,
                    format!(
                        "kept {} file(s) mirrorconf did not write (--take-over replaces them)",
                        r.kept_foreign.len()
                    ),
                    last_fp,
                ),
                Some((HostStatus::Failed { error, attempts }, _)) => {
                    (HostState::Failed, format!("after {attempts} attempt(s): {error}"), last_fp)
                }
                // Not started (a Lease lost, shutdown) or not contacted: what was known stays.
                _ if recorded => (HostState::Current, String::new(), Some(fingerprint.to_string())),
                _ => match before {
                    Some(b) => {
                        next.insert(host.clone(), b);
                        continue;
                    }
                    None => continue,
                },
            };
            let since = match &before {
                Some(b) if b.state == state && b.fingerprint == fp => b.since,
                _ => now,
            };
            let report = HostReport {
                host: host.to_string(),
                address: host.address.clone(),
                node: None,
                state,
                reason,
                since,
                fingerprint: fp,
            };
            next.insert(host.clone(), report);
        }
        self.by_host = next;
    }

    pub fn hosts(&self) -> impl Iterator<Item = &HostReport> {
        self.by_host.values()
    }
}

impl ShardReport {
    /// The JSON for the ConfigMap, at most [`MAX_REPORT_BYTES`]: if every host does not fit, the
    /// current ones are counted instead of listed (the others are what `status` must name).
    pub fn to_json(&self) -> String {
        let mut compact = self.clone();
        for h in &mut compact.hosts {
            if h.fingerprint == self.fingerprint {
                h.fingerprint = None;
            }
        }
        let json = serde_json::to_string(&compact).expect("a report always serialises");
        if json.len() <= MAX_REPORT_BYTES {
            return json;
        }
        let before = compact.hosts.len();
        compact.hosts.retain(|h| h.state != HostState::Current);
        compact.current_not_listed += before - compact.hosts.len();
        // Failing hosts carry a reason each; a fleet where thousands fail is cut to what fits.
        let mut json = serde_json::to_string(&compact).expect("a report always serialises");
        while json.len() > MAX_REPORT_BYTES && !compact.hosts.is_empty() {
            let keep = compact.hosts.len() * MAX_REPORT_BYTES / json.len();
            compact.hosts.truncate(keep.min(compact.hosts.len() - 1));
            json = serde_json::to_string(&compact).expect("a report always serialises");
        }
        json
    }

    /// Reads a report back (from a ConfigMap, untrusted). The report as a whole must parse; each
    /// host entry that fails a check is dropped, with a message naming `hosts[i].field` and value.
    pub fn parse(text: &str) -> Result<(ShardReport, Vec<String>), String> {
        #[derive(Deserialize)]
        struct Raw {
            shard: usize,
            shards: usize,
            input: String,
            #[serde(default)]
            fingerprint: Option<String>,
            updated: u64,
            hosts: Vec<serde_json::Value>,
            #[serde(default)]
            current_not_listed: usize,
        }
        let raw: Raw = serde_json::from_str(text).map_err(|e| format!("not a host report: {e}"))?;
        if raw.shards == 0 || raw.shard >= raw.shards {
            return Err(format!("shard = {} of shards = {}: out of range", raw.shard, raw.shards));
        }
        if !matches!(raw.input.as_str(), "valid" | "refused") {
            return Err(format!("input = {:?}: neither \"valid\" nor \"refused\"", raw.input));
        }
        if let Some(f) = raw.fingerprint.as_deref().filter(|f| !is_fingerprint(f)) {
            return Err(format!("fingerprint = {f:?}: not \"sha256:\" and 64 hex digits"));
        }
        let mut hosts = Vec::new();
        let mut dropped = Vec::new();
        for (i, value) in raw.hosts.into_iter().enumerate() {
            match serde_json::from_value::<HostReport>(value.clone()) {
                Ok(mut h) => match check_host(&h) {
                    Ok(()) => {
                        h.fingerprint = h.fingerprint.or_else(|| raw.fingerprint.clone());
                        hosts.push(h);
                    }
                    Err((field, why)) => dropped.push(format!("hosts[{i}].{field}: {why}; this entry is ignored")),
                },
                Err(e) => {
                    dropped.push(format!("hosts[{i}] = {}: {e}; this entry is ignored", clip(&value.to_string())))
                }
            }
        }
        let report = ShardReport {
            shard: raw.shard,
            shards: raw.shards,
            input: raw.input,
            fingerprint: raw.fingerprint,
            updated: raw.updated,
            hosts,
            current_not_listed: raw.current_not_listed,
        };
        Ok((report, dropped))
    }
}

impl ShardReport {
    /// Ties a report read back to where it was found, so that a ConfigMap anyone can label cannot
    /// stand in for the pusher's: it must be named `<lease>-hosts-<shard>` (as the pusher whose
    /// Lease is `lease_name` names them), hold that shard, count the pusher's `shards`, and have
    /// been updated no later than `now` plus [`MAX_CLOCK_SKEW`].
    pub fn check_origin(&self, config_map: &str, lease_name: &str, shards: usize, now: u64) -> Result<(), String> {
        let prefix = report_name(lease_name, 0);
        let prefix = &prefix[..prefix.len() - 1];
        let named_shard = config_map
            .strip_prefix(prefix)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n.len() == 1 || !n.starts_with('0')))
            .and_then(|n| n.parse::<usize>().ok());
        let Some(named_shard) = named_shard else {
            return Err(format!(
                "not named {prefix}<shard>, so not a report of the pusher whose Lease is {lease_name:?} (status --windows-lease)"
            ));
        };
        if self.shard != named_shard {
            return Err(format!("shard = {} in the report of shard {named_shard}", self.shard));
        }
        if self.shards != shards || named_shard >= shards {
            return Err(format!(
                "shards = {} where the pusher runs {shards} (status --windows-shards): left from an earlier shard count, or not the pusher's",
                self.shards
            ));
        }
        if self.updated > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(format!(
                "updated = {}: more than {MAX_CLOCK_SKEW} s ahead of this clock ({now})",
                self.updated
            ));
        }
        Ok(())
    }
}

fn is_fingerprint(f: &str) -> bool {
    f.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Printable, one line, of a sane length: what `status` puts on a terminal.
fn printable(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(crate::text::is_unsafe_for_terminal)
}

fn check_host(h: &HostReport) -> Result<(), (&'static str, String)> {
    let bad = |field, value: &str, why: &str| Err((field, format!("{:?}: {why}", clip(value))));
    if h.host.is_empty() || !printable(&h.host, 300) {
        return bad("host", &h.host, "empty, too long or with control characters");
    }
    if h.address.is_empty() || !printable(&h.address, 253) || h.address.contains(char::is_whitespace) {
        return bad("address", &h.address, "not a host address");
    }
    if let Some(n) = h.node.as_deref().filter(|n| n.is_empty() || !printable(n, 253)) {
        return bad("node", n, "not a Node name");
    }
    if !printable(&h.reason, 2000) {
        return bad("reason", &h.reason, "too long or with control characters");
    }
    if let Some(f) = h.fingerprint.as_deref().filter(|f| !is_fingerprint(f)) {
        return bad("fingerprint", f, "not \"sha256:\" and 64 hex digits");
    }
    Ok(())
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// What one round of the pusher publishes: every host of the shards it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// `false` when the pusher refused the current input (hosts keep their last good files).
    pub input_valid: bool,
    /// The fingerprint of the policy last rendered, and the digest of its Windows tree.
    pub fingerprint: Option<String>,
    pub files_digest: Option<String>,
    pub shards: usize,
    /// The shard numbers this replica holds.
    pub held: Vec<usize>,
    pub hosts: Vec<HostReport>,
    /// Unix seconds.
    pub at: u64,
}

impl RoundReport {
    /// One report per shard held, each with the hosts of that shard.
    pub fn shard_reports(&self) -> Vec<ShardReport> {
        self.held
            .iter()
            .map(|&shard| ShardReport {
                shard,
                shards: self.shards,
                input: if self.input_valid { "valid" } else { "refused" }.into(),
                fingerprint: self.fingerprint.clone(),
                updated: self.at,
                hosts: self
                    .hosts
                    .iter()
                    .filter(|h| super::shard::shard_of(&h.address, self.shards) == shard)
                    .cloned()
                    .collect(),
                current_not_listed: 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
