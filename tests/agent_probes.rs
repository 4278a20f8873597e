//! `run --probe-interval`: the agent probes the endpoints its files name, once per interval each,
//! and reports them on /metrics and, with --kube, as Node Events when one turns unusable or
//! recovers. Real docker-registry servers on loopback; the cluster is a real kube-apiserver
//! (tests/common/cluster.rs).

mod common;

use common::cluster::ControlPlane;
use common::mirrors::{mirror_set, Mirrors};
use common::{free_port, http_get, make_tls, wait_until, Registry, Tls};
use serde_json::json;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SOURCE: &str = "127.0.0.5:1/team/app";

struct Agent {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(args: &[&str], env: &[(&str, &Path)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        let log = dir.path().join("agent.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
        cmd.arg("run").args(args).arg("--root").arg(root.path()).args(["--listen", &addr.to_string()]);
        cmd.args(["--probe-interval", "10"]).env("NODE_NAME", "node-1").env("RUST_LOG", "mirrorconf=info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap()).spawn().unwrap();
        Agent { child, addr, log, _dirs: vec![dir, root] }
    }

    /// The value of `mirrorconf_endpoint_up` for one endpoint, once it has one.
    fn up(&self, endpoint: &str) -> Option<f64> {
        let (_, body) = http_get(self.addr, "/metrics")?;
        let prefix = format!(r#"mirrorconf_endpoint_up{{registry="{SOURCE}",endpoint="{endpoint}"}} "#);
        body.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn probes_seen(r: &Registry) -> usize {
    r.server
        .log_text()
        .lines()
        .filter(|l| l.contains("\"GET /v2/ HTTP/1.1\"") && l.contains("mirrorconf-check/"))
        .count()
}

#[test]
fn the_agent_probes_each_endpoint_once_per_interval_into_metrics() {
    let m = Mirrors::start();
    let (good, down) = (format!("{}/mirror/app", m.good.host()), format!("{}/mirror/app", m.down));
    let manifests = tempfile::tempdir().unwrap();
    let policy = format!("{}{}", mirror_set("app", SOURCE, &[good.clone(), down.clone()], false), m.ca_config_map());
    fs::write(manifests.path().join("m.yaml"), policy).unwrap();
    let a = Agent::start(&["--manifests", manifests.path().to_str().unwrap()], &[]);

    // Once per interval, by what the registry saw: the second probe comes a whole interval later.
    wait_until(30, "the first probe in the access log", || probes_seen(&m.good) == 1);
    let first = Instant::now();
    wait_until(30, "both endpoints on /metrics", || a.up(&good).is_some() && a.up(&down).is_some());
    assert_eq!((a.up(&good), a.up(&down)), (Some(1.0), Some(0.0)), "{}", a.log());
    let (_, body) = http_get(a.addr, "/metrics").unwrap();
    let duration = format!(r#"mirrorconf_endpoint_probe_duration_seconds{{registry="{SOURCE}",endpoint="{good}"}}"#);
    assert!(body.contains(&duration), "{body}");
    let log = a.log();
    assert!(log.contains(&format!("{down} (for {SOURCE}) is not usable: connect failed: nothing listens on")), "{log}");

    wait_until(20, "the second probe", || probes_seen(&m.good) >= 2);
    let gap = first.elapsed();
    assert!(gap >= Duration::from_millis(9_500), "two probes {gap:?} apart within one 10 s interval");
    assert_eq!(probes_seen(&m.good), 2);
}

#[test]
fn in_the_cluster_a_node_event_says_when_an_endpoint_goes_and_comes_back() {
    let tls = make_tls(&["127.0.0.3"]);
    let port = free_port("127.0.0.3");
    let mirror = format!("127.0.0.3:{port}/mirror/app");
    let api = ControlPlane::shared();
    api.namespace("openshift-config");
    api.node("node-1", json!({}));
    api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "app"},
        "spec": {"imageDigestMirrors": [{"source": SOURCE, "mirrors": [mirror], "mirrorSourcePolicy": "NeverContactSource"}]}}));
    api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
        "spec": {"additionalTrustedCA": {"name": "cas"}}}));
    api.apply(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas", "namespace": "openshift-config"},
        "data": {format!("127.0.0.3..{port}"): fs::read_to_string(&tls.ca_cert).unwrap()}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_agent_kubeconfig(&kubeconfig);
    let a = Agent::start(&["--kube"], &[("KUBECONFIG", &kubeconfig)]);

    let event =
        |reason: &str| api.events().into_iter().find(|e| e["reason"] == reason && e["regarding"]["kind"] == "Node");
    wait_until(30, "the Warning Event", || event("MirrorEndpointUnusable").is_some());
    let warning = event("MirrorEndpointUnusable").unwrap();
    assert_eq!((warning["regarding"]["name"].as_str(), warning["type"].as_str()), (Some("node-1"), Some("Warning")));
    let note = warning["note"].as_str().unwrap();
    assert!(note.contains(&mirror) && note.contains("connection refused"), "{note}");
    assert_eq!(a.up(&mirror), Some(0.0));

    // The mirror comes up, trusted through the CA the cluster distributes: a Normal Event.
    let registry =
        Registry::start_on("127.0.0.3", port, Some(Tls { cert: &tls.server_cert, key: &tls.server_key }), "");
    wait_until(25, "the recovery Event", || event("MirrorEndpointRecovered").is_some());
    let normal = event("MirrorEndpointRecovered").unwrap();
    assert_eq!((normal["type"].as_str(), normal["regarding"]["name"].as_str()), (Some("Normal"), Some("node-1")));
    assert!(normal["note"].as_str().unwrap().contains("is usable again"), "{normal:#}");
    assert_eq!(a.up(&mirror), Some(1.0));
    assert_eq!(probes_seen(&registry), 1, "{}", registry.server.log_text());
    let reasons: Vec<String> = api.events().iter().filter_map(|e| e["reason"].as_str().map(String::from)).collect();
    assert_eq!(
        reasons.iter().filter(|r| r.starts_with("MirrorEndpoint")).count(),
        2,
        "one Event per change: {reasons:?}"
    );
}
