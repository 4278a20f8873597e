//! Hosts per second for `mirrorconf push` to 20 real OpenSSH servers on 127.0.0.10-29 (one SSH
//! handshake per host is the floor), sequential and `--parallel 4`, for a changed and an unchanged
//! policy.
//!
//! cargo bench --bench push

#[path = "../tests/common/mod.rs"]
mod common;

use common::sshd::{client_key, common_free_port, Sshd};
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTS: usize = 20;
const ROUNDS: usize = 5;

fn policy(mirror: &str) -> String {
    let mut m = String::from("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: m}\nspec:\n  imageDigestMirrors:\n");
    for i in 0..10 {
        m.push_str(&format!("  - source: r{i}.example.com/team/app\n    mirrors: [{mirror}/r{i}/team/app]\n"));
    }
    m
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    let ips: Vec<String> = (10..10 + HOSTS).map(|i| format!("127.0.0.{i}")).collect();
    let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let port = common_free_port(&ip_refs);
    let servers: Vec<Sshd> = ips.iter().map(|ip| Sshd::start(ip, port, &dir.path().join(ip), &key)).collect();
    fs::write(dir.path().join("known_hosts"), servers.iter().map(Sshd::known_hosts_line).collect::<String>()).unwrap();
    let mut inv = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: windows-instances}\ndata:\n");
    for ip in &ips {
        inv.push_str(&format!("  {ip:?}: username=root\n"));
    }
    fs::write(dir.path().join("inventory.yaml"), inv).unwrap();
    let push = |mirror: &str, parallel: &str| -> Duration {
        let m = dir.path().join("policy.yaml");
        fs::write(&m, policy(mirror)).unwrap();
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(["push", "--manifests", m.to_str().unwrap()])
            .args(["--inventory", dir.path().join("inventory.yaml").to_str().unwrap()])
            .args(["--identity", key.private.to_str().unwrap()])
            .args(["--known-hosts", dir.path().join("known_hosts").to_str().unwrap()])
            .args(["--ssh-port", &port.to_string(), "--remote-root", "registries", "--parallel", parallel])
            .output()
            .unwrap();
        let elapsed = start.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        elapsed
    };
    push("warm.local", "4");
    println!("{HOSTS} hosts, 10 registries each, median of {ROUNDS} rounds (whole command, render included)");
    for parallel in ["1", "4"] {
        let mut changed = vec![];
        let mut unchanged = vec![];
        for r in 0..ROUNDS {
            changed.push(push(&format!("m{parallel}-{r}.local"), parallel));
            unchanged.push(push(&format!("m{parallel}-{r}.local"), parallel));
        }
        for (what, mut v) in [("changed", changed), ("unchanged", unchanged)] {
            v.sort();
            let median = v[v.len() / 2];
            println!(
                "parallel {parallel:>2} {what:<10} {:>7.1} ms per round  {:>6.1} hosts/s",
                median.as_secs_f64() * 1000.0,
                HOSTS as f64 / median.as_secs_f64()
            );
        }
    }
    drop(servers);
}
