//! The cluster source: kube-rs watchers (with backoff) feeding reflector caches for every kind
//! mirrorconf reads. Any event sends one trigger; the agent renders the caches' whole current state.
//!
//! ConfigMaps are watched for the whole `openshift-config` namespace, so when `Image/cluster` renames
//! its `additionalTrustedCA` the new ConfigMap is already cached and followed at once.

use super::node::{NodeHandle, NodeReporting, OwnNode};
use crate::agent::{metrics::Metrics, probes::EndpointChange, Outcome};
use crate::error::Error;
use crate::model::{
    pull_secret, ConfigMap, Image, ImageContentSourcePolicy, ImageDigestMirrorSet, ImageTagMirrorSet, Inputs, Secret,
};
use crate::policy::cas;
use crate::tasks::Tasks;
use crate::text::truncate_at_char;
use futures::StreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::mpsc;

/// An Event's note is at most 1 KiB; longer notes are cut at a character boundary.
const MAX_NOTE_BYTES: usize = 1000;

/// A client from the in-cluster config or KUBECONFIG; failing is not the input's fault (exit 1).
pub async fn client() -> Result<Client, Error> {
    Client::try_default().await.map_err(|e| Error::Runtime(format!("cannot reach the Kubernetes API: {e}")))
}

#[derive(Clone)]
pub struct Cluster {
    client: Client,
    digest_sets: Store<ImageDigestMirrorSet>,
    tag_sets: Store<ImageTagMirrorSet>,
    content_source_policies: Store<ImageContentSourcePolicy>,
    images: Store<Image>,
    config_maps: Store<ConfigMap>,
    registry_certificates: Store<ConfigMap>,
    secrets: Option<Store<Secret>>,
    node_name: Option<String>,
}

/// What every watcher needs: where its task is supervised, whom to tell of a change, what to count.
#[derive(Clone)]
pub struct Watching {
    pub tasks: Tasks,
    pub triggers: mpsc::Sender<()>,
    pub metrics: Arc<Metrics>,
}

pub(crate) fn spawn_reflector<K>(api: Api<K>, config: watcher::Config, watching: &Watching) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let (triggers, metrics) = (watching.triggers.clone(), Arc::clone(&watching.metrics));
    let name = format!("watch {}", K::kind(&K::DynamicType::default()));
    watching.tasks.spawn(&name, async move {
        let mut stream = std::pin::pin!(stream);
        let mut lists = 0u64;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => {
                    lists += 1;
                    if lists > 1 {
                        metrics.watch_restarts.inc();
                        tracing::info!(kind = %K::kind(&K::DynamicType::default()), "relisting");
                    }
                }
                Ok(watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    let _ = triggers.try_send(());
                }
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&K::DynamicType::default()), "watch error (retrying with backoff): {e}")
                }
            }
        }
    });
    reader
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

impl Cluster {
    /// Connects with the in-cluster config or KUBECONFIG and starts every watcher. `pull_secret`:
    /// also watch the cluster pull secret (the hosts.toml targets turn it into headers).
    pub async fn start(watching: &Watching, pull_secret: bool) -> Result<Cluster, Error> {
        let client = client().await?;
        Ok(Self::with_client(client, watching, pull_secret))
    }

    pub fn with_client(client: Client, watching: &Watching, pull_secret: bool) -> Cluster {
        // The API server validated these objects against its own schema, which a newer OpenShift
        // may extend: unlike files, they are read leniently (docs/design.md, "Validation").
        tracing::debug!("objects from the API server are read leniently: fields mirrorconf does not know are ignored");
        let cfg = watcher::Config::default;
        let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
        let w = watching;
        Cluster {
            digest_sets: spawn_reflector(Api::all(client.clone()), cfg(), w),
            tag_sets: spawn_reflector(Api::all(client.clone()), cfg(), w),
            content_source_policies: spawn_reflector(Api::all(client.clone()), cfg(), w),
            images: spawn_reflector(Api::all(client.clone()), by_name("cluster"), w),
            config_maps: spawn_reflector(Api::namespaced(client.clone(), cas::CA_NAMESPACE), cfg(), w),
            registry_certificates: spawn_reflector(
                Api::namespaced(client.clone(), cas::MERGED_NAMESPACE),
                by_name(cas::MERGED_NAME),
                w,
            ),
            secrets: pull_secret.then(|| {
                spawn_reflector(Api::namespaced(client.clone(), pull_secret::NAMESPACE), by_name(pull_secret::NAME), w)
            }),
            node_name: std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()),
            client,
        }
    }

    /// Waits until every watcher has listed once.
    pub async fn wait_until_synced(&self) {
        let _ = self.digest_sets.wait_until_ready().await;
        let _ = self.tag_sets.wait_until_ready().await;
        let _ = self.content_source_policies.wait_until_ready().await;
        let _ = self.images.wait_until_ready().await;
        let _ = self.config_maps.wait_until_ready().await;
        let _ = self.registry_certificates.wait_until_ready().await;
        if let Some(s) = &self.secrets {
            let _ = s.wait_until_ready().await;
        }
    }

    /// The caches' current state, as the renderers take it.
    pub fn snapshot(&self) -> Inputs {
        let mut config_maps = cloned(&self.config_maps);
        config_maps.extend(cloned(&self.registry_certificates));
        Inputs {
            digest_sets: cloned(&self.digest_sets),
            tag_sets: cloned(&self.tag_sets),
            content_source_policies: cloned(&self.content_source_policies),
            image: cloned(&self.images).into_iter().find(|i| i.name_any() == "cluster"),
            config_maps,
            secrets: self.secrets.as_ref().map(cloned).unwrap_or_default(),
            // Objects from the API server have no file to point at: messages name the object.
            origins: Default::default(),
        }
    }

    fn object_reference(&self, object: &str) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
        let (kind, name) = object.split_once('/')?;
        let find = |store_names: Vec<(String, k8s_openapi::api::core::v1::ObjectReference)>| {
            store_names.into_iter().find(|(n, _)| n == name).map(|(_, r)| r)
        };
        fn refs<K>(s: &Store<K>) -> Vec<(String, k8s_openapi::api::core::v1::ObjectReference)>
        where
            K: Resource<DynamicType = ()> + Clone + 'static,
        {
            s.state().iter().map(|o| (o.name_any(), o.object_ref(&()))).collect()
        }
        match kind {
            "ImageDigestMirrorSet" => find(refs(&self.digest_sets)),
            "ImageTagMirrorSet" => find(refs(&self.tag_sets)),
            "ImageContentSourcePolicy" => find(refs(&self.content_source_policies)),
            "Image" => find(refs(&self.images)),
            "ConfigMap" => find(refs(&self.config_maps)).or_else(|| find(refs(&self.registry_certificates))),
            _ => None,
        }
    }

    /// Turns render outcomes into what an admin sees in the cluster: a Warning Event on each object
    /// whose input was refused, and, with `node`, this node's annotations and pending taint.
    pub async fn report_outcomes(self, mut outcomes: mpsc::UnboundedReceiver<Outcome>, node: Option<NodeReporting>) {
        let reporter = Reporter { controller: "mirrorconf".into(), instance: self.node_name.clone() };
        let recorder = Recorder::new(self.client.clone(), reporter);
        let mut own = match (node, &self.node_name) {
            (Some(reporting), Some(name)) => Some(OwnNode::new(NodeHandle::new(self.client.clone(), name), reporting)),
            _ => None,
        };
        loop {
            let untaint_retry = crate::tasks::sleep_until_some(own.as_ref().and_then(OwnNode::untaint_due));
            tokio::select! {
                outcome = outcomes.recv() => {
                    let Some(outcome) = outcome else { break };
                    if let Some(own) = &mut own {
                        own.publish(&outcome).await;
                    }
                    if let Outcome::Refused { errors, objects } = outcome {
                        self.publish_refusals(&recorder, &errors, objects).await;
                    }
                }
                _ = untaint_retry => {
                    if let Some(own) = &mut own {
                        own.untaint().await;
                    }
                }
            }
        }
    }

    async fn publish_refusals(&self, recorder: &Recorder, errors: &[String], objects: Vec<String>) {
        for object in objects {
            let Some(reference) = self.object_reference(&object) else { continue };
            let prefix = format!("{object}: ");
            let mut note: String = errors
                .iter()
                .filter(|e| e.starts_with(&prefix))
                .map(|e| e.trim_start_matches(&prefix))
                .collect::<Vec<_>>()
                .join("; ");
            truncate_at_char(&mut note, MAX_NOTE_BYTES);
            let event = Event {
                type_: EventType::Warning,
                reason: "InvalidMirrorPolicy".into(),
                note: Some(note),
                action: "Render".into(),
                secondary: None,
            };
            if let Err(e) = super::bounded(recorder.publish(&event, &reference)).await {
                tracing::warn!(%object, "cannot publish an Event: {e}");
            }
        }
    }

    /// `run --probe-interval`: an Event on this node (`NODE_NAME`) for every endpoint that turns
    /// unusable (Warning) or recovers (Normal). The note is the probe's sentence, which never holds
    /// credentials. Runs until `shutdown` (or the probes end).
    pub async fn report_endpoint_changes(
        self,
        mut changes: mpsc::UnboundedReceiver<EndpointChange>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let reporter = Reporter { controller: "mirrorconf".into(), instance: self.node_name.clone() };
        let recorder = Recorder::new(self.client.clone(), reporter);
        let node = self.node_name.as_ref().map(|name| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.clone()),
            ..Default::default()
        });
        if node.is_none() {
            tracing::warn!("NODE_NAME is not set: endpoint changes are logged, not sent as Events");
        }
        loop {
            let change = tokio::select! {
                _ = &mut shutdown => return,
                c = changes.recv() => match c { Some(c) => c, None => return },
            };
            let Some(reference) = &node else { continue };
            let mut note = change.message;
            truncate_at_char(&mut note, MAX_NOTE_BYTES);
            let (type_, reason) = if change.up {
                (EventType::Normal, "MirrorEndpointRecovered")
            } else {
                (EventType::Warning, "MirrorEndpointUnusable")
            };
            let event =
                Event { type_, reason: reason.into(), note: Some(note), action: "Probe".into(), secondary: None };
            if let Err(e) = super::bounded(recorder.publish(&event, reference)).await {
                tracing::warn!(endpoint = %change.endpoint, "cannot publish an Event: {e}");
            }
        }
    }
}
