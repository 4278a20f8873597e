//! How fast a change reaches the whole fleet (issue: the fleet view), on the release binary: N
//! agents (`mirrorconf run --kube`, each its own root and Node) against the in-test API server;
//! an IDMS change is applied and timed until every node's registries.conf holds it, and until
//! `mirrorconf status --wait`, started at the change, returns. Also what it costs the API server.
//!
//! cargo bench --bench fleet            (MIRRORCONF_FLEET_NODES=50, MIRRORCONF_FLEET_CHANGES=20)

#[allow(dead_code)] // the bench drives only part of the test API server
#[path = "../tests/common/apiserver.rs"]
mod apiserver;

use apiserver::FakeApi;
use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn idms(mirror: &str) -> serde_json::Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "release"},
           "spec": {"imageDigestMirrors": [{"source": "quay.io/release", "mirrors": [mirror]}]}})
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(v: &[Duration], p: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    v[(v.len() * p).div_ceil(100).max(1) - 1].as_secs_f64() * 1000.0
}

fn main() {
    let nodes = env_or("MIRRORCONF_FLEET_NODES", 50);
    let changes = env_or("MIRRORCONF_FLEET_CHANGES", 20);
    let api = FakeApi::start();
    api.apply(idms("m0.corp/release"));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let mut agents: Vec<Child> = Vec::new();
    let mut confs: Vec<PathBuf> = Vec::new();
    let started = Instant::now();
    for i in 0..nodes {
        let name = format!("node-{i}");
        api.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}));
        let root = dir.path().join(&name);
        confs.push(root.join("etc/containers/registries.conf"));
        agents.push(
            Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
                .args(["run", "--kube", "--pending-taint", "", "--root"])
                .arg(&root)
                .env("KUBECONFIG", &kubeconfig)
                .env("NODE_NAME", &name)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let all_hold = |needle: &str| confs.iter().all(|c| fs::read_to_string(c).is_ok_and(|t| t.contains(needle)));
    while !all_hold("m0.corp/release") {
        assert!(started.elapsed() < Duration::from_secs(120), "the fleet did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("{nodes} agents spawned, started and current in {:.1} s", started.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(2)); // let the start-up annotations settle

    let (mut to_last, mut status_after_last) = (Vec::new(), Vec::new());
    let (requests_before, patches_before) = (api.requests(), api.node_patches().len());
    for k in 1..=changes {
        let needle = format!("m{k}.corp/release");
        let t0 = Instant::now();
        api.apply(idms(&needle));
        let mut status = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(["status", "--kube", "--wait", "--timeout", "60s"])
            .env("KUBECONFIG", &kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pending: Vec<usize> = (0..nodes).collect();
        while !pending.is_empty() {
            pending.retain(|&i| !fs::read_to_string(&confs[i]).is_ok_and(|t| t.contains(&needle)));
            assert!(t0.elapsed() < Duration::from_secs(60), "change {k}: {} nodes never got it", pending.len());
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        let last = t0.elapsed();
        let exit = status.wait().unwrap();
        assert!(exit.success(), "status --wait failed on change {k}");
        to_last.push(last);
        status_after_last.push(t0.elapsed().saturating_sub(last));
        std::thread::sleep(Duration::from_millis(500)); // quiet between changes
    }
    let requests = api.requests() - requests_before;
    let patches = api.node_patches().len() - patches_before;
    println!(
        "change to every node's registries.conf, {nodes} nodes, {changes} changes: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&to_last, 50),
        percentile(&to_last, 99)
    );
    println!(
        "status --wait returned after the last node: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&status_after_last, 50),
        percentile(&status_after_last, 99)
    );
    println!("load average at the end: {}", fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!(
        "API server per change: {:.1} requests ({:.2} per node, status's own included), {:.2} Node patches per node; {} watches held by the agents",
        requests as f64 / changes as f64,
        requests as f64 / (changes * nodes) as f64,
        patches as f64 / (changes * nodes) as f64,
        api.watches_opened()
    );
    for mut a in agents {
        let _ = a.kill();
        let _ = a.wait();
    }
}
