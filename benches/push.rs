//! `mirrorconf push` to real OpenSSH servers on 127.0.0.2 .. (100 by default): a changed round and
//! an unchanged round at default settings and at `--parallel 1`, `--verify-all` (every host
//! contacted and its files read), the OpenSSH client's own floor beside them (`ssh host true` over
//! the same hosts, one after another), and where the time of one host goes (connect,
//! authenticate, read the state file, write).
//!
//! cargo bench --bench push
//! MIRRORCONF_BENCH_HOSTS=20 MIRRORCONF_BENCH_ROUNDS=5 MIRRORCONF_BENCH_PARALLEL=1,2,4,8,16,32 cargo bench --bench push
//!
//! `MIRRORCONF_BENCH_BASELINE=<an older mirrorconf binary>` also times that binary's sequential
//! push (changed and unchanged) over the same hosts, for a before/after on the same machine.

#[path = "../tests/common/mod.rs"]
mod common;

use common::sshd::{client_key, common_free_port, Sshd};
use mirrorconf::push::{self, Job, PushOptions};
use mirrorconf::sink::ssh::KnownHostsFile;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn policy(mirror: &str) -> String {
    let mut m = String::from("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: m}\nspec:\n  imageDigestMirrors:\n");
    for i in 0..10 {
        m.push_str(&format!("  - source: r{i}.example.com/team/app\n    mirrors: [{mirror}/r{i}/team/app]\n"));
    }
    m
}

/// `min / median / max` of `v` in seconds.
fn spread(v: &mut [Duration]) -> String {
    v.sort();
    let s = |d: Duration| format!("{:.2}", d.as_secs_f64());
    format!("{} / {} / {} s", s(v[0]), s(v[v.len() / 2]), s(v[v.len() - 1]))
}

fn main() {
    let hosts = env_or("MIRRORCONF_BENCH_HOSTS", 100).clamp(1, 250);
    let rounds = env_or("MIRRORCONF_BENCH_ROUNDS", 3).max(1);
    let parallels: Vec<usize> = std::env::var("MIRRORCONF_BENCH_PARALLEL")
        .unwrap_or_else(|_| format!("{},1", push::DEFAULT_PARALLEL))
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = client_key(d);
    let ips: Vec<String> = (0..hosts).map(|i| format!("127.0.0.{}", 2 + i)).collect();
    let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let port = common_free_port(&ip_refs);
    let servers: Vec<Sshd> = ips.iter().map(|ip| Sshd::start(ip, port, &d.join(ip), &key)).collect();
    fs::write(d.join("known_hosts"), servers.iter().map(Sshd::known_hosts_line).collect::<String>()).unwrap();
    let mut inv = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: windows-instances}\ndata:\n");
    for ip in &ips {
        inv.push_str(&format!("  {ip:?}: username=root\n"));
    }
    fs::write(d.join("inventory.yaml"), inv).unwrap();
    let last_cpu = std::cell::Cell::new(Duration::ZERO);
    let logins = || -> usize { servers.iter().map(Sshd::logins).sum() };
    println!("{hosts} hosts (127.0.0.2 ..), 10 registries each, {rounds} rounds per figure; min / median / max");

    // The OpenSSH client's floor: one login and `true`, host after host.
    let start = Instant::now();
    for ip in &ips {
        let out = Command::new("ssh")
            .args(["-i", key.private.to_str().unwrap(), "-p", &port.to_string()])
            .args(["-o", &format!("UserKnownHostsFile={}", d.join("known_hosts").display())])
            .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .arg(format!("root@{ip}"))
            .arg("true")
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh {ip}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let floor = start.elapsed();
    println!(
        "ssh host true, sequential            {:>8.2} s  ({:.0} ms per host)",
        floor.as_secs_f64(),
        floor.as_secs_f64() * 1000.0 / hosts as f64
    );

    let run = |bin: &str, mirror: &str, extra: &[&str]| -> Duration {
        let m = d.join("policy.yaml");
        fs::write(&m, policy(mirror)).unwrap();
        let cpu_before = children_cpu();
        let start = Instant::now();
        let out = Command::new(bin)
            .args(["push", "--manifests", m.to_str().unwrap()])
            .args(["--inventory", d.join("inventory.yaml").to_str().unwrap()])
            .args(["--identity", key.private.to_str().unwrap()])
            .args(["--known-hosts", d.join("known_hosts").to_str().unwrap()])
            .args(["--ssh-port", &port.to_string(), "--remote-root", "registries"])
            .args(extra)
            .output()
            .unwrap();
        let elapsed = start.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        last_cpu.set(children_cpu() - cpu_before);
        elapsed
    };
    let record = d.join("record.json");
    let push_cmd = |mirror: &str, extra: &[&str]| -> Duration {
        run(env!("CARGO_BIN_EXE_mirrorconf"), mirror, &[&["--record", record.to_str().unwrap()], extra].concat())
    };
    push_cmd("warm.local", &[]);
    if let Ok(base) = std::env::var("MIRRORCONF_BENCH_BASELINE") {
        let (mut changed, mut unchanged) = (vec![], vec![]);
        for r in 0..rounds {
            changed.push(run(&base, &format!("base-{r}.local"), &["--parallel", "1"]));
            unchanged.push(run(&base, &format!("base-{r}.local"), &["--parallel", "1"]));
        }
        println!(
            "baseline {base} --parallel 1: changed {}, unchanged {}",
            spread(&mut changed),
            spread(&mut unchanged)
        );
    }
    for parallel in &parallels {
        let p = parallel.to_string();
        let (mut changed, mut unchanged, mut verify_all) = (vec![], vec![], vec![]);
        let mut cpu = Duration::ZERO;
        for r in 0..rounds {
            let mirror = format!("m{p}-{r}.local");
            let before = logins();
            changed.push(push_cmd(&mirror, &["--parallel", &p]));
            cpu += last_cpu.get();
            assert_eq!(logins() - before, hosts, "a changed round logs in once per host");
            let before = logins();
            unchanged.push(push_cmd(&mirror, &["--parallel", &p]));
            assert_eq!(logins(), before, "an unchanged round logged in somewhere");
            verify_all.push(push_cmd(&mirror, &["--parallel", &p, "--verify-all"]));
        }
        let pct = |v: &[Duration]| 100.0 * v[v.len() / 2].as_secs_f64() / floor.as_secs_f64();
        println!(
            "--parallel {p:>2} changed                {}  ({:.1} % of the ssh loop)",
            spread(&mut changed),
            pct(&changed)
        );
        println!(
            "--parallel {p:>2} unchanged (no login)   {}  ({:.2} % of the ssh loop)",
            spread(&mut unchanged),
            pct(&unchanged)
        );
        println!(
            "--parallel {p:>2} unchanged --verify-all {}  ({:.1} % of the ssh loop)",
            spread(&mut verify_all),
            pct(&verify_all)
        );
        let per_host = cpu.as_secs_f64() * 1000.0 / (rounds * hosts) as f64;
        println!("--parallel {p:>2} changed: mirrorconf's own CPU (user + system) {per_host:.1} ms per host");
    }
    breakdown(d, &ips, port, &key.private, &parallels);
    drop(servers);
}

/// CPU time (user + system) of the child processes waited for so far.
fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

/// Where one host's time goes, from the library's own timings, for a changed tree.
fn breakdown(d: &Path, ips: &[String], port: u16, identity: &Path, parallels: &[usize]) {
    let hosts: Vec<Job> = ips
        .iter()
        .map(|ip| Job { host: push::Host { address: ip.clone(), user: "root".into() }, verify: false })
        .collect();
    for (n, parallel) in parallels.iter().enumerate() {
        let opts = PushOptions {
            port,
            identity: identity.to_path_buf(),
            known_hosts: KnownHostsFile::new(d.join("known_hosts"), false),
            remote_root: "registries".into(),
            parallel: *parallel,
            retries: 0,
            retry_delay: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            op_timeout: Duration::from_secs(30),
            host_timeout: Duration::from_secs(120),
            verify_interval: Duration::from_secs(3600),
            take_over: false,
        };
        let mut tree = mirrorconf::fileset::FileSet::new();
        for i in 0..10 {
            let body = format!("server = \"https://r{i}.example.com\"\n[host.\"https://b{n}.local\"]\n");
            tree.insert(format!("r{i}.example.com/hosts.toml"), body, 0o644).unwrap();
        }
        let start = Instant::now();
        let outcomes = push::push_all(&hosts, &tree, &opts, &|_| Some(push::Pass::unguarded()), &|_| {});
        let wall = start.elapsed();
        let t: Vec<_> = outcomes.iter().map(|o| o.timings.expect("every host was reached")).collect();
        let avg = |f: fn(&mirrorconf::sink::ssh::Timings) -> Duration| {
            t.iter().map(f).sum::<Duration>().as_secs_f64() * 1000.0 / t.len() as f64
        };
        println!(
            "per host, --parallel {parallel:>2}, changed: connect {:.1} ms, authenticate {:.1} ms, read state {:.1} ms, write {:.1} ms (round {:.2} s)",
            avg(|t| t.connect),
            avg(|t| t.auth),
            avg(|t| t.read_state),
            avg(|t| t.write),
            wall.as_secs_f64()
        );
    }
}
