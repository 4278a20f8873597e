//! `mirrorconf status` reads what anyone with write access to a Node or a ConfigMap may have put
//! there, against the in-test API server (a test double for kube-apiserver, over a real socket):
//! a forged host report cannot hide the pusher's real one, and no control, bidi or zero-width
//! character from an annotation, a report or a deserializer's error reaches the terminal.

#[allow(dead_code)] // this test drives only part of the test API server
#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use apiserver::FakeApi;
use common::status_kube as status;
use serde_json::{json, Value};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

const LABEL: &str = "mirrorconf.io/windows-host-report";
/// What clears the screen, retitles the window, and overwrites the counts line with a forged one.
const CLEAR: &str = "\x1b[2J\x1b[H";
const TITLE: &str = "\x1b]0;pwned\x07";
const FORGED_COUNTS: &str = "\r\x1b[1A\x1b[2Knodes: 9 current, 0 pending, 0 refused, 0 not reporting";

fn idms() -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "app"},
           "spec": {"imageDigestMirrors": [{"source": "quay.io/team/app", "mirrors": ["mirror.local/team/app"]}]}})
}

fn node(name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "annotations": annotations}})
}

fn report_config_map(name: &str, report: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "mirrorconf", "labels": {LABEL: "true"}},
           "data": {"hosts.json": report.to_string()}})
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The pusher's real report: one BYOH host whose push is failing, so it is pending.
fn real_report() -> Value {
    report_config_map(
        "mirrorconf-windows-push-hosts-0",
        json!({"shard": 0, "shards": 1, "input": "valid", "updated": now() - 5,
               "hosts": [{"host": "Administrator@10.0.0.9", "address": "10.0.0.9", "state": "failed",
                          "reason": "after 3 attempt(s): connection refused", "since": now() - 60}]}),
    )
}

/// The issue's forgery: labelled like a report, from the end of time, with no hosts.
fn forged_report(name: &str) -> Value {
    report_config_map(name, json!({"shard": 0, "shards": 1, "input": "valid", "updated": u64::MAX, "hosts": []}))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Every character that could steer a terminal, other than the newlines between lines.
fn unsafe_chars(s: &str) -> Vec<char> {
    s.chars().filter(|&c| c != '\n' && mirrorconf::text::is_unsafe_for_terminal(c)).collect()
}

fn pending(out: &Output) -> usize {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    v["counts"]["pending"].as_u64().unwrap() as usize
}

#[test]
fn a_forged_host_report_hides_no_real_one_and_wait_does_not_end_in_success() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    api.apply(idms());
    api.apply(real_report());
    let out = status(&kubeconfig, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(pending(&out), 1, "{}", text(&out));

    api.apply(forged_report("innocent-looking"));
    // Under a name the pusher would use, too: the time gives it away.
    api.apply(forged_report("mirrorconf-windows-push-hosts-1"));
    let out = status(&kubeconfig, &["--output", "json"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert_eq!(pending(&out), 1, "the forged reports hid the real one: {t}");
    assert!(
        t.contains("warning: ConfigMap/innocent-looking: data[\"hosts.json\"]: not named mirrorconf-windows-push-hosts-<shard>"),
        "{t}"
    );
    assert!(t.contains("warning: ConfigMap/mirrorconf-windows-push-hosts-1: data[\"hosts.json\"]: "), "{t}");

    let out = status(&kubeconfig, &["--wait", "--timeout", "2s"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "--wait ended in success with a host pending: {t}");
    assert!(t.contains("nodes: 0 current, 1 pending, 0 refused, 0 not reporting"), "{t}");
    assert!(t.contains("host/Administrator@10.0.0.9  pending"), "{t}");

    // With the real report gone, the forged one from the future is still no report.
    api.apply(forged_report("mirrorconf-windows-push-hosts-0"));
    let out = status(&kubeconfig, &["--output", "json"]);
    let t = text(&out);
    assert!(t.contains("hosts-0: data[\"hosts.json\"]: updated = 18446744073709551615: more than 300 s ahead"), "{t}");
}

#[test]
fn nothing_from_the_cluster_steers_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    api.apply(idms());
    let fingerprint = format!("sha256:{CLEAR}{TITLE}");
    api.apply(node(
        "linux-1",
        json!({"mirrorconf.io/policy-fingerprint": fingerprint, "mirrorconf.io/targets": "linux",
               "mirrorconf.io/input": "valid"}),
    ));
    let bidi = "\u{202E}\u{2066}\u{200B}\u{FEFF}\u{9b}2J";
    api.apply(node(
        "linux-2",
        json!({"mirrorconf.io/policy-fingerprint": format!("{FORGED_COUNTS}{bidi}"),
               "mirrorconf.io/targets": "linux", "mirrorconf.io/input": "valid"}),
    ));
    api.apply(node(
        "linux-3",
        json!({"mirrorconf.io/targets": format!("{TITLE}{bidi}"), "mirrorconf.io/input": "valid"}),
    ));
    // A report whose unknown state reaches stderr through the deserializer's error text.
    let mut report = real_report();
    let mut hosts: Value = serde_json::from_str(report["data"]["hosts.json"].as_str().unwrap()).unwrap();
    hosts["hosts"].as_array_mut().unwrap().push(json!({"host": "a@b", "address": "b", "since": 1,
        "state": format!("{TITLE}{CLEAR}{FORGED_COUNTS}")}));
    hosts["hosts"].as_array_mut().unwrap().push(json!({"host": "a@c", "address": "c", "since": 1,
        "state": "failed", "reason": format!("gone\u{202E}{CLEAR}")}));
    report["data"]["hosts.json"] = json!(hosts.to_string());
    api.apply(report);

    let out = status(&kubeconfig, &["--all"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(unsafe_chars(&stdout), [] as [char; 0], "{stdout}");
    assert_eq!(unsafe_chars(&stderr), [] as [char; 0], "{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("nodes: ")).count(), 1, "{stdout}");
    assert!(stdout.contains("nodes: 0 current, 3 pending, 0 refused, 1 not reporting"), "{stdout}");
    // Shown escaped, so the admin sees what was there.
    assert!(stdout.contains(r"holds sha256:\u001b[2J\u001b[H"), "{stdout}");
    assert!(stdout.contains(r"holds \u000d\u001b[1A\u001b[2Knodes: 9 c"), "{stdout}");
    assert!(stderr.contains(r"unknown variant `\u001b]0;pwned\u0007\u001b[2J"), "{stderr}");
    assert!(stderr.contains("hosts[2].reason: "), "{stderr}");

    // JSON output is escaped the JSON way: it parses back to the very values the cluster holds.
    let out = status(&kubeconfig, &["--all", "--output", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(unsafe_chars(&stdout), [] as [char; 0], "{stdout}");
    assert!(stdout.contains(r"\u202e\u2066\u200b\ufeff\u009b2J"), "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let by_name = |name: &str| v["nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap().clone();
    assert_eq!(by_name("linux-1")["fingerprint"], fingerprint.as_str());
    assert_eq!(by_name("linux-2")["fingerprint"], format!("{FORGED_COUNTS}{bidi}"));
}
