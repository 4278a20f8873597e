//! How fast a change reaches the whole fleet (issue: the fleet view), on the release binary: N
//! agents (`mirrorconf run --kube`, each its own root and Node) against a real kube-apiserver and
//! etcd (tests/common/cluster.rs; `MIRRORCONF_FLEET_API=fake` for the in-test API server instead);
//! an IDMS change is applied and timed until every node's registries.conf holds it, and until
//! `mirrorconf status --wait`, started at the change, returns. Also what it costs the API server:
//! requests (from its audit log) and, for the real one, its CPU seconds.
//!
//! cargo bench --bench fleet            (MIRRORCONF_FLEET_NODES=50, MIRRORCONF_FLEET_CHANGES=20)
//! Needs the real parts on PATH: PATH=$(scripts/realparts.sh):$PATH cargo bench --bench fleet

#[allow(dead_code)] // the bench drives only part of the test API server
#[path = "../tests/common/apiserver.rs"]
mod apiserver;
#[path = "../tests/common/mod.rs"]
mod common;

use apiserver::FakeApi;
use common::cluster::ControlPlane;
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

/// The API server under the fleet: what the bench writes and what it asks of the server's side.
enum Api {
    Fake(FakeApi),
    Real(Box<ControlPlane>),
}

impl Api {
    fn apply(&self, o: serde_json::Value) {
        match self {
            Api::Fake(a) => drop(a.apply(o)),
            Api::Real(c) => drop(c.apply(o)),
        }
    }
    fn write_kubeconfig(&self, path: &std::path::Path) {
        match self {
            Api::Fake(a) => a.write_kubeconfig(path),
            Api::Real(c) => c.write_kubeconfig(path),
        }
    }
    /// Requests answered, Node writes, watches opened, all by everyone but the bench itself.
    fn counts(&self) -> (u64, u64, u64) {
        match self {
            Api::Fake(a) => (a.requests(), a.node_patches().len() as u64, a.watches_opened()),
            Api::Real(c) => {
                let seen: Vec<serde_json::Value> = c
                    .audit()
                    .into_iter()
                    .filter(|e| e["stage"] == "ResponseComplete" || e["verb"] == "watch")
                    .filter(|e| e["user"]["username"] == "fleet")
                    .collect();
                let node_writes = seen
                    .iter()
                    .filter(|e| {
                        e["objectRef"]["resource"] == "nodes"
                            && ["patch", "update"].contains(&e["verb"].as_str().unwrap_or(""))
                    })
                    .count();
                let watches = seen.iter().filter(|e| e["verb"] == "watch" && e["stage"] == "ResponseStarted").count();
                (seen.len() as u64, node_writes as u64, watches as u64)
            }
        }
    }
    /// The API server's CPU seconds so far (user + system), for the real one.
    fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Api::Fake(_) => None,
            Api::Real(c) => {
                let stat = fs::read_to_string(format!("/proc/{}/stat", c.apiserver_pid()?)).ok()?;
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks: f64 = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
                Some(ticks / 100.0)
            }
        }
    }
}

fn main() {
    let nodes = env_or("MIRRORCONF_FLEET_NODES", 50);
    let changes = env_or("MIRRORCONF_FLEET_CHANGES", 20);
    let real = std::env::var("MIRRORCONF_FLEET_API").map_or(true, |v| v != "fake");
    let api = if real {
        let cp = ControlPlane::start();
        cp.install_crds();
        // The agents and status as one identity, apart from the bench's own writes (the admin).
        cp.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "fleet-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "fleet", "apiGroup": "rbac.authorization.k8s.io"}]}));
        Api::Real(Box::new(cp))
    } else {
        Api::Fake(FakeApi::start())
    };
    println!("API server: {}", if real { "kube-apiserver + etcd (real)" } else { "in-test fake" });
    api.apply(idms("m0.corp/release"));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    match &api {
        Api::Real(cp) => cp.write_token_kubeconfig(&kubeconfig, "fleet-token"),
        Api::Fake(_) => api.write_kubeconfig(&kubeconfig),
    }
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
    let (requests_before, patches_before, _) = api.counts();
    let cpu_before = api.cpu_seconds();
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
    let (requests, patches, watches) = api.counts();
    let (requests, patches) = (requests - requests_before, patches - patches_before);
    if let (Some(before), Some(after)) = (cpu_before, api.cpu_seconds()) {
        println!("API server CPU per change: {:.3} s", (after - before) / changes as f64);
    }
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
        watches
    );
    for mut a in agents {
        let _ = a.kill();
        let _ = a.wait();
    }
}
