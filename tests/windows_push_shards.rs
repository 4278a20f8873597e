//! More than one Windows pusher: replicas of `run --kube --windows-push --shards N` share the
//! shard Leases on a real kube-apiserver (tests/common/cluster.rs), each as the component's
//! ServiceAccount with the shipped RBAC extended for N shards as deploy/README.md says, and push to
//! real OpenSSH servers on loopback. Every host is pushed by exactly one replica per change
//! (counted in each sshd's own log), a round whose tree did not change logs in nowhere, Windows
//! Nodes lose their pending taint and every shard's host report is written, and when a replica
//! is killed the survivors take its shards over and miss no host.

mod common;

use common::cluster::ControlPlane;
use common::kustomize;
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

const PENDING: &str = "mirrorconf.io/registries-pending";

/// The BYOH inventory, where the component's Role lets the pusher read it (`--inventory-namespace`).
fn inventory(ips: &[String]) -> Value {
    let data: serde_json::Map<String, Value> = ips.iter().map(|ip| (ip.clone(), json!("username=root"))).collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "windows-instances", "namespace": "mirrorconf"}, "data": data})
}

/// The windows-push component on top of the CRDs and deploy/base, with the Role naming the
/// objects of `shards` shards (deploy/README.md, "More than one pusher replica").
fn install(cp: &ControlPlane, shards: usize) {
    // Inside the repository: kustomize takes only relative paths to other kustomizations.
    let dir = tempfile::Builder::new().prefix("kustomize-").tempdir_in(kustomize::repo("target")).unwrap();
    let lease = |suffix: String| json!(format!("{LEASE}{suffix}"));
    let mut leases = vec![lease(String::new())];
    leases.extend((0..shards).map(|i| lease(format!("-{i}"))));
    leases.extend((0..shards).map(|i| lease(format!("-member-{i}"))));
    let reports: Vec<Value> = (0..shards).map(|i| lease(format!("-hosts-{i}"))).collect();
    let patch = json!([
        {"op": "replace", "path": "/rules/1/resourceNames", "value": leases},
        {"op": "replace", "path": "/rules/3/resourceNames", "value": reports},
    ]);
    let rel = |p: &str| format!("../../{p}");
    let k = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\n- {}\ncomponents:\n- {}\n\
         patches:\n- target: {{kind: Role, name: mirrorconf-windows-push-lease}}\n  patch: '{}'\n",
        rel("deploy/api"),
        rel("deploy/base"),
        rel("deploy/components/windows-push"),
        patch
    );
    fs::write(dir.path().join("kustomization.yaml"), k).unwrap();
    cp.kubectl_ok(&["apply", "--server-side", "-k", dir.path().to_str().unwrap()]);
    cp.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
}

fn holders(api: &ControlPlane, shards: usize) -> Vec<Option<String>> {
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
    api: ControlPlane,
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
        let api = ControlPlane::start();
        install(&api, shards);
        api.apply(idms("mirror-1.local"));
        api.apply(inventory(&ips));
        // The first two hosts are Windows Nodes too (found by InternalIP), registered tainted.
        for (i, ip) in ips.iter().take(2).enumerate() {
            api.node_at(
                &format!("win-{i}"),
                ip,
                json!({"metadata": {"labels": {"kubernetes.io/os": "windows"}},
                       "spec": {"taints": [{"key": PENDING, "effect": "NoSchedule"}]}}),
            );
        }
        Cluster { dir, key, port, api, hosts: servers, replicas: Vec::new(), shards }
    }

    /// A replica as the Deployment's Pod would run: its ServiceAccount, a token bound to its Pod.
    fn add_replica(&mut self) {
        let name = format!("pusher-{}", self.replicas.len());
        self.api.apply(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "mirrorconf"},
            "spec": {"serviceAccountName": "mirrorconf-windows-push", "nodeName": "linux-0",
                     "containers": [{"name": "mirrorconf", "image": "mirrorconf"}]}}),
        );
        let token = self.api.token("mirrorconf", "mirrorconf-windows-push", Some(&name));
        let kubeconfig = self.dir.path().join(format!("{name}.kubeconfig"));
        self.api.write_token_kubeconfig(&kubeconfig, &token);
        let flags = ["--shards", &self.shards.to_string(), "--lease-duration", &LEASE_SECS.to_string()]
            .into_iter()
            .chain(["--inventory-namespace", "mirrorconf"])
            .map(String::from)
            .collect::<Vec<_>>();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
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

    /// The Windows Nodes' pending taints are gone and each shard has its host report, which
    /// together list every host.
    fn nodes_untainted_and_every_shard_reported(&self) {
        for i in 0..2 {
            wait_until(30, &format!("win-{i} untainted"), || {
                let node = self.api.get("v1", "Node", "", &format!("win-{i}")).unwrap();
                !node["spec"]["taints"].as_array().into_iter().flatten().any(|t| t["key"] == PENDING)
            });
        }
        wait_until(30, "a host report per shard listing every host", || {
            let mut listed = Vec::new();
            for s in 0..self.shards {
                let Some(cm) = self.api.get("v1", "ConfigMap", "mirrorconf", &format!("{LEASE}-hosts-{s}")) else {
                    return false;
                };
                let report: Value = serde_json::from_str(cm["data"]["hosts.json"].as_str().unwrap_or("{}")).unwrap();
                for h in report["hosts"].as_array().into_iter().flatten() {
                    listed.push(h["address"].as_str().unwrap_or_default().to_string());
                }
            }
            listed.sort();
            let mut want: Vec<String> = self.hosts.iter().map(|h| h.ip.to_string()).collect();
            want.sort();
            listed == want
        });
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
        self.nodes_untainted_and_every_shard_reported();
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
        // The shipped RBAC, extended as documented for N shards, covers every call they made.
        let sa = "system:serviceaccount:mirrorconf:mirrorconf-windows-push";
        assert_eq!(self.api.forbidden(sa, ""), Vec::<String>::new());
        assert!(self
            .api
            .requests_by(sa)
            .iter()
            .any(|e| e["verb"] == "update" && e["objectRef"]["resource"] == "leases"));
    }
}

#[test]
fn two_replicas_split_the_hosts_and_one_covers_for_the_other_when_it_dies() {
    Cluster::start(8, 2).scenario(2, 1);
}

#[test]
fn three_replicas_share_six_shards_and_two_cover_for_a_dead_one() {
    Cluster::start(9, 6).scenario(3, 2);
}

#[test]
fn a_host_report_near_the_configmap_size_limit_is_accepted_and_read() {
    // Thousands of BYOH hosts that all fail (nothing listens on their port): each failure is listed
    // with its reason until the report would pass its cap, under the real server's 1 MiB limit.
    let mut c = Cluster::start(1, 1);
    let many: Vec<String> = (0..6000).map(|i| format!("127.1.{}.{}", i / 250, 1 + i % 250)).collect();
    let mut all = vec![c.hosts[0].ip.to_string()];
    all.extend(many);
    c.api.apply(inventory(&all));
    c.add_replica();
    let report = || c.api.get("v1", "ConfigMap", "mirrorconf", &format!("{LEASE}-hosts-0"));
    wait_until(240, "a report with the failing hosts", || {
        report().is_some_and(|cm| cm["data"]["hosts.json"].as_str().is_some_and(|j| j.len() > 800 * 1024))
    });
    let json = report().unwrap()["data"]["hosts.json"].as_str().unwrap().to_string();
    assert!(json.len() <= mirrorconf::push::report::MAX_REPORT_BYTES, "{} bytes", json.len());
    let parsed: Value = serde_json::from_str(&json).unwrap();
    let listed = parsed["hosts"].as_array().unwrap().len();
    eprintln!("report of {} bytes listing {listed} of {} hosts", json.len(), all.len());
    assert!(listed > 1000 && listed < all.len(), "cut to what fits: {listed}");
    // status reads it back from the server, and says the fleet is not current.
    let out = common::status_kube(&c.api.kubeconfig(), &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = summary["nodes"].as_array().unwrap().len();
    assert!(rows >= listed, "status shows {rows} rows for {listed} listed hosts");
    let sa = "system:serviceaccount:mirrorconf:mirrorconf-windows-push";
    assert_eq!(c.api.forbidden(sa, ""), Vec::<String>::new());
}
