//! What an agent tells the cluster about its own Node: the annotations `mirrorconf status` reads
//! ([`crate::inspect::fleet::annotations`]),
//! and the removal of the registries-pending taint once the node's files are in place
//! (docs/design.md, "The fleet view").
//!
//! Other controllers edit Node taints too (the node lifecycle controller, the cloud provider,
//! admins), so the taint is removed with an optimistic-concurrency patch: the Node as read, minus
//! our taint, applied only if nobody changed the Node in between; a conflict reads it again.

use super::{bounded, CallError};
use crate::agent::Outcome;
use crate::inspect::fleet::annotations::{FILES_DIGEST, FINGERPRINT, INPUT, TARGETS};
use crate::render::Target;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The taint nodes carry until their registry files are in place.
pub const DEFAULT_PENDING_TAINT: &str = "mirrorconf.io/registries-pending";

/// Conflicts in a row before giving up until the next attempt.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("the Node kept changing under us ({0} conflicts in a row)")]
    Conflicts(usize),
}

/// One Node, as its agent sees it.
#[derive(Clone)]
pub struct NodeHandle {
    api: Api<Node>,
    pub name: String,
}

/// What removing the taint found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untainted {
    Removed,
    /// The Node did not carry it (never did, or someone removed it already).
    Absent,
}

impl NodeHandle {
    pub fn new(client: Client, name: &str) -> NodeHandle {
        NodeHandle { api: Api::all(client), name: name.to_string() }
    }

    /// Merges `annotations` into the Node's (a merge patch touches no other annotation); `None`
    /// removes one.
    pub async fn annotate(&self, annotations: &BTreeMap<&str, Option<String>>) -> Result<(), NodeError> {
        let patch = serde_json::json!({"metadata": {"annotations": annotations}});
        bounded(self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
        Ok(())
    }

    /// Removes every taint with key `key`, and only those, keeping whatever else the Node holds at
    /// the moment of the write.
    pub async fn remove_taint(&self, key: &str) -> Result<Untainted, NodeError> {
        for _ in 0..CONFLICT_RETRIES {
            let node = bounded(self.api.get(&self.name)).await?;
            let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
            if !taints.iter().any(|t| t.key == key) {
                return Ok(Untainted::Absent);
            }
            let rest: Vec<_> = taints.into_iter().filter(|t| t.key != key).collect();
            // A merge patch replaces the whole list; the resourceVersion makes it conditional on
            // the list being the one just read (409 Conflict otherwise, as for an update).
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": rest},
            });
            match bounded(self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))).await {
                Ok(_) => return Ok(Untainted::Removed),
                Err(CallError::Api(kube::Error::Api(status))) if status.code == 409 => {
                    tracing::debug!(node = %self.name, "the Node changed while removing the taint; reading it again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(NodeError::Conflicts(CONFLICT_RETRIES))
    }
}

/// What a node agent publishes on its own Node (`NODE_NAME`).
#[derive(Debug, Clone)]
pub struct NodeReporting {
    pub targets: Vec<Target>,
    /// The taint key to remove after the first complete apply; `None` leaves taints alone.
    pub pending_taint: Option<String>,
}

/// First retry of a failed taint removal; doubled up to [`UNTAINT_BACKOFF_MAX`].
const UNTAINT_BACKOFF: Duration = Duration::from_secs(2);
const UNTAINT_BACKOFF_MAX: Duration = Duration::from_secs(60);

enum Untaint {
    /// No complete apply yet: a refused input or a failed reload never removes the taint.
    NotYet,
    Due {
        at: Instant,
        backoff: Duration,
    },
    Done,
}

/// The agent's own Node: publishes each outcome, and removes the pending taint once.
pub(crate) struct OwnNode {
    node: NodeHandle,
    reporting: NodeReporting,
    published: Option<BTreeMap<&'static str, Option<String>>>,
    untaint: Untaint,
}

impl OwnNode {
    pub(crate) fn new(node: NodeHandle, reporting: NodeReporting) -> OwnNode {
        let untaint = if reporting.pending_taint.is_some() { Untaint::NotYet } else { Untaint::Done };
        OwnNode { node, reporting, published: None, untaint }
    }

    /// When a failed taint removal is to be tried again.
    pub(crate) fn untaint_due(&self) -> Option<Instant> {
        match self.untaint {
            Untaint::Due { at, .. } => Some(at),
            _ => None,
        }
    }

    pub(crate) async fn publish(&mut self, outcome: &Outcome) {
        let mut annotations: BTreeMap<&'static str, Option<String>> = BTreeMap::new();
        match outcome {
            Outcome::Applied { files_digest, fingerprint, complete, .. } => {
                let targets: Vec<&str> = self.reporting.targets.iter().map(|t| t.name()).collect();
                annotations.insert(FILES_DIGEST, Some(files_digest.clone()));
                annotations.insert(TARGETS, Some(targets.join(",")));
                annotations.insert(INPUT, Some("valid".into()));
                // null removes it: files not fully in place are not "current" with any policy.
                annotations.insert(FINGERPRINT, fingerprint.clone().filter(|_| *complete));
                if *complete && matches!(self.untaint, Untaint::NotYet) {
                    self.untaint = Untaint::Due { at: Instant::now(), backoff: UNTAINT_BACKOFF };
                }
            }
            Outcome::Refused { .. } => {
                annotations.insert(INPUT, Some("refused".into()));
            }
        }
        if self.published.as_ref() != Some(&annotations) {
            match self.node.annotate(&annotations).await {
                Ok(()) => self.published = Some(annotations),
                Err(e) => tracing::warn!(node = %self.node.name, "cannot annotate the node: {e}"),
            }
        }
        if matches!(self.untaint, Untaint::Due { at, .. } if at <= Instant::now()) {
            self.untaint().await;
        }
    }

    /// Removes the pending taint; on failure, schedules the next try with a growing backoff.
    pub(crate) async fn untaint(&mut self) {
        let (Some(key), Untaint::Due { backoff, .. }) = (&self.reporting.pending_taint, &self.untaint) else {
            return;
        };
        let backoff = *backoff;
        match self.node.remove_taint(key).await {
            Ok(found) => {
                if found == Untainted::Removed {
                    tracing::info!(node = %self.node.name, taint = %key, "registry files in place: removed the taint");
                }
                self.untaint = Untaint::Done;
            }
            Err(e) => {
                tracing::warn!(node = %self.node.name, taint = %key, "cannot remove the taint (retrying in {backoff:?}): {e}");
                self.untaint =
                    Untaint::Due { at: Instant::now() + backoff, backoff: (backoff * 2).min(UNTAINT_BACKOFF_MAX) };
            }
        }
    }
}
