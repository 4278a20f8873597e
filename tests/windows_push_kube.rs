//! `mirrorconf run --kube --windows-push`, the in-cluster pusher: a real kube-apiserver
//! (tests/common/cluster.rs, one per test: the mirror set and Nodes are cluster-scoped) holds the
//! policy, the `windows-instances` ConfigMap, Windows Nodes and the Lease; real OpenSSH servers on
//! loopback are the hosts. One test keeps the in-test fake server (tests/common/apiserver.rs): an
//! API server that takes Lease requests and never answers, which a real one cannot be made to do.

#[allow(dead_code)] // this test drives only part of the test API server
#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use apiserver::FakeApi;
use common::cluster::ControlPlane;
use common::pusher::Pusher;
use common::sshd::{client_key, common_free_port, Sshd};
use common::{mtimes, wait_until};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde_json::{json, Value};
use std::fs;

fn idms(mirror: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "app"},
           "spec": {"imageDigestMirrors": [{"source": "quay.io/team/app", "mirrors": [format!("{mirror}/team/app")]}]}})
}

fn inventory(ips: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = ips.iter().map(|ip| (ip.to_string(), json!("username=root"))).collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "windows-instances", "namespace": "openshift-windows-machine-config-operator"}, "data": data})
}

/// A Node of `os` whose InternalIP is `ip`.
fn windows_node(api: &ControlPlane, name: &str, ip: &str, os: &str) {
    api.node_at(name, ip, json!({"metadata": {"labels": {"kubernetes.io/os": os}}}));
}

/// A control plane of the test's own, with the CRDs and the namespaces of the Lease and the
/// inventory.
fn control_plane() -> ControlPlane {
    let api = ControlPlane::start();
    api.install_crds();
    api.namespace("mirrorconf");
    api.namespace("openshift-windows-machine-config-operator");
    api
}

/// A Lease time as the server takes it (RFC 3339 with microseconds).
fn micro_time(t: k8s_openapi::jiff::Timestamp) -> Value {
    serde_json::to_value(MicroTime(t)).unwrap()
}

/// A tag mirror set that never contacts the source the policy's digest mirror set lets be
/// contacted: a refusal only the pusher makes (the server refuses malformed mirrors itself).
fn clash() -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet", "metadata": {"name": "clash"},
           "spec": {"imageTagMirrors": [{"source": "quay.io/team/app", "mirrors": ["t.corp/team/app"],
                                         "mirrorSourcePolicy": "NeverContactSource"}]}})
}

fn hosts_toml(host: &Sshd) -> Option<String> {
    fs::read_to_string(host.folder.join("registries/quay.io/hosts.toml")).ok()
}

fn lease_holder(api: &ControlPlane) -> Option<String> {
    api.get("coordination.k8s.io/v1", "Lease", "mirrorconf", "mirrorconf-windows-push")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

#[test]
fn the_pusher_keeps_inventory_and_node_hosts_current_while_it_holds_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let port = common_free_port(&ips);
    let hosts: Vec<Sshd> = ips.iter().map(|ip| Sshd::start(ip, port, &dir.path().join(ip), &key)).collect();
    fs::write(dir.path().join("known_hosts"), hosts.iter().map(Sshd::known_hosts_line).collect::<String>()).unwrap();

    let api = control_plane();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_agent_kubeconfig(&kubeconfig);
    api.apply(idms("mirror-one.local"));
    api.apply(inventory(&["127.0.0.2"]));
    windows_node(&api, "win-1", "127.0.0.3", "windows");
    // A Linux node is not a push target.
    windows_node(&api, "linux-1", "127.0.0.4", "linux");

    let mut a = Pusher::start(dir.path(), &kubeconfig, &key, port, "pusher-a", &[]);
    let on = |h: &Sshd, needle: &str| hosts_toml(h).is_some_and(|t| t.contains(needle));
    wait_until(30, "first push to the inventory host and the Windows node", || {
        on(&hosts[0], "mirror-one.local") && on(&hosts[1], "mirror-one.local")
    });
    assert_eq!(lease_holder(&api).as_deref(), Some("pusher-a"));
    assert!(!hosts[2].folder.join("registries").exists(), "the Linux node got a push");
    let failed = api.failed_requests(common::cluster::AGENT);
    assert!(failed.iter().all(|f| common::pusher::finds_its_own_object_missing(f)), "{failed:#?}");

    // A second replica waits: it never takes a held Lease.
    let b = Pusher::start(dir.path(), &kubeconfig, &key, port, "pusher-b", &[]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(lease_holder(&api).as_deref(), Some("pusher-a"), "{}", b.log_text());

    // A policy change reaches every host.
    api.apply(idms("mirror-two.local"));
    wait_until(30, "the changed policy on both hosts", || {
        on(&hosts[0], "mirror-two.local") && on(&hosts[1], "mirror-two.local")
    });

    // A host added to the inventory gets the tree.
    api.apply(inventory(&["127.0.0.2", "127.0.0.4"]));
    // Wait for the host's outcome line, not just its file: the push ends with the state file, and a
    // snapshot taken before that would see the push's own temp file.
    wait_until(30, "the new inventory host", || {
        on(&hosts[2], "mirror-two.local") && a.log_text().contains("host=root@127.0.0.4 ok=true")
    });

    // An invalid policy: an Event, and the hosts keep their last good files.
    let before: Vec<_> = hosts.iter().map(|h| mtimes(&h.folder.join("registries"))).collect();
    api.apply(clash());
    wait_until(30, "an InvalidMirrorPolicy Event", || {
        api.events().iter().any(|e| e["reason"] == "InvalidMirrorPolicy" && e["regarding"]["name"] == "clash")
    });
    for (i, h) in hosts.iter().enumerate() {
        assert!(on(h, "mirror-two.local"), "host {} lost its last good file", h.ip);
        let now = mtimes(&h.folder.join("registries"));
        assert_eq!(now, before[i], "host {} was written to while the input was invalid", h.ip);
    }
    api.delete("config.openshift.io/v1", "ImageTagMirrorSet", "", "clash");

    // SIGTERM releases the Lease; the waiting replica takes over and pushes the next change.
    a.terminate();
    wait_until(30, "pusher-b leading", || lease_holder(&api).as_deref() == Some("pusher-b"));
    api.apply(idms("mirror-four.local"));
    wait_until(30, "pusher-b's push", || hosts.iter().all(|h| on(h, "mirror-four.local")));
    assert!(b.log_text().contains("became the leader"), "{}", b.log_text());

    // Someone else takes the Lease (as after a network partition): pusher-b steps down and pushes
    // nothing more.
    let now = micro_time(k8s_openapi::jiff::Timestamp::now());
    api.merge_patch(
        "coordination.k8s.io/v1",
        "Lease",
        "mirrorconf",
        "mirrorconf-windows-push",
        json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 3600}}),
    );
    wait_until(30, "pusher-b stepping down", || b.log_text().contains("stepping down"));
    api.apply(idms("mirror-five.local"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(hosts.iter().all(|h| on(h, "mirror-four.local")), "a replica without the Lease pushed");
}

/// A Lease held by `holder`, renewed "now" by a clock that is `behind` behind ours.
fn foreign_lease(holder: &str, behind: std::time::Duration) -> Value {
    let then = micro_time(k8s_openapi::jiff::Timestamp::now() - behind);
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "mirrorconf-windows-push", "namespace": "mirrorconf"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": then,
                    "acquireTime": then}})
}

/// As `wait_until`, with `pusher`'s log in the failure.
fn wait_logged(pusher: &Pusher, secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}:\n{}",
            pusher.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn logins(host: &Sshd) -> usize {
    host.log_text().matches("Accepted publickey").count()
}

#[test]
fn a_replica_that_loses_its_lease_mid_round_starts_no_new_host() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    // 127.0.0.5 accepts TCP and never speaks SSH, so a round spends --timeout there first.
    let ips = ["127.0.0.5", "127.0.0.6", "127.0.0.7"];
    let port = common_free_port(&ips);
    let hung = std::net::TcpListener::bind(("127.0.0.5", port)).unwrap();
    let hosts: Vec<Sshd> = ips[1..].iter().map(|ip| Sshd::start(ip, port, &dir.path().join(ip), &key)).collect();
    fs::write(dir.path().join("known_hosts"), hosts.iter().map(Sshd::known_hosts_line).collect::<String>()).unwrap();
    let api = control_plane();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_agent_kubeconfig(&kubeconfig);
    api.apply(idms("mirror-one.local"));
    api.apply(inventory(&ips));

    // One host at a time, so that a round waits on the hung host while the others wait their turn.
    let one_at_a_time = ["--parallel", "1"];
    // pusher-a renews every 0.4 s (a 3 s Lease), so that it sees the Lease taken well within the
    // --timeout (5 s) the round spends on the hung host; with the default 15 s Lease it renews
    // every 2 s, and a loaded machine plus the real server's write latency could let the round
    // move on to a real host first (seen twice in some fifteen runs).
    let a =
        Pusher::start(dir.path(), &kubeconfig, &key, port, "pusher-a", &["--parallel", "1", "--lease-duration", "3"]);
    let on = |h: &Sshd, needle: &str| hosts_toml(h).is_some_and(|t| t.contains(needle));
    wait_until(60, "the first round on both real hosts", || hosts.iter().all(|h| on(h, "mirror-one.local")));
    let b = Pusher::start(dir.path(), &kubeconfig, &key, port, "pusher-b", &one_at_a_time);
    wait_until(30, "the first round to end", || a.log_text().contains("Windows push round done"));

    // A change starts a round, which first waits on the hung host; the Lease is taken meanwhile.
    let rounds = |p: &Pusher| p.log_text().matches("Windows push round starts").count();
    let before = rounds(&a);
    api.apply(idms("mirror-two.local"));
    wait_until(30, "the second round to start", || rounds(&a) > before);
    let logins_at_loss: Vec<usize> = hosts.iter().map(logins).collect();
    api.apply(foreign_lease("intruder", std::time::Duration::ZERO));
    wait_until(30, "pusher-a stepping down", || a.log_text().contains("stepping down"));
    wait_logged(&a, 30, "the round to stop", || a.log_text().contains("no new host started"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    for (h, n) in hosts.iter().zip(&logins_at_loss) {
        assert_eq!(logins(h), *n, "{} saw a login after the Lease was lost:\n{}", h.ip, a.log_text());
        assert!(on(h, "mirror-one.local"), "{} was pushed after the Lease was lost", h.ip);
    }
    assert!(!b.log_text().contains("became the leader"), "{}", b.log_text());
    drop(hung);
}

#[test]
fn a_candidate_judges_expiry_by_what_it_observed_not_by_the_holders_clock() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    fs::write(dir.path().join("known_hosts"), "").unwrap();
    let api = control_plane();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_agent_kubeconfig(&kubeconfig);
    api.apply(idms("mirror-one.local"));
    api.apply(inventory(&[]));
    // The holder renews every second, but its clock is an hour behind ours: by its renewTime the
    // Lease looks expired. Only a replica that stops seeing renewals may take it.
    let hour = std::time::Duration::from_secs(3600);
    api.apply(foreign_lease("skewed-holder", hour));
    let b = Pusher::start(dir.path(), &kubeconfig, &key, common_free_port(&["127.0.0.1"]), "pusher-b", &[]);
    wait_until(30, "pusher-b waiting for the Lease", || b.log_text().contains("another instance leads"));
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let renewed = micro_time(k8s_openapi::jiff::Timestamp::now() - hour);
        api.merge_patch(
            "coordination.k8s.io/v1",
            "Lease",
            "mirrorconf",
            "mirrorconf-windows-push",
            json!({"spec": {"renewTime": renewed}}),
        );
        assert_eq!(lease_holder(&api).as_deref(), Some("skewed-holder"), "{}", b.log_text());
    }
    assert!(!b.log_text().contains("became the leader"), "{}", b.log_text());
}

#[test]
fn a_leader_whose_api_server_stops_answering_steps_down_within_the_renew_deadline() {
    // One shard, and eight: a tick of eight makes some twenty calls, each bounded by itself.
    steps_down_when_the_api_server_goes_silent("1");
    steps_down_when_the_api_server_goes_silent("8");
}

/// On the in-test fake: a real API server cannot be made to take Lease requests and never answer.
fn steps_down_when_the_api_server_goes_silent(shards: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    let ips = ["127.0.0.8"];
    let port = common_free_port(&ips);
    let host = Sshd::start(ips[0], port, &dir.path().join(ips[0]), &key);
    fs::write(dir.path().join("known_hosts"), host.known_hosts_line()).unwrap();
    let api = FakeApi::start();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    api.apply(idms("mirror-one.local"));
    api.apply(inventory(&ips));
    // Lease duration 3 s: renewed every 0.4 s, stepping down after 2 s without a renewal.
    let a =
        Pusher::start(dir.path(), &kubeconfig, &key, port, "pusher-a", &["--lease-duration", "3", "--shards", shards]);
    wait_until(30, "the first push", || hosts_toml(&host).is_some_and(|t| t.contains("mirror-one.local")));
    // The API server takes Lease requests and never answers (kube's own read timeout is minutes).
    api.hang("leases");
    let hung_at = std::time::Instant::now();
    let n: usize = shards.parse().unwrap();
    let stepped_down = |a: &Pusher| a.log_text().matches("no renewal within the renew deadline; stepping down").count();
    wait_until(10, "pusher-a giving up every shard", || stepped_down(&a) == n);
    let after = hung_at.elapsed();
    assert!(after < std::time::Duration::from_secs(5), "--shards {shards}: stepped down only after {after:?}");
    let logins_at_loss = logins(&host);
    api.apply(idms("mirror-two.local"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        logins(&host),
        logins_at_loss,
        "--shards {shards}: a replica that lost its Lease pushed:\n{}",
        a.log_text()
    );
    assert!(hosts_toml(&host).is_some_and(|t| t.contains("mirror-one.local")));
    api.answer("leases");
}
