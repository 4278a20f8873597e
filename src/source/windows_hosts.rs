//! The Windows hosts the in-cluster pusher keeps current: the BYOH `windows-instances` ConfigMap
//! (as `push --inventory` reads it) plus every Node labelled `kubernetes.io/os=windows`, reached at
//! its InternalIP as a default user. A host listed in both is taken from the ConfigMap.

use crate::model::ConfigMap;
use crate::push::inventory::{self, EntryError, Host};
use crate::source::kube::{spawn_reflector, Watching};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the Windows Machine Config Operator keeps `windows-instances`.
pub const DEFAULT_NAMESPACE: &str = "openshift-windows-machine-config-operator";
pub const WINDOWS_NODE_SELECTOR: &str = "kubernetes.io/os=windows";

#[derive(Clone)]
pub struct WindowsHosts {
    inventory: Store<ConfigMap>,
    nodes: Store<Node>,
    default_user: String,
}

impl WindowsHosts {
    pub fn start(client: &Client, namespace: &str, default_user: &str, watching: &Watching) -> Self {
        let by_name = watcher::Config::default().fields(&format!("metadata.name={}", inventory::CONFIG_MAP_NAME));
        let windows = watcher::Config::default().labels(WINDOWS_NODE_SELECTOR);
        WindowsHosts {
            inventory: spawn_reflector(Api::namespaced(client.clone(), namespace), by_name, watching),
            nodes: spawn_reflector(Api::all(client.clone()), windows, watching),
            default_user: default_user.to_string(),
        }
    }

    pub async fn wait_until_synced(&self) {
        let _ = self.inventory.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
    }

    /// Every host, sorted by address, and the inventory entries that had to be skipped.
    pub fn hosts(&self) -> (Vec<Host>, Vec<EntryError>) {
        let mut hosts = Vec::new();
        let mut skipped = Vec::new();
        if let Some(cm) = self.inventory.state().first() {
            (hosts, skipped) = inventory::hosts(cm);
        }
        for node in self.nodes.state() {
            match internal_ip(&node) {
                Some(ip) if !hosts.iter().any(|h| h.address == ip) => {
                    hosts.push(Host { address: ip, user: self.default_user.clone() });
                }
                Some(_) => {}
                None => tracing::warn!(node = %node.name_any(), "Windows node has no InternalIP yet; skipped"),
            }
        }
        hosts.sort();
        (hosts, skipped)
    }
}

impl WindowsHosts {
    /// The Windows Nodes by every name a host can have in the list: InternalIP, Hostname address
    /// and the Node's own name (a BYOH entry may name the machine rather than its address).
    pub fn nodes_by_address(&self) -> BTreeMap<String, Arc<Node>> {
        let mut by = BTreeMap::new();
        for node in self.nodes.state() {
            let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
            for a in addresses.into_iter().flatten().filter(|a| a.type_ == "InternalIP" || a.type_ == "Hostname") {
                by.entry(a.address.clone()).or_insert_with(|| Arc::clone(&node));
            }
            by.entry(node.name_any()).or_insert_with(|| Arc::clone(&node));
        }
        by
    }
}

fn internal_ip(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    addresses.iter().find(|a| a.type_ == "InternalIP").map(|a| a.address.clone())
}
