//! The agent's figures (issue: node agent), measured on the release binary:
//! change-to-file latency p50/p99 for the folder source and through the in-test API server, idle RSS
//! with 1,000 mirror entries, and CPU used while idle.
//!
//! cargo bench --bench agent

#[allow(dead_code)] // the bench drives only part of the test API server
#[path = "../tests/common/apiserver.rs"]
mod apiserver;

use serde_json::json;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 200;

fn idms_yaml(name: &str, n: usize, mirror: &str) -> String {
    let mut s = format!("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: {name}}}\nspec:\n  imageDigestMirrors:\n");
    for i in 0..n {
        s.push_str(&format!("  - source: quay.io/team-{i}/app\n    mirrors: [{mirror}/team-{i}/app]\n"));
    }
    s
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn wait_for(conf: &Path, needle: &str) -> Duration {
    let start = Instant::now();
    loop {
        if fs::read_to_string(conf).is_ok_and(|t| t.contains(needle)) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no {needle} after 10 s");
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 99).div_ceil(100) - 1]))
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_comm.split(' ').collect();
    // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the comm).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m");
    fs::create_dir(&manifests).unwrap();
    fs::write(manifests.join("big.yaml"), idms_yaml("big", 1000, "mirror.corp")).unwrap();
    let child =
        spawn(&["run", "--manifests", manifests.to_str().unwrap(), "--root", root.path().to_str().unwrap()], &[]);
    let conf = root.path().join("etc/containers/registries.conf");
    wait_for(&conf, "team-999");
    let mut lat = Vec::new();
    for i in 0..ROUNDS {
        let mirror = format!("round{i}.corp");
        let start = Instant::now();
        fs::write(manifests.join("change.yaml"), idms_yaml("change", 1, &mirror)).unwrap();
        wait_for(&conf, &format!("{mirror}/team-0/app"));
        lat.push(start.elapsed());
    }
    let (p50, p99) = percentiles(lat);
    println!("folder source, change-to-file latency over {ROUNDS} changes: p50 {p50:.1} ms, p99 {p99:.1} ms");

    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id();
    println!("idle RSS with 1,001 mirror entries: {:.1} MiB", rss_kib(pid) as f64 / 1024.0);
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    println!("CPU while idle for 10 s: {} clock ticks (1 tick = 10 ms)", cpu_ticks(pid) - before);
    stop(child);
}

fn cluster() {
    let api = apiserver::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let child = spawn(
        &["run", "--kube", "--root", root.path().to_str().unwrap()],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let conf = root.path().join("etc/containers/registries.conf");
    let mut lat = Vec::new();
    for i in 0..ROUNDS {
        let mirror = format!("round{i}.corp/x");
        let start = Instant::now();
        api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "change"},
                         "spec": {"imageDigestMirrors": [{"source": "quay.io/x", "mirrors": [mirror]}]}}));
        wait_for(&conf, &format!("\"{mirror}\""));
        // The first change also waits for the agent to start and list: leave it out.
        if i > 0 {
            lat.push(start.elapsed());
        }
    }
    let (p50, p99) = percentiles(lat);
    println!(
        "cluster source (in-test API server), change-to-file latency over {} changes: p50 {p50:.1} ms, p99 {p99:.1} ms",
        ROUNDS - 1
    );
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    println!("cluster source, CPU while idle for 10 s: {} clock ticks", cpu_ticks(pid) - before);
    stop(child);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and should stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    folder();
    cluster();
}
