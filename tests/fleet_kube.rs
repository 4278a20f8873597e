//! The fleet view against a real kube-apiserver (tests/common/cluster.rs), one per test (Nodes and
//! mirror sets are cluster-scoped): the agent removes the registries-pending taint from its own
//! Node only after a complete apply, with a write conditional on the Node it read, and publishes
//! the policy fingerprint `mirrorconf status` compares; `status --wait` returns when the last
//! node reports.
//!
//! Another writer changing the Node between the agent's read and its write is proven against the
//! real server with concurrent writers in tests/cluster_agent.rs (the same
//! `NodeHandle::remove_taint`). The real server's admission adds `node.kubernetes.io/not-ready`
//! to every Node it creates (no kubelet runs here to lift it); the taint lists below include it.
//! One test keeps the in-test fake server (tests/common/apiserver.rs): an API server that takes
//! an Event and never answers, which a real one cannot be made to do.

#[allow(dead_code)] // this test drives only part of the test API server
#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use apiserver::FakeApi;
use common::cluster::{ControlPlane, AGENT};
use common::kube_agent::KubeAgent;
use common::{status_kube as status, wait_until};
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::process::Output;

const PENDING: &str = "mirrorconf.io/registries-pending";

fn idms(name: &str, source: &str, mirror: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": name},
           "spec": {"imageDigestMirrors": [{"source": source, "mirrors": [mirror]}]}})
}

/// What the server's admission adds to a Node on create.
const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn node(name: &str, taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints}})
}

/// A control plane of the test's own, with the CRDs.
fn control_plane() -> ControlPlane {
    let api = ControlPlane::start();
    api.install_crds();
    api
}

fn taint_keys(api: &ControlPlane, name: &str) -> Vec<String> {
    let node = api.get("v1", "Node", "", name).expect("the node");
    node["spec"]["taints"].as_array().into_iter().flatten().map(|t| t["key"].as_str().unwrap().to_string()).collect()
}

fn annotation(api: &ControlPlane, name: &str, key: &str) -> Option<String> {
    api.get("v1", "Node", "", name)?["metadata"]["annotations"][key].as_str().map(String::from)
}

/// A `mirrorconf run --kube` agent for `node`.
fn agent(api: &ControlPlane, node: &str, extra: &[&str]) -> KubeAgent {
    KubeAgent::start(|path| api.write_agent_kubeconfig(path), node, extra)
}

/// The admin's kubeconfig, for `status`.
fn kubeconfig(api: &ControlPlane) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path);
    (dir, path)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_taint_goes_after_the_first_apply_and_only_that_taint() {
    let api = control_plane();
    api.apply(idms("release", "quay.io/release", "m1.corp/release"));
    api.apply(node(
        "node-1",
        json!([{"key": PENDING, "effect": "NoSchedule"}, {"key": "example.com/other", "effect": "NoExecute"}]),
    ));
    let a = agent(&api, "node-1", &[]);
    wait_until(20, "the taint removed", || !taint_keys(&api, "node-1").contains(&PENDING.to_string()));
    assert!(a.conf().contains("m1.corp/release"), "the files were in place before the taint went");
    assert_eq!(taint_keys(&api, "node-1"), ["example.com/other", NOT_READY]);
    // What the server saw: one write of the taints, conditional on the Node the agent read.
    let taint_writes: Vec<Value> = api
        .node_patches()
        .into_iter()
        .filter(|w| w.user == AGENT && w.node == "node-1" && w.body["spec"]["taints"].is_array())
        .map(|w| w.body)
        .collect();
    assert_eq!(taint_writes.len(), 1, "{taint_writes:#?}");
    assert!(taint_writes.iter().all(|p| p["metadata"]["resourceVersion"].is_string()), "{taint_writes:#?}");
    assert_eq!(api.failed_requests(AGENT), Vec::<String>::new());
    // The agent logs it once the API server has answered: a moment after the server has the write.
    wait_until(10, "the removal logged", || a.log().contains("removed the taint"));

    // The fingerprint the agent published is the one status computes from the objects.
    let (_k, kubeconfig) = kubeconfig(&api);
    let o = status(&kubeconfig, &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("nodes: 1 current, 0 pending, 0 refused, 0 not reporting"), "{}", stdout(&o));
    assert_eq!(annotation(&api, "node-1", "mirrorconf.io/targets").as_deref(), Some("linux"));
    assert_eq!(annotation(&api, "node-1", "mirrorconf.io/input").as_deref(), Some("valid"));
}

#[test]
fn a_refused_input_keeps_the_taint_and_status_names_the_node() {
    let api = control_plane();
    // The server refuses a malformed source itself (the CRD's pattern): the refusal here is one
    // only the agent makes, a source both contacted and never contacted.
    api.apply(idms("bad", "quay.io/release", "m1.corp/release"));
    api.apply(
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet", "metadata": {"name": "clash"},
                     "spec": {"imageTagMirrors": [{"source": "quay.io/release", "mirrors": ["t.corp/release"],
                                                   "mirrorSourcePolicy": "NeverContactSource"}]}}),
    );
    api.apply(node("node-1", json!([{"key": PENDING, "effect": "NoSchedule"}])));
    api.apply(node("node-2", json!([])));
    let a = agent(&api, "node-1", &[]);
    wait_until(20, "the refusal published", || {
        annotation(&api, "node-1", "mirrorconf.io/input").as_deref() == Some("refused")
    });
    assert_eq!(taint_keys(&api, "node-1"), [PENDING, NOT_READY], "a refused input never removes the taint");

    let (_k, kubeconfig) = kubeconfig(&api);
    let o = status(&kubeconfig, &["--output", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["all_current"], false);
    let states: Vec<(&str, &str)> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("node-1", "refused"), ("node-2", "not-reporting")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("conflicting mirrorSourcePolicy"), "the objects' own errors are shown: {err}");

    // Fixed: the node catches up, the taint goes, and status agrees once node-2 is left out.
    api.delete("config.openshift.io/v1", "ImageTagMirrorSet", "", "clash");
    wait_until(20, "the taint removed", || taint_keys(&api, "node-1") == [NOT_READY]);
    assert!(a.conf().contains("m1.corp/release"));
    api.merge_patch("v1", "Node", "", "node-1", json!({"metadata": {"labels": {"role": "worker"}}}));
    let o = status(&kubeconfig, &["-l", "role=worker"]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn status_wait_returns_when_the_last_node_reports() {
    let api = control_plane();
    api.apply(idms("release", "quay.io/release", "m1.corp/release"));
    let nodes = ["node-1", "node-2", "node-3"];
    for n in nodes {
        api.apply(node(n, json!([])));
    }
    let agents: Vec<KubeAgent> = nodes.iter().map(|n| agent(&api, n, &["--pending-taint", ""])).collect();
    let (_k, kubeconfig) = kubeconfig(&api);
    wait_until(20, "all current", || status(&kubeconfig, &[]).status.success());

    // A change: status --wait sees every node pending, then returns once all three hold it.
    api.apply(idms("release", "quay.io/release", "m2.corp/release"));
    let o = status(&kubeconfig, &["--wait", "--timeout", "30s"]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(agents.iter().all(|a| a.conf().contains("m2.corp/release")), "status said current before the files were");

    // A node whose agent is gone never becomes current: --wait gives up at its timeout.
    drop(agents);
    api.apply(idms("release", "quay.io/release", "m3.corp/release"));
    let o = status(&kubeconfig, &["--wait", "--timeout", "2s"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("timed out after 2s: 0 current, 3 pending"), "{err}");
}

#[test]
fn a_failed_reload_keeps_the_taint_until_it_succeeds() {
    let api = control_plane();
    api.apply(idms("release", "quay.io/release", "m1.corp/release"));
    api.apply(node("node-1", json!([{"key": PENDING, "effect": "NoSchedule"}])));
    let scripts = tempfile::tempdir().unwrap();
    let hook = scripts.path().join("reload.sh");
    let ok = scripts.path().join("runtime-up");
    fs::write(&hook, format!("#!/bin/sh\ntest -e {}\n", ok.display())).unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let a = agent(&api, "node-1", &["--on-change", hook.to_str().unwrap()]);
    wait_until(20, "a failed reload", || a.log().contains("reload failed"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        taint_keys(&api, "node-1"),
        [PENDING, NOT_READY],
        "files written but the runtime not told: still pending"
    );
    assert_eq!(annotation(&api, "node-1", "mirrorconf.io/policy-fingerprint"), None);
    // The runtime comes up; the retried reload succeeds without any change to the objects.
    fs::write(&ok, "").unwrap();
    wait_until(30, "the taint removed after the retried reload", || taint_keys(&api, "node-1") == [NOT_READY]);
    assert!(annotation(&api, "node-1", "mirrorconf.io/policy-fingerprint").is_some_and(|f| f.starts_with("sha256:")));
}

/// On the in-test fake: a real API server cannot be made to take an Event and never answer.
#[test]
fn an_event_the_api_server_never_answers_does_not_hold_up_the_node_report() {
    let api = FakeApi::start();
    let taint_keys = |name: &str| -> Vec<String> {
        let node = api.get("v1", "Node", "", name).expect("the node");
        node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["key"].as_str().unwrap().to_string())
            .collect()
    };
    let input =
        || api.get("v1", "Node", "", "node-1").unwrap()["metadata"]["annotations"]["mirrorconf.io/input"].clone();
    api.apply(idms("bad", "Bad Source!", "m1.corp/release"));
    api.apply(node("node-1", json!([{"key": PENDING, "effect": "NoSchedule"}])));
    // Every Event the agent publishes hangs: the refusal's Warning waits on a silent server.
    api.hang("events");
    let a = KubeAgent::start(|path| api.write_kubeconfig(path), "node-1", &[]);
    wait_until(20, "the refusal published", || input() == "refused");
    // The fix comes while the Event is still unanswered: within the call bound (10 s), not kube's
    // minutes-long read timeout, the node is reported and untainted.
    api.apply(idms("bad", "quay.io/release", "m1.corp/release"));
    wait_until(30, "the taint removed", || taint_keys("node-1").is_empty());
    assert!(a.log().contains("cannot publish an Event: the API server did not answer within 10s"), "{}", a.log());
    api.answer("events");
}
