//! The fleet view against the in-test API server (tests/common/apiserver.rs) over a real socket:
//! the agent removes the registries-pending taint from its own Node only after a complete apply,
//! with a conflict-safe write that keeps another writer's concurrent taint change, and publishes
//! the policy fingerprint `mirrorconf status` compares; `status --wait` returns when the last
//! node reports.

#[allow(dead_code)] // this test drives only part of the test API server
#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use apiserver::FakeApi;
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

fn node(name: &str, taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints}})
}

fn taint_keys(api: &FakeApi, name: &str) -> Vec<String> {
    let node = api.get("v1", "Node", "", name).expect("the node");
    node["spec"]["taints"].as_array().into_iter().flatten().map(|t| t["key"].as_str().unwrap().to_string()).collect()
}

fn annotation(api: &FakeApi, name: &str, key: &str) -> Option<String> {
    api.get("v1", "Node", "", name)?["metadata"]["annotations"][key].as_str().map(String::from)
}

/// A `mirrorconf run --kube` agent for `node`.
fn agent(api: &FakeApi, node: &str, extra: &[&str]) -> KubeAgent {
    KubeAgent::start(|path| api.write_kubeconfig(path), node, extra)
}

fn kubeconfig(api: &FakeApi) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path);
    (dir, path)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_taint_goes_after_the_first_apply_and_another_writers_change_survives() {
    let api = FakeApi::start();
    api.apply(idms("release", "quay.io/release", "m1.corp/release"));
    api.apply(node(
        "node-1",
        json!([{"key": PENDING, "effect": "NoSchedule"}, {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
    ));
    // Another controller adds a taint right after the agent has read the Node: the agent's write,
    // conditional on what it read, must fail and be made again from the new Node.
    api.after_next_get("nodes", "node-1", |node| {
        node["spec"]["taints"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "example.com/other-writer", "effect": "NoSchedule"}));
    });
    let a = agent(&api, "node-1", &[]);
    wait_until(20, "the taint removed", || !taint_keys(&api, "node-1").contains(&PENDING.to_string()));
    assert!(a.conf().contains("m1.corp/release"), "the files were in place before the taint went");
    assert_eq!(taint_keys(&api, "node-1"), ["node.kubernetes.io/not-ready", "example.com/other-writer"]);
    // What the server saw: a conditional write that lost the race, then one that won.
    let taint_writes: Vec<Value> =
        api.node_patches().into_iter().map(|(_, p)| p).filter(|p| p["spec"]["taints"].is_array()).collect();
    assert_eq!(taint_writes.len(), 2, "{taint_writes:#?}");
    assert!(taint_writes.iter().all(|p| p["metadata"]["resourceVersion"].is_string()), "{taint_writes:#?}");
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
    let api = FakeApi::start();
    api.apply(idms("bad", "Bad Source!", "m1.corp/release"));
    api.apply(node("node-1", json!([{"key": PENDING, "effect": "NoSchedule"}])));
    api.apply(node("node-2", json!([])));
    let a = agent(&api, "node-1", &[]);
    wait_until(20, "the refusal published", || {
        annotation(&api, "node-1", "mirrorconf.io/input").as_deref() == Some("refused")
    });
    assert_eq!(taint_keys(&api, "node-1"), [PENDING], "a refused input never removes the taint");

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
    assert!(String::from_utf8_lossy(&o.stderr).contains("Bad Source!"), "the objects' own errors are shown");

    // Fixed: the node catches up, the taint goes, and status agrees once node-2 is left out.
    api.apply(idms("bad", "quay.io/release", "m1.corp/release"));
    wait_until(20, "the taint removed", || taint_keys(&api, "node-1").is_empty());
    assert!(a.conf().contains("m1.corp/release"));
    api.apply(json!({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": "node-1", "labels": {"role": "worker"}, "annotations": api.get("v1", "Node", "", "node-1").unwrap()["metadata"]["annotations"]},
                     "spec": {"taints": []}}));
    let o = status(&kubeconfig, &["-l", "role=worker"]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn status_wait_returns_when_the_last_node_reports() {
    let api = FakeApi::start();
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
    let api = FakeApi::start();
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
    assert_eq!(taint_keys(&api, "node-1"), [PENDING], "files written but the runtime not told: still pending");
    assert_eq!(annotation(&api, "node-1", "mirrorconf.io/policy-fingerprint"), None);
    // The runtime comes up; the retried reload succeeds without any change to the objects.
    fs::write(&ok, "").unwrap();
    wait_until(30, "the taint removed after the retried reload", || taint_keys(&api, "node-1").is_empty());
    assert!(annotation(&api, "node-1", "mirrorconf.io/policy-fingerprint").is_some_and(|f| f.starts_with("sha256:")));
}

#[test]
fn an_event_the_api_server_never_answers_does_not_hold_up_the_node_report() {
    let api = FakeApi::start();
    api.apply(idms("bad", "Bad Source!", "m1.corp/release"));
    api.apply(node("node-1", json!([{"key": PENDING, "effect": "NoSchedule"}])));
    // Every Event the agent publishes hangs: the refusal's Warning waits on a silent server.
    api.hang("events");
    let a = agent(&api, "node-1", &[]);
    wait_until(20, "the refusal published", || {
        annotation(&api, "node-1", "mirrorconf.io/input").as_deref() == Some("refused")
    });
    // The fix comes while the Event is still unanswered: within the call bound (10 s), not kube's
    // minutes-long read timeout, the node is reported and untainted.
    api.apply(idms("bad", "quay.io/release", "m1.corp/release"));
    wait_until(30, "the taint removed", || taint_keys(&api, "node-1").is_empty());
    assert!(a.log().contains("cannot publish an Event: the API server did not answer within 10s"), "{}", a.log());
    api.answer("events");
}
