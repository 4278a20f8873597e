//! `check --kube`: the policy, the CA ConfigMap and the pull secret come from the cluster (a real
//! kube-apiserver, tests/common/cluster.rs); the mirrors are real docker-registry servers.

mod common;

use base64::Engine;
use common::cluster::ControlPlane;
use common::mirrors::{basic, Mirrors, PASSWORD, USER};
use serde_json::{json, Value};
use std::fs;
use std::process::Command;

#[test]
fn check_kube_probes_with_the_clusters_cas_and_pull_secret() {
    let m = Mirrors::start();
    let source = "127.0.0.5:1/team/app";
    let mirrors = [format!("{}/mirror/app", m.good.host()), format!("{}/mirror/app", m.private.host())];
    let api = ControlPlane::shared();
    api.namespace("openshift-config");
    api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": "app"},
        "spec": {"imageDigestMirrors": [{"source": source, "mirrors": mirrors, "mirrorSourcePolicy": "NeverContactSource"}]}}));
    api.apply(json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
        "spec": {"additionalTrustedCA": {"name": "cas"}}}));
    let pem = fs::read_to_string(&m.ca.ca_cert).unwrap();
    let data: serde_json::Map<String, Value> =
        [&m.good, &m.private].iter().map(|r| (format!("{}..{}", r.addr.ip(), r.addr.port()), json!(pem))).collect();
    api.apply(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas", "namespace": "openshift-config"},
        "data": data}),
    );
    let config = format!(r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#, m.private.host(), basic(USER, PASSWORD));
    api.apply(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull-secret", "namespace": "openshift-config"},
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}}));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_agent_kubeconfig(&kubeconfig);

    let out = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["check", "--kube", "--output", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{all}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["endpoints"].as_array().unwrap();
    let endpoints: Vec<&str> = rows.iter().map(|r| r["endpoint"].as_str().unwrap()).collect();
    assert_eq!(endpoints, mirrors.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r["ok"] == true), "{report:#}");
    assert_eq!(rows[1]["stage"], "auth", "the private mirror took the cluster's pull secret: {report:#}");
    assert!(m.private.server.log_text().contains("msg=\"authorized request\""));
    assert!(!all.contains(PASSWORD) && !all.contains(&basic(USER, PASSWORD)), "{all}");
}
