//! What containerd's hosts.toml cannot express for a policy, as one-line warnings for `validate`.
//! Linear in the number of entries: each source's mirrors are indexed once.

use super::{cut_down, plan, Layout};
use crate::policy::{scope, Policy};
use std::collections::{BTreeMap, BTreeSet};

/// `["a", "b"]`, or the first five and how many more, so that one warning stays one line.
fn some_of<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 5;
    let total = items.len();
    let shown: Vec<&str> = items.take(SHOWN).collect();
    if total > SHOWN {
        format!("{shown:?} and {} more", total - SHOWN)
    } else {
        format!("{shown:?}")
    }
}

/// What containerd cannot express for this policy: each warning says what will happen instead.
pub fn warnings(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    for e in policy.digest_entries.iter().chain(&policy.tag_entries) {
        if scope::is_wildcard(&e.source) {
            out.push(format!(
                "{}: source {:?} is a wildcard; containerd hosts.toml names exact registry hosts, so containerd and Windows nodes get no mirrors for it",
                e.object, e.source
            ));
            continue;
        }
        let path = e.source.split_once('/').map_or("", |(_, p)| p);
        for m in &e.mirrors {
            if !path.is_empty() && !m.ends_with(&format!("/{path}")) {
                out.push(format!(
                    "{}: mirror {m:?} does not end with the source's repository path {path:?}; containerd looks for {}/... at {}/{path}/...",
                    e.object, e.source, cut_down(m, &e.source)
                ));
            }
        }
    }
    // Hosts that only differ in case share one folder on Windows nodes.
    let mut spellings: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for e in policy.digest_entries.iter().chain(&policy.tag_entries).filter(|e| !scope::is_wildcard(&e.source)) {
        let host = scope::host_and_port(&e.source);
        spellings.entry(Layout::Windows.folder_key(host)).or_default().insert(host);
    }
    for (folder, hosts) in spellings.iter().filter(|(_, hosts)| hosts.len() > 1) {
        let hosts: Vec<&str> = hosts.iter().copied().collect();
        out.push(format!(
            "registry hosts {hosts:?} differ only in case: Windows nodes (case-insensitive folders) get one folder {folder} holding the mirrors of all of them; containerd on Linux gets one folder each"
        ));
    }
    // Per source, once: its cut-down mirrors and whether any entry says NeverContactSource (looking
    // them up per source in every entry was quadratic in the number of entries).
    let mut mirrors_of: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut never_sources: BTreeSet<&str> = BTreeSet::new();
    for e in policy.digest_entries.iter().chain(&policy.tag_entries) {
        mirrors_of.entry(&e.source).or_default().extend(e.mirrors.iter().map(|m| cut_down(m, &e.source)));
        if e.never_contact_source {
            never_sources.insert(&e.source);
        }
    }
    for (host, p) in plan(policy, Layout::Linux) {
        let mut distinct: BTreeSet<&BTreeSet<String>> = BTreeSet::new();
        for s in &p.sources {
            distinct.insert(&mirrors_of[s]);
        }
        if distinct.len() > 1 {
            out.push(format!(
                "registry {host}: sources {} have different mirrors; containerd mirrors whole registries, so images of each source are also looked for on the other sources' mirrors (under their own path)",
                some_of(p.sources.iter().copied())
            ));
        }
        let never: Vec<&str> = p.sources.iter().copied().filter(|s| never_sources.contains(s)).collect();
        if !never.is_empty() && never.len() < p.sources.len() {
            out.push(format!(
                "registry {host}: NeverContactSource on {} applies to the whole registry on containerd and Windows nodes",
                some_of(never.iter().copied())
            ));
        }
    }
    for s in &policy.allowed_scopes {
        if scope::is_wildcard(s) {
            out.push(format!(
                "allowed registry {s:?}: containerd has no wildcard host folders; on containerd and Windows nodes only the hosts under it that the policy names (a mirror source, a CA, an exact allowed scope) are allowed, the rest is refused"
            ));
        } else if s.contains('/') {
            out.push(format!(
                "allowed registry {s:?}: containerd allows whole registry hosts; containerd and Windows nodes allow all of {} (CRI-O's policy.json allows only {s})",
                scope::host_and_port(s)
            ));
        }
    }
    for s in &policy.blocked_scopes {
        if s.contains('/') || scope::is_wildcard(s) {
            out.push(format!(
                "blocked registry {s:?}: containerd can only block whole registry hosts; containerd and Windows nodes do not block it"
            ));
        }
    }
    out
}
