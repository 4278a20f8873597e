//! More than one Windows pusher: replicas of `run --kube --windows-push --shards N` share the
//! shard Leases on the in-test API server and push to real OpenSSH servers on loopback. Every host
//! is pushed by exactly one replica per change (counted in each sshd's own log), a round whose
//! tree did not change logs in nowhere, and when a replica is killed the survivors take its
//! shards over and miss no host.

#[allow(dead_code)] // this test drives only part of the test API server
#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use apiserver::FakeApi;
use common::pusher::Pusher;
use common::sshd::{client_key, common_free_port, Sshd};
use common::wait_until;
use serde_json::{json, Value};
use std::fs;
use std::time::{Duration, Instant};

const LEASE: &str = "mirrorconf-windows-push";
/// Short Leases so that a takeover takes seconds (renewed every 0.4 s, stepped down after 2 s).
const LEASE_SECS: u64 = 3;

fn idms(mirror: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "app"},
           "spec": {"imageDigestMirrors": [{"source": "quay.io/team/app", "mirrors": [format!("{mirror}/team/app")]}]}})
}

fn inventory(ips: &[String]) -> Value {
    let data: serde_json::Map<String, Value> = ips.iter().map(|ip| (ip.clone(), json!("username=root"))).collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "windows-instances", "namespace": "openshift-windows-machine-config-operator"}, "data": data})
}

fn holders(api: &FakeApi, shards: usize) -> Vec<Option<String>> {
    (0..shards)
        .map(|i| {
            api.get("coordination.k8s.io/v1", "Lease", "mirrorconf", &format!("{LEASE}-{i}"))
                .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
        })
        .collect()
}

fn held_by(holders: &[Option<String>], name: &str) -> usize {
    holders.iter().filter(|h| h.as_deref() == Some(name)).count()
}

struct Cluster {
    dir: tempfile::TempDir,
    key: common::sshd::ClientKey,
    port: u16,
    api: FakeApi,
    hosts: Vec<Sshd>,
    replicas: Vec<Pusher>,
    shards: usize,
}

impl Cluster {
    fn start(hosts: usize, shards: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let key = client_key(dir.path());
        let ips: Vec<String> = (0..hosts).map(|i| format!("127.0.0.{}", 30 + i)).collect();
        let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        let port = common_free_port(&ip_refs);
        let servers: Vec<Sshd> = ips.iter().map(|ip| Sshd::start(ip, port, &dir.path().join(ip), &key)).collect();
        fs::write(dir.path().join("known_hosts"), servers.iter().map(Sshd::known_hosts_line).collect::<String>())
            .unwrap();
        let api = FakeApi::start();
        api.write_kubeconfig(&dir.path().join("kubeconfig"));
        api.apply(idms("mirror-1.local"));
        api.apply(inventory(&ips));
        Cluster { dir, key, port, api, hosts: servers, replicas: Vec::new(), shards }
    }

    fn add_replica(&mut self) {
        let flags =
            ["--shards", &self.shards.to_string(), "--lease-duration", &LEASE_SECS.to_string()].map(String::from);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let name = format!("pusher-{}", self.replicas.len());
        let kubeconfig = self.dir.path().join("kubeconfig");
        self.replicas.push(Pusher::start(self.dir.path(), &kubeconfig, &self.key, self.port, &name, &flags));
    }

    fn on_all(&self, mirror: &str) -> bool {
        self.hosts.iter().all(|h| {
            fs::read_to_string(h.folder.join("registries/quay.io/hosts.toml")).is_ok_and(|t| t.contains(mirror))
        })
    }

    fn logins(&self) -> Vec<usize> {
        self.hosts.iter().map(Sshd::logins).collect()
    }

    /// Waits until the live replicas hold every shard, each its even share.
    fn wait_for_even_split(&self, live: &[usize]) {
        let (shards, n) = (self.shards, live.len());
        wait_until(60, &format!("{shards} shards split between {n} replicas"), || {
            let h = holders(&self.api, shards);
            let counts: Vec<usize> = live.iter().map(|r| held_by(&h, &self.replicas[*r].name)).collect();
            counts.iter().sum::<usize>() == shards && counts.iter().all(|c| c.abs_diff(shards / n) <= 1)
        });
    }

    /// Log lengths now, to read what each replica logs after this point.
    fn marks(&self) -> Vec<usize> {
        self.replicas.iter().map(|p| p.log_text().len()).collect()
    }

    fn since(&self, marks: &[usize], r: usize) -> String {
        self.replicas[r].log_text().get(marks[r]..).unwrap_or_default().to_string()
    }

    /// Waits until the live replicas' rounds are over: no shard changing hands, and no login for
    /// a while.
    fn settle(&self) {
        let mut last = (self.logins(), holders(&self.api, self.shards));
        let mut quiet_since = Instant::now();
        wait_until(60, "the replicas to settle", || {
            let now = (self.logins(), holders(&self.api, self.shards));
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
            quiet_since.elapsed() > Duration::from_secs(2 * LEASE_SECS)
        });
    }

    /// Applies a new policy and checks that every host got it through exactly one login, by exactly
    /// one of the `live` replicas.
    fn change_reaches_every_host_once(&self, mirror: &str, live: &[usize]) {
        let (before, marks) = (self.logins(), self.marks());
        self.api.apply(idms(mirror));
        wait_until(60, &format!("{mirror} on every host"), || self.on_all(mirror));
        self.settle();
        let after = self.logins();
        for (i, h) in self.hosts.iter().enumerate() {
            assert_eq!(
                after[i],
                before[i] + 1,
                "{} was logged into {} times for one change",
                h.ip,
                after[i] - before[i]
            );
            let pushers: Vec<&str> = live
                .iter()
                .filter(|r| self.since(&marks, **r).contains(&format!("host=root@{} ok=true", h.ip)))
                .map(|r| self.replicas[*r].name.as_str())
                .collect();
            assert_eq!(pushers.len(), 1, "{} pushed by {pushers:?}", h.ip);
        }
        for r in live {
            assert!(self.since(&marks, *r).contains("ok=true"), "{} pushed no host", self.replicas[*r].name);
        }
    }

    /// A trigger that changes neither the tree nor the hosts: every replica plans and contacts nobody.
    fn quiet_round_logs_in_nowhere(&self, live: &[usize]) {
        let (before, marks) = (self.logins(), self.marks());
        self.api.apply(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "win-unrelated", "labels": {"kubernetes.io/os": "windows"}}}));
        wait_until(30, "a quiet round on every live replica", || {
            live.iter().all(|r| self.since(&marks, *r).contains("no host contacted"))
        });
        assert_eq!(self.logins(), before, "a round without a change logged in somewhere");
    }

    /// Replica 0 starts alone and pushes every host; the others join and take their share; a
    /// change reaches every host once; a round without a change logs in nowhere; then `victim`
    /// is killed and the policy goes back to the first one at once, so the survivors must not
    /// trust what replica 0 remembers of the hosts it once had: they hold the second policy now.
    fn scenario(&mut self, replicas: usize, victim: usize) {
        assert_ne!(victim, 0);
        self.add_replica();
        wait_until(60, "replica 0 pushing every host", || self.on_all("mirror-1.local"));
        for _ in 1..replicas {
            self.add_replica();
        }
        let all: Vec<usize> = (0..replicas).collect();
        self.wait_for_even_split(&all);
        self.settle();
        self.change_reaches_every_host_once("mirror-2.local", &all);
        self.quiet_round_logs_in_nowhere(&all);

        let survivors: Vec<usize> = all.iter().copied().filter(|r| *r != victim).collect();
        let killed = Instant::now();
        self.replicas[victim].kill();
        self.api.apply(idms("mirror-1.local"));
        self.wait_for_even_split(&survivors);
        let took = killed.elapsed();
        eprintln!("survivors hold every shard {took:?} after the kill (Lease duration {LEASE_SECS} s)");
        assert!(took < Duration::from_secs(6 * LEASE_SECS), "takeover took {took:?}");
        wait_until(60, "the dead replica's hosts back on the first policy", || self.on_all("mirror-1.local"));
        self.settle();
        self.change_reaches_every_host_once("mirror-3.local", &survivors);
    }
}

#[test]
fn two_replicas_split_the_hosts_and_one_covers_for_the_other_when_it_dies() {
    Cluster::start(8, 4).scenario(2, 1);
}

#[test]
fn three_replicas_share_six_shards_and_two_cover_for_a_dead_one() {
    Cluster::start(9, 6).scenario(3, 2);
}
