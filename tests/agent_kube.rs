//! `mirrorconf run --kube` driven through the in-test API server (tests/common/apiserver.rs) over a
//! real socket: initial list, updates, deletes, a watch dropped with 410 Gone and relisted, bookmarks,
//! the CA ConfigMap renamed in Image/cluster, Events on a refused object, and the node annotation.

#[allow(dead_code)] // this test drives only part of the test API server
#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use apiserver::FakeApi;
use common::kube_agent::KubeAgent;
use common::{free_port, http_get, metric, wait_until};
use serde_json::{json, Value};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;

fn idms(name: &str, source: &str, mirror: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": name},
           "spec": {"imageDigestMirrors": [{"source": source, "mirrors": [mirror]}]}})
}

fn image(ca: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
           "spec": {"additionalTrustedCA": {"name": ca}}})
}

fn ca_config_map(name: &str, key: &str) -> Value {
    let cert =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/certs/test-ca.crt")).unwrap();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "openshift-config"},
           "data": {key: cert}})
}

/// The agent of node-1, serving /metrics on a port of its own.
struct Agent {
    agent: KubeAgent,
    addr: SocketAddr,
}

impl std::ops::Deref for Agent {
    type Target = KubeAgent;
    fn deref(&self) -> &KubeAgent {
        &self.agent
    }
}

impl Agent {
    fn start(api: &FakeApi) -> Agent {
        Self::start_with(api, &[])
    }

    fn start_with(api: &FakeApi, extra: &[&str]) -> Agent {
        // The agent annotates its own Node, which must exist (a PATCH of a missing one is a 404).
        if api.get("v1", "Node", "", "node-1").is_none() {
            api.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}));
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        let listen = ["--listen".to_string(), addr.to_string()];
        let args: Vec<&str> = listen.iter().map(String::as_str).chain(extra.iter().copied()).collect();
        let a = Agent { agent: KubeAgent::start(|path| api.write_kubeconfig(path), "node-1", &args), addr };
        wait_until(30, "readyz", || http_get(a.addr, "/readyz").is_some_and(|(s, _)| s == 200));
        a
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, body) = http_get(self.addr, "/metrics").expect("metrics");
        metric(&body, name).unwrap_or_else(|| panic!("no {name} in\n{body}"))
    }
}

#[test]
fn the_cluster_source_follows_the_api() {
    let api = FakeApi::start();
    api.apply(idms("release", "quay.io/release", "m1.corp/release"));
    api.apply(image("cas-a"));
    api.apply(ca_config_map("cas-a", "reg-a.corp"));
    let a = Agent::start(&api);

    // Initial list.
    let certs = a.root.path().join("etc/docker/certs.d");
    // One render writes both, registries.conf first.
    wait_until(10, "initial render", || {
        a.conf().contains("m1.corp/release") && certs.join("reg-a.corp/ca.crt").is_file()
    });
    wait_until(10, "node annotation", || !api.node_patches().is_empty());
    let (node, patch) = api.node_patches().remove(0);
    assert_eq!(node, "node-1");
    assert_eq!(patch["metadata"]["annotations"]["mirrorconf.io/applied-policy-hash"].as_str().map(str::len), Some(64));

    // Update, add, delete.
    api.apply(idms("release", "quay.io/release", "m2.corp/release"));
    wait_until(10, "MODIFIED", || a.conf().contains("m2.corp/release") && !a.conf().contains("m1.corp/release"));
    api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet", "metadata": {"name": "tags"},
                     "spec": {"imageTagMirrors": [{"source": "docker.io/library", "mirrors": ["cache.corp/library"]}]}}));
    wait_until(10, "ADDED", || a.conf().contains("cache.corp/library"));
    api.delete("config.openshift.io/v1", "ImageDigestMirrorSet", "", "release");
    wait_until(10, "DELETED", || !a.conf().contains("m2.corp/release"));

    // Bookmarks keep the watch going.
    api.bookmark();
    api.apply(idms("after-bookmark", "quay.io/bm", "bm.corp/bm"));
    wait_until(10, "an update after a bookmark", || a.conf().contains("bm.corp/bm"));

    // The watch is dropped with 410 Gone: the agent relists and catches what changed meanwhile.
    let restarts = a.metric("mirrorconf_watch_restarts_total");
    let watches = api.watches_opened();
    api.expire_watches();
    api.apply(idms("during-relist", "quay.io/relist", "relist.corp/relist"));
    wait_until(20, "relist", || a.metric("mirrorconf_watch_restarts_total") > restarts);
    wait_until(10, "the change made while relisting", || a.conf().contains("relist.corp/relist"));
    assert!(api.watches_opened() > watches);

    // Image/cluster names another CA ConfigMap: the new one is followed, the old CA folder goes.
    api.apply(ca_config_map("cas-b", "reg-b.corp..5000"));
    api.apply(image("cas-b"));
    wait_until(10, "CA rename", || {
        certs.join("reg-b.corp:5000/ca.crt").is_file() && !certs.join("reg-a.corp").exists()
    });

    // A refused object: the files stay, an Event points at it, fixing it recovers.
    let good = a.conf();
    api.apply(idms("broken", "quay.io/broken", "Bad.corp/NOT-lowercase"));
    wait_until(10, "Event", || {
        api.events().iter().any(|e| e["reason"] == "InvalidMirrorPolicy" && e["regarding"]["name"] == "broken")
    });
    let event = api.events().into_iter().find(|e| e["regarding"]["name"] == "broken").unwrap();
    assert_eq!(event["regarding"]["kind"], "ImageDigestMirrorSet");
    assert_eq!(event["type"], "Warning");
    assert!(event["note"].as_str().unwrap().contains("spec.imageDigestMirrors[0].mirrors[0]"), "{event}");
    assert_eq!(a.conf(), good);
    assert_eq!(a.metric("mirrorconf_input_valid"), 0.0);
    let rendered = |log: String| log.matches(": rendered").count();
    let renders_logged = rendered(a.log());
    api.apply(idms("broken", "quay.io/broken", "fixed.corp/broken"));
    // The recovery is logged too; that line comes after the files.
    wait_until(10, "recovery", || a.conf().contains("fixed.corp/broken") && rendered(a.log()) > renders_logged);
}

#[test]
fn containerd_nodes_get_the_pull_secret_and_a_multibyte_event_note_kills_nothing() {
    use base64::Engine;
    let api = FakeApi::start();
    api.apply(idms("team", "quay.io/team", "mirror.corp/team"));
    let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cret-token");
    let config = json!({"auths": {"mirror.corp": {"auth": auth}}}).to_string();
    api.apply(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                     "metadata": {"name": "pull-secret", "namespace": "openshift-config"},
                     "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}}));
    let a = Agent::start_with(&api, &["--target", "containerd"]);
    let hosts = a.root.path().join("etc/containerd/certs.d/quay.io/hosts.toml");
    wait_until(10, "the pull secret's header in hosts.toml", || {
        fs::read_to_string(&hosts).is_ok_and(|t| t.contains(&format!("authorization = \"Basic {auth}\"")))
    });

    // An Event note of two-byte characters, cut at 1000 bytes: byte 1000 falls inside one.
    api.apply(idms("wide", "quay.io/wide", &"é".repeat(600)));
    wait_until(10, "the Event for the wide note", || api.events().iter().any(|e| e["regarding"]["name"] == "wide"));
    let note = api.events().into_iter().find(|e| e["regarding"]["name"] == "wide").unwrap()["note"].clone();
    assert!(note.as_str().unwrap().len() <= 1000, "{note}");
    // A private key pasted as a registry CA: refused, and no byte of it in the Event or the log.
    let key_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4";
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{key_body}\n-----END PRIVATE KEY-----\n");
    api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
                     "spec": {"additionalTrustedCA": {"name": "leaky-cas"}}}));
    api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leaky-cas", "namespace": "openshift-config"},
                     "data": {"reg.corp": pem}}));
    wait_until(10, "the Event for the refused CA", || {
        api.events().iter().any(|e| e["regarding"]["name"] == "leaky-cas")
    });
    let events = serde_json::to_string(&api.events()).unwrap();
    assert!(!events.contains(&key_body[..8]), "an Event quoted the key: {events}");
    assert!(!a.log().contains(&key_body[..8]), "the log quoted the key");
    assert!(!events.contains(&auth) && !a.log().contains(&auth), "the pull secret leaked");
    // The reporter is still alive: the next refusal gets its Event too, and the agent is healthy.
    api.apply(idms("after", "quay.io/after", "Not A Mirror"));
    wait_until(10, "the next Event", || api.events().iter().any(|e| e["regarding"]["name"] == "after"));
    assert_eq!(http_get(a.addr, "/healthz").map(|(s, _)| s), Some(200));
}
