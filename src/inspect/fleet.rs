//! The fleet view behind `mirrorconf status`: which nodes hold the policy the cluster's objects say
//! now, from what each agent published on its Node (source/node.rs writes those annotations).
//!
//! Pure: the caller lists the Nodes and computes the policy; this only compares.

use crate::policy::{fingerprint::fingerprint, Policy};
use crate::render::Target;
use serde::Serialize;
use std::collections::BTreeMap;

/// The Node annotations an agent writes (source/node.rs) and `status` reads.
pub mod annotations {
    /// SHA-256 of the files applied (differs per node: each keeps its own base files).
    pub const FILES_DIGEST: &str = "mirrorconf.io/applied-policy-hash";
    /// The policy fingerprint the node's files were rendered from, once they are fully in place.
    pub const FINGERPRINT: &str = "mirrorconf.io/policy-fingerprint";
    /// The targets rendered (`linux`, `containerd`, `windows`, comma-separated): which fingerprint
    /// applies, since only hosts.toml targets carry the pull secret.
    pub const TARGETS: &str = "mirrorconf.io/targets";
    /// `valid`, or `refused` when the last input was refused (the last good files stay).
    pub const INPUT: &str = "mirrorconf.io/input";
}

/// The fingerprints a current node can hold: CRI-O nodes do not render the pull secret, hosts.toml
/// nodes do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub without_pull_secret: String,
    pub with_pull_secret: String,
}

impl Expected {
    pub fn of(policy: &Policy) -> Expected {
        Expected { without_pull_secret: fingerprint(policy, false), with_pull_secret: fingerprint(policy, true) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Its files hold the current policy and its runtime was told.
    Current,
    /// It reports an older policy (or none yet): the change has not landed.
    Pending,
    /// Its agent refused the last input; it keeps its last good files.
    Refused,
    /// No agent reports on it (not running there, or not yet started).
    NotReporting,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Current => "current",
            State::Pending => "pending",
            State::Refused => "refused",
            State::NotReporting => "not reporting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub state: State,
    /// Why it is not current, in a few words; empty when current.
    pub detail: String,
    /// The fingerprint it reports, if any.
    pub fingerprint: Option<String>,
}

/// Compares one node's annotations with the policy. `expected`: `None` when the current objects
/// are themselves invalid, so no node can be current.
pub fn classify(name: &str, node_annotations: &BTreeMap<String, String>, expected: Option<&Expected>) -> NodeStatus {
    let get = |k: &str| node_annotations.get(k).map(String::as_str);
    let fingerprint = get(annotations::FINGERPRINT).map(String::from);
    let status =
        |state, detail: String| NodeStatus { name: name.into(), state, detail, fingerprint: fingerprint.clone() };
    let (input, targets) = (get(annotations::INPUT), get(annotations::TARGETS));
    if input.is_none() && targets.is_none() {
        return status(State::NotReporting, "no mirrorconf annotations on this node".into());
    }
    if input == Some("refused") {
        return status(State::Refused, "its agent refused the last input; it keeps its last good files".into());
    }
    let mut with_pull_secret = false;
    for t in targets.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
        match Target::from_name(t) {
            Some(t) => with_pull_secret |= t.renders_pull_secret(),
            None => return status(State::NotReporting, format!("unknown target {t:?} in {}", annotations::TARGETS)),
        }
    }
    let Some(expected) = expected else {
        return status(State::Pending, "the current objects are refused; no node can hold them".into());
    };
    let want = if with_pull_secret { &expected.with_pull_secret } else { &expected.without_pull_secret };
    match &fingerprint {
        Some(f) if f == want => status(State::Current, String::new()),
        Some(f) => status(State::Pending, format!("holds {}", short(f))),
        None => status(State::Pending, "files not fully in place yet (rendering, or the reload failed)".into()),
    }
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..19).unwrap_or(fingerprint)
}

/// Every node's state, with counts first (as a MachineConfigPool's status gives them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The current policy's fingerprint for CRI-O nodes (`None`: the objects are refused).
    pub policy: Option<String>,
    pub counts: BTreeMap<&'static str, usize>,
    pub nodes: Vec<NodeStatus>,
    pub all_current: bool,
}

impl Summary {
    pub fn new(expected: Option<&Expected>, mut nodes: Vec<NodeStatus>) -> Summary {
        nodes.sort_by(|a, b| (a.state, &a.name).cmp(&(b.state, &b.name)));
        let mut counts: BTreeMap<&'static str, usize> =
            [State::Current, State::Pending, State::Refused, State::NotReporting].map(|s| (s.label(), 0)).into();
        for n in &nodes {
            *counts.entry(n.state.label()).or_default() += 1;
        }
        let all_current = !nodes.is_empty() && nodes.iter().all(|n| n.state == State::Current);
        Summary { policy: expected.map(|e| e.without_pull_secret.clone()), counts, nodes, all_current }
    }

    pub fn refused(&self) -> Vec<&str> {
        self.nodes.iter().filter(|n| n.state == State::Refused).map(|n| n.name.as_str()).collect()
    }

    /// The table for people: counts, then one line per node that is not current (all with `all`).
    pub fn text(&self, all: bool) -> String {
        let count = |s: State| self.counts.get(s.label()).copied().unwrap_or(0);
        let mut out = format!(
            "policy {}\nnodes: {} current, {} pending, {} refused, {} not reporting\n",
            self.policy.as_deref().map_or("refused (the current objects do not validate)", short),
            count(State::Current),
            count(State::Pending),
            count(State::Refused),
            count(State::NotReporting),
        );
        let shown: Vec<&NodeStatus> = self.nodes.iter().filter(|n| all || n.state != State::Current).collect();
        let width = shown.iter().map(|n| n.name.len()).max().unwrap_or(0).max(4);
        for n in shown {
            out += format!("{:width$}  {:13}  {}", n.name, n.state.label(), n.detail).trim_end();
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected { without_pull_secret: "sha256:aaaa".into(), with_pull_secret: "sha256:bbbb".into() }
    }

    fn node(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn each_state_from_what_the_agent_published() {
        let e = expected();
        let state = |pairs: &[(&str, &str)]| classify("n", &node(pairs), Some(&e)).state;
        let (f, t, i) = (annotations::FINGERPRINT, annotations::TARGETS, annotations::INPUT);
        assert_eq!(state(&[(f, "sha256:aaaa"), (t, "linux"), (i, "valid")]), State::Current);
        assert_eq!(state(&[(f, "sha256:bbbb"), (t, "containerd"), (i, "valid")]), State::Current);
        // A containerd node holding the CRI-O fingerprint lacks the pull secret's change.
        assert_eq!(state(&[(f, "sha256:aaaa"), (t, "containerd,linux"), (i, "valid")]), State::Pending);
        assert_eq!(state(&[(f, "sha256:old"), (t, "linux"), (i, "valid")]), State::Pending);
        assert_eq!(state(&[(t, "linux"), (i, "valid")]), State::Pending);
        assert_eq!(state(&[(f, "sha256:aaaa"), (t, "linux"), (i, "refused")]), State::Refused);
        assert_eq!(state(&[]), State::NotReporting);
        assert_eq!(state(&[("other/annotation", "x")]), State::NotReporting);
        assert_eq!(state(&[(f, "sha256:aaaa"), (t, "solaris"), (i, "valid")]), State::NotReporting);
        // Objects that do not validate: nobody is current.
        let s = classify("n", &node(&[(f, "sha256:aaaa"), (t, "linux"), (i, "valid")]), None);
        assert_eq!(s.state, State::Pending);
    }

    #[test]
    fn counts_come_first_and_only_a_fleet_all_current_is_done() {
        let e = expected();
        let (f, t, i) = (annotations::FINGERPRINT, annotations::TARGETS, annotations::INPUT);
        let good = node(&[(f, "sha256:aaaa"), (t, "linux"), (i, "valid")]);
        let nodes = vec![classify("b", &good, Some(&e)), classify("a", &node(&[]), Some(&e))];
        let s = Summary::new(Some(&e), nodes);
        assert!(!s.all_current);
        assert_eq!(s.counts["current"], 1);
        assert_eq!(s.counts["not reporting"], 1);
        let text = s.text(false);
        assert!(
            text.starts_with("policy sha256:aaaa\nnodes: 1 current, 0 pending, 0 refused, 1 not reporting\n"),
            "{text}"
        );
        assert!(text.contains("a     not reporting  no mirrorconf annotations") && !text.contains("\nb "), "{text}");
        assert!(Summary::new(Some(&e), vec![classify("b", &good, Some(&e))]).all_current);
        assert!(!Summary::new(Some(&e), vec![]).all_current, "no nodes is no evidence");
    }
}
