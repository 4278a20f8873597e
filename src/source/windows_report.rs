//! What the Windows pusher tells the cluster after each round (docs/design.md, "The fleet view"):
//! - on each Windows Node it pushes to, the annotations a node agent writes on its own Node, so
//!   `mirrorconf status` sees Linux and Windows nodes alike; and, once the host holds its files,
//!   the removal of the registries-pending taint (conflict-safe, see [`super::node`]);
//! - per shard held, a ConfigMap `<lease>-hosts-<shard>` with every host's state
//!   ([`ShardReport`]): the only place a BYOH host that is no Node yet can be seen.
//!
//! Each write happens only when what it says changed. A failed write is tried again a few seconds
//! later with the newest round's report.

use super::node::{NodeHandle, Untainted};
use super::windows_hosts::WindowsHosts;
use super::{bounded, CallError};
use crate::inspect::fleet::annotations::{FILES_DIGEST, FINGERPRINT, INPUT, TARGETS};
use crate::push::report::{report_name, HostReport, HostState, RoundReport, DATA_KEY, LABEL};
use crate::render::Target;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A failed publication is tried again this much later.
const RETRY: Duration = Duration::from_secs(5);

pub struct WindowsReporter {
    pub client: Client,
    pub hosts: WindowsHosts,
    /// Where the host reports go (the pusher's Lease namespace).
    pub namespace: String,
    pub lease_name: String,
    /// The taint removed from a Windows Node once its host holds the files; `None`: taints untouched.
    pub pending_taint: Option<String>,
}

impl WindowsReporter {
    /// Publishes every report the pusher sends, until the pusher is gone.
    pub async fn run(self, mut rounds: watch::Receiver<Option<RoundReport>>) {
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        let mut retry: Option<Instant> = None;
        loop {
            tokio::select! {
                changed = rounds.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = crate::tasks::sleep_until_some(retry) => {}
            }
            let Some(report) = rounds.borrow_and_update().clone() else { continue };
            let complete = self.publish(&report, &mut written).await;
            retry = (!complete).then(|| Instant::now() + RETRY);
        }
    }

    /// Returns whether everything was published.
    async fn publish(&self, report: &RoundReport, written: &mut BTreeMap<String, String>) -> bool {
        let nodes = self.hosts.nodes_by_address();
        let mut complete = true;
        let mut hosts = report.hosts.clone();
        for host in &mut hosts {
            let Some(node) = nodes.get(&host.address) else { continue };
            host.node = Some(node.name_any());
            complete &= self.node(node, host, report).await;
        }
        let report = RoundReport { hosts, ..report.clone() };
        for mut shard in report.shard_reports() {
            let name = report_name(&self.lease_name, shard.shard);
            // The round's time alone is no reason to write.
            shard.updated = 0;
            let unchanged = shard.to_json();
            if written.get(&name) == Some(&unchanged) {
                continue;
            }
            shard.updated = report.at;
            match self.write_report(&name, shard.to_json()).await {
                Ok(()) => {
                    written.insert(name, unchanged);
                }
                Err(e) => {
                    tracing::warn!(config_map = %name, "cannot write the Windows host report: {e}");
                    complete = false;
                }
            }
        }
        complete
    }

    /// Brings one Windows Node's annotations (and taint) in line with its host's report.
    async fn node(&self, node: &Node, host: &HostReport, report: &RoundReport) -> bool {
        let current = host.state == HostState::Current;
        let mut wanted: BTreeMap<&str, Option<String>> = BTreeMap::new();
        wanted.insert(TARGETS, Some(Target::Windows.name().to_string()));
        wanted.insert(INPUT, Some(if report.input_valid { "valid" } else { "refused" }.to_string()));
        // A failing host still holds the files it was last confirmed with; one holding someone
        // else's files at our paths holds no policy of ours completely.
        wanted.insert(FINGERPRINT, host.fingerprint.clone().filter(|_| host.state != HostState::Kept));
        if current {
            wanted.insert(FILES_DIGEST, report.files_digest.clone());
        }
        let annotations = node.annotations();
        wanted.retain(|k, v| annotations.get(*k) != v.as_ref());
        let handle = NodeHandle::new(self.client.clone(), &node.name_any());
        let mut complete = true;
        if !wanted.is_empty() {
            if let Err(e) = handle.annotate(&wanted).await {
                tracing::warn!(node = %handle.name, "cannot annotate the Windows node: {e}");
                complete = false;
            }
        }
        let Some(key) = self.pending_taint.as_deref().filter(|_| current) else { return complete };
        let tainted =
            node.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|t| t.iter().any(|t| t.key == key));
        if tainted {
            match handle.remove_taint(key).await {
                Ok(Untainted::Removed) => {
                    tracing::info!(node = %handle.name, taint = %key, "registry files in place on the Windows host: removed the taint")
                }
                Ok(Untainted::Absent) => {}
                Err(e) => {
                    tracing::warn!(node = %handle.name, taint = %key, "cannot remove the taint: {e}");
                    complete = false;
                }
            }
        }
        complete
    }

    /// Creates or replaces the report ConfigMap (a replace carries the resourceVersion read, so a
    /// concurrent writer makes it fail rather than be overwritten).
    async fn write_report(&self, name: &str, json: String) -> Result<(), CallError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let existing = bounded(api.get_opt(name)).await?;
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (LABEL.to_string(), "true".to_string()),
                    ("app.kubernetes.io/managed-by".to_string(), "mirrorconf".to_string()),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_string(), json)])),
            ..Default::default()
        };
        let pp = PostParams::default();
        match existing {
            None => bounded(api.create(&pp, &cm)).await?,
            Some(existing) => {
                cm.metadata.resource_version = existing.metadata.resource_version;
                bounded(api.replace(name, &pp, &cm)).await?
            }
        };
        Ok(())
    }
}
