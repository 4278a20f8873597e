//! The fleet view for Windows hosts: the in-cluster pusher (`run --kube --windows-push`) against
//! a real kube-apiserver (tests/common/cluster.rs) and real OpenSSH servers on 127.0.0.2-4. It
//! removes the pending taint from a Windows Node only once its host holds the files, with a write
//! conditional on the Node it read, annotates the Node as a node agent does, and writes per-host
//! outcomes `mirrorconf status` reads: a BYOH host that is no Node gets a row of its own, a
//! failing host shows why and since when.
//!
//! Another writer changing the Node between the pusher's read and its write is proven against the
//! real server with concurrent writers in tests/cluster_agent.rs: the pusher removes the taint
//! with the same `NodeHandle::remove_taint` (src/source/node.rs) as the node agent. The server's
//! admission adds `node.kubernetes.io/not-ready` to every Node it creates (no kubelet runs here).

mod common;

use common::cluster::{ControlPlane, AGENT};
use common::pusher::Pusher;
use common::sshd::{client_key, common_free_port, Sshd};
use common::{status_kube as status, wait_until};
use serde_json::{json, Value};
use std::fs;
use std::process::Output;

const PENDING: &str = "mirrorconf.io/registries-pending";
const FINGERPRINT: &str = "mirrorconf.io/policy-fingerprint";
const REPORT: (&str, &str) = ("mirrorconf", "mirrorconf-windows-push-hosts-0");

fn idms(mirror: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "app"},
           "spec": {"imageDigestMirrors": [{"source": "quay.io/team/app", "mirrors": [format!("{mirror}/team/app")]}]}})
}

/// What the server's admission adds to a Node on create.
const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// A Windows Node registered with the pending taint, its InternalIP `ip`.
fn windows_node(api: &ControlPlane, name: &str, ip: &str) {
    api.node_at(
        name,
        ip,
        json!({"metadata": {"labels": {"kubernetes.io/os": "windows"}},
               "spec": {"taints": [{"key": PENDING, "effect": "NoSchedule"}, {"key": "os", "value": "windows", "effect": "NoSchedule"}]}}),
    );
}

fn taint_keys(api: &ControlPlane, name: &str) -> Vec<String> {
    let node = api.get("v1", "Node", "", name).expect("the node");
    node["spec"]["taints"].as_array().into_iter().flatten().map(|t| t["key"].as_str().unwrap().to_string()).collect()
}

fn annotation(api: &ControlPlane, name: &str, key: &str) -> Option<String> {
    api.get("v1", "Node", "", name)?["metadata"]["annotations"][key].as_str().map(String::from)
}

/// The pusher's host report, by host.
fn report(api: &ControlPlane) -> Option<(Value, Vec<Value>)> {
    let cm = api.get("v1", "ConfigMap", REPORT.0, REPORT.1)?;
    let report: Value = serde_json::from_str(cm["data"]["hosts.json"].as_str()?).ok()?;
    let hosts = report["hosts"].as_array()?.clone();
    Some((report, hosts))
}

fn host_state(api: &ControlPlane, address: &str) -> Option<String> {
    let (_, hosts) = report(api)?;
    hosts.iter().find(|h| h["address"] == address).and_then(|h| h["state"].as_str().map(String::from))
}

fn rows(out: &Output) -> Vec<(String, String, String)> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("state"), s("detail"))
        })
        .collect()
}

#[test]
fn windows_nodes_lose_the_taint_once_their_host_holds_the_files_and_status_sees_every_host() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let port = common_free_port(&ips);
    let mut hosts: Vec<Sshd> = ips.iter().map(|ip| Sshd::start(ip, port, &dir.path().join(ip), &key)).collect();
    let known_hosts = |hosts: &[Sshd]| {
        fs::write(dir.path().join("known_hosts"), hosts.iter().map(Sshd::known_hosts_line).collect::<String>()).unwrap()
    };
    known_hosts(&hosts);
    // win-2's host is down from the start.
    drop(hosts.pop());

    let api = ControlPlane::start();
    api.install_crds();
    api.namespace("mirrorconf");
    api.namespace("openshift-windows-machine-config-operator");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_agent_kubeconfig(&kubeconfig);
    // status reads as the admin.
    let admin = api.kubeconfig();
    api.apply(idms("mirror-one.local"));
    // 127.0.0.2 is a BYOH host with no Node; win-1 and win-2 are Windows Nodes.
    api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "windows-instances", "namespace": "openshift-windows-machine-config-operator"},
                     "data": {"127.0.0.2": "username=root"}}));
    windows_node(&api, "win-1", "127.0.0.3");
    windows_node(&api, "win-2", "127.0.0.4");

    let pusher = Pusher::start(dir.path(), &kubeconfig, &key, port, "pusher-a", &["--resync-interval", "2"]);
    wait_until(30, "win-1's taint removed", || !taint_keys(&api, "win-1").contains(&PENDING.to_string()));
    let on = |h: &Sshd, needle: &str| {
        fs::read_to_string(h.folder.join("registries/quay.io/hosts.toml")).is_ok_and(|t| t.contains(needle))
    };
    assert!(on(&hosts[1], "mirror-one.local"), "the files were in place before the taint went");
    assert_eq!(taint_keys(&api, "win-1"), ["os", NOT_READY]);
    let taint_writes: Vec<Value> = api
        .node_patches()
        .into_iter()
        .filter(|w| w.user == AGENT && w.node == "win-1" && w.body["spec"]["taints"].is_array())
        .map(|w| w.body)
        .collect();
    assert_eq!(taint_writes.len(), 1, "one write of the taints: {taint_writes:#?}");
    assert!(
        taint_writes[0]["metadata"]["resourceVersion"].is_string(),
        "conditional on the Node read: {taint_writes:#?}"
    );
    let failed = api.failed_requests(AGENT);
    assert!(failed.iter().all(|f| common::pusher::finds_its_own_object_missing(f)), "{failed:#?}");
    // Logged once the API server has answered: a moment after the server has the write.
    wait_until(10, "the removal logged", || pusher.log_text().contains("removed the taint"));
    // win-2's host cannot be reached: its Node keeps the taint, and no fingerprint.
    wait_until(30, "the report naming the failing host", || host_state(&api, "127.0.0.4").as_deref() == Some("failed"));
    assert!(taint_keys(&api, "win-2").contains(&PENDING.to_string()));
    assert_eq!(annotation(&api, "win-2", FINGERPRINT), None);
    assert_eq!(annotation(&api, "win-1", "mirrorconf.io/targets").as_deref(), Some("windows"));
    assert_eq!(annotation(&api, "win-1", "mirrorconf.io/input").as_deref(), Some("valid"));
    let (r, listed) = report(&api).unwrap();
    assert_eq!(r["input"], "valid");
    let by = |ip: &str| listed.iter().find(|h| h["address"] == ip).unwrap().clone();
    assert_eq!(by("127.0.0.2")["state"], "current");
    assert!(by("127.0.0.2").get("node").is_none(), "the BYOH host is no Node");
    assert_eq!(by("127.0.0.3")["node"], "win-1");
    assert!(by("127.0.0.4")["reason"].as_str().unwrap().contains("127.0.0.4"), "{listed:#?}");

    // status: win-1 and the BYOH host current, win-2 pending with why and since when.
    let out = status(&admin, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows = rows(&out);
    let row = |name: &str| rows.iter().find(|r| r.0 == name).unwrap_or_else(|| panic!("{name} in {rows:?}")).clone();
    assert_eq!(row("win-1").1, "current");
    assert_eq!(row("host/root@127.0.0.2").1, "current");
    let win2 = row("win-2");
    assert_eq!(win2.1, "pending");
    assert!(win2.2.contains("push failing since 20") && win2.2.contains("127.0.0.4"), "{win2:?}");
    // A label selector selects Nodes: the BYOH host is not listed then.
    let out = status(&admin, &["--output", "json", "-l", "kubernetes.io/os=windows"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("host/root@127.0.0.2"), "{out:?}");

    // win-2's host comes up: the next retry pushes it, its taint goes, and status --wait returns.
    hosts.push(Sshd::start("127.0.0.4", port, &dir.path().join("127.0.0.4-again"), &key));
    known_hosts(&hosts);
    let out = status(&admin, &["--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", pusher.log_text());
    assert!(on(&hosts[2], "mirror-one.local"));
    wait_until(30, "win-2's taint removed", || !taint_keys(&api, "win-2").contains(&PENDING.to_string()));

    // A change reaches every host, and status --wait says so.
    let before = annotation(&api, "win-1", FINGERPRINT).unwrap();
    api.apply(idms("mirror-two.local"));
    let out = status(&admin, &["--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", pusher.log_text());
    assert!(hosts.iter().all(|h| on(h, "mirror-two.local")));
    assert_ne!(annotation(&api, "win-1", FINGERPRINT).unwrap(), before);

    // Refused input: every host keeps its files; status names the refusal for Nodes and BYOH hosts.
    // (One the server cannot refuse: a tag mirror set that never contacts the source the digest
    // mirror set lets be contacted; the CRDs refuse malformed mirrors themselves.)
    api.apply(
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet", "metadata": {"name": "clash"},
                     "spec": {"imageTagMirrors": [{"source": "quay.io/team/app", "mirrors": ["t.corp/team/app"],
                                                   "mirrorSourcePolicy": "NeverContactSource"}]}}),
    );
    wait_until(30, "the refusal reported", || report(&api).is_some_and(|(r, _)| r["input"] == "refused"));
    wait_until(30, "win-1 marked refused", || {
        annotation(&api, "win-1", "mirrorconf.io/input").as_deref() == Some("refused")
    });
    let out = status(&admin, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(hosts.iter().all(|h| on(h, "mirror-two.local")));
    // The report ConfigMap is untrusted: a broken entry is named and ignored, the rest still read.
    let cm = api.get("v1", "ConfigMap", REPORT.0, REPORT.1).unwrap();
    let mut r: Value = serde_json::from_str(cm["data"]["hosts.json"].as_str().unwrap()).unwrap();
    r["input"] = json!("valid");
    r["hosts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"host": "x@y", "address": "y", "state": "current", "since": 1, "fingerprint": "nope"}));
    api.merge_patch("v1", "ConfigMap", REPORT.0, REPORT.1, json!({"data": {"hosts.json": r.to_string()}}));
    let out = status(&admin, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: ConfigMap/mirrorconf-windows-push-hosts-0: data[\"hosts.json\"]: hosts[3].fingerprint: \"nope\""
        ),
        "{err}"
    );
}
