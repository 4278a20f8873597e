//! What the Machine Config Operator would do to a node for a registries.conf change (docs/design.md,
//! "What the MCO would do"): appending digest-only mirrors, new registries that only hold them, or
//! search registries is applied with a CRI-O reload and no drain; removing a scope or a mirror,
//! changing `blocked`, `insecure` or `location`, adding a tag-only mirror, or any other change drains
//! and reboots the node. mirrorconf applies every one of them with a CRI-O reload.

use super::conf::{self, Mirror, Registry};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disruption {
    /// The bytes do not change.
    None,
    /// The MCO applies it with a CRI-O reload.
    Reload,
    /// The MCO cordons, drains and reboots every node.
    DrainAndReboot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub mco: Disruption,
    /// Why, one line per finding; the first drain reason decides.
    pub reasons: Vec<String>,
}

/// A registries.conf as the classes compare it: registries by scope, the search list, and every
/// other top-level setting as text.
type Parsed = (BTreeMap<String, Registry>, Vec<String>, String);

fn parse(text: &str) -> Result<Parsed, String> {
    let conf = conf::parse(text)?;
    let regs = conf.registries.into_iter().map(|r| (r.scope.clone(), r)).collect();
    Ok((regs, conf.search, conf.rest))
}

/// Classifies the change from `old` to `new` (registries.conf texts, or the search drop-in).
pub fn classify(old: &str, new: &str) -> Result<Classification, String> {
    if old == new {
        return Ok(Classification { mco: Disruption::None, reasons: vec![] });
    }
    let (old_regs, old_search, old_rest) = parse(old).map_err(|e| format!("the current registries.conf {e}"))?;
    let (new_regs, new_search, new_rest) = parse(new).map_err(|e| format!("the new registries.conf {e}"))?;
    let mut drain = Vec::new();
    let mut safe = Vec::new();
    for (scope, o) in &old_regs {
        let Some(n) = new_regs.get(scope) else {
            drain.push(format!("removes the registry {scope:?}"));
            continue;
        };
        if o.location != n.location {
            drain.push(format!("changes the location of {scope:?}"));
        }
        if o.blocked != n.blocked {
            drain.push(format!("changes blocked on {scope:?} to {}", n.blocked));
        }
        if o.insecure != n.insecure {
            drain.push(format!("changes insecure on {scope:?} to {}", n.insecure));
        }
        if o.rest != n.rest {
            drain.push(format!("changes other settings of {scope:?}"));
        }
        if n.mirrors.len() < o.mirrors.len() || n.mirrors[..o.mirrors.len()] != o.mirrors[..] {
            drain.push(format!("removes or changes a mirror of {scope:?}"));
        }
        for m in n.mirrors.iter().skip(o.mirrors.len()) {
            appended(scope, m, &mut drain, &mut safe);
        }
    }
    for (scope, n) in new_regs.iter().filter(|(s, _)| !old_regs.contains_key(*s)) {
        if n.blocked {
            drain.push(format!("adds the blocked registry {scope:?}"));
        }
        if n.insecure {
            drain.push(format!("adds the insecure registry {scope:?}"));
        }
        if !n.rest.is_empty() {
            drain.push(format!("adds {scope:?} with other settings"));
        }
        for m in &n.mirrors {
            appended(scope, m, &mut drain, &mut safe);
        }
        if n.mirrors.is_empty() && !n.blocked && !n.insecure {
            safe.push(format!("adds the registry {scope:?}"));
        }
    }
    if new_search.len() < old_search.len() || new_search[..old_search.len()] != old_search[..] {
        drain.push("removes or reorders unqualified-search-registries".into());
    } else if new_search.len() > old_search.len() {
        safe.push(format!("appends unqualified-search-registries {:?}", &new_search[old_search.len()..]));
    }
    if old_rest != new_rest {
        drain.push("changes other settings of the file".into());
    }
    let mco = if !drain.is_empty() { Disruption::DrainAndReboot } else { Disruption::Reload };
    drain.extend(safe);
    if drain.is_empty() {
        // Only comments or formatting differ.
        drain.push("changes only comments or formatting".into());
    }
    Ok(Classification { mco, reasons: drain })
}

fn appended(scope: &str, m: &Mirror, drain: &mut Vec<String>, safe: &mut Vec<String>) {
    if m.pull_from_mirror == "digest-only" && !m.insecure {
        safe.push(format!("appends the digest-only mirror {:?} to {scope:?}", m.location));
    } else if m.pull_from_mirror == "tag-only" {
        drain.push(format!("adds the tag-only mirror {:?} to {scope:?}", m.location));
    } else {
        drain.push(format!(
            "adds the mirror {:?} (pull-from-mirror {:?}, insecure {}) to {scope:?}",
            m.location, m.pull_from_mirror, m.insecure
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "unqualified-search-registries = [\"registry.access.redhat.com\"]\n";
    fn reg(scope: &str, extra: &str, mirrors: &[(&str, &str)]) -> String {
        let mut s = format!("\n[[registry]]\n  location = \"{scope}\"\n{extra}");
        for (loc, mode) in mirrors {
            s.push_str(&format!(
                "\n  [[registry.mirror]]\n    location = \"{loc}\"\n    pull-from-mirror = \"{mode}\"\n"
            ));
        }
        s
    }

    #[test]
    fn appending_digest_mirrors_is_a_reload() {
        let old = format!("{BASE}{}", reg("quay.io/a", "", &[("m1/a", "digest-only")]));
        let new = format!(
            "{BASE}{}{}",
            reg("quay.io/a", "", &[("m1/a", "digest-only"), ("m2/a", "digest-only")]),
            reg("quay.io/b", "", &[("m/b", "digest-only")])
        );
        let c = classify(&old, &new).unwrap();
        assert_eq!(c.mco, Disruption::Reload, "{c:?}");
        assert_eq!(
            classify(BASE, &format!("{BASE}{}", reg("q/x", "", &[("m/x", "digest-only")]))).unwrap().mco,
            Disruption::Reload
        );
        assert_eq!(classify(&old, &old).unwrap().mco, Disruption::None);
        let more_search = "unqualified-search-registries = [\"registry.access.redhat.com\", \"docker.io\"]\n";
        assert_eq!(classify(BASE, more_search).unwrap().mco, Disruption::Reload);
    }

    #[test]
    fn removals_blocks_insecure_and_tag_mirrors_drain() {
        let one = format!("{BASE}{}", reg("quay.io/a", "", &[("m1/a", "digest-only")]));
        for new in [
            BASE.to_string(),
            format!("{BASE}{}", reg("quay.io/a", "  blocked = true\n", &[("m1/a", "digest-only")])),
            format!("{BASE}{}", reg("quay.io/a", "  insecure = true\n", &[("m1/a", "digest-only")])),
            format!("{BASE}{}", reg("quay.io/a", "", &[("m1/a", "digest-only"), ("t/a", "tag-only")])),
            format!("{BASE}{}", reg("quay.io/a", "", &[("m0/a", "digest-only"), ("m1/a", "digest-only")])),
            format!("short-name-mode = \"enforcing\"\n{one}"),
        ] {
            let c = classify(&one, &new).unwrap();
            assert_eq!(c.mco, Disruption::DrainAndReboot, "{new}\n{c:?}");
        }
    }
}
