//! Every kustomization under deploy/ applied with `kubectl apply -k` to a bare real cluster
//! (tests/common/cluster.rs), with server-side field validation on (`--validate=strict`): what a new
//! admin runs first. Each object is then read back from the server, a second apply changes
//! nothing, and `kubectl diff` sees no drift. The monitoring component is applied the way a cluster
//! with the Prometheus Operator has it: with the operator's own CRDs installed first.

mod common;

use common::cluster::ControlPlane;
use common::kustomize;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// Applies `dir` (a kustomization) to `cp` and checks every object it built is on the server.
fn apply_and_read_back(cp: &ControlPlane, dir: &Path) {
    let d = dir.to_str().unwrap();
    let first = cp.kubectl_ok(&["apply", "--validate=strict", "-k", d]);
    let objects = kustomize::build(dir);
    assert!(!objects.is_empty());
    for o in &objects {
        let (api_version, kind, name) =
            (o["apiVersion"].as_str().unwrap(), o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap());
        let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
        if kind == "CustomResourceDefinition" {
            cp.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{name}")]);
        }
        assert!(
            cp.get(api_version, kind, ns, name).is_some(),
            "{d}: {kind} {ns}/{name} is not on the server:\n{first}"
        );
    }
    // A second apply changes nothing, and the server holds what the files say.
    let diff = cp.kubectl(&["diff", "-k", d]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{d}: kubectl diff after apply:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let second = cp.kubectl_ok(&["apply", "--validate=strict", "-k", d]);
    let changed: Vec<&str> = second.lines().filter(|l| !l.ends_with(" unchanged")).collect();
    assert!(changed.is_empty(), "{d}: a second apply changed {changed:?}");
}

#[test]
fn every_agent_variant_applies_to_a_bare_cluster() {
    for variant in ["crio", "containerd", "k3s", "rke2"] {
        let cp = ControlPlane::start();
        apply_and_read_back(&cp, &kustomize::repo(&format!("deploy/kubernetes/{variant}")));
    }
}

#[test]
fn the_api_alone_applies_to_a_bare_cluster() {
    let cp = ControlPlane::start();
    apply_and_read_back(&cp, &kustomize::repo("deploy/api"));
}

#[test]
fn the_openshift_variant_applies_where_the_windows_machine_config_operator_runs() {
    // On OpenShift the WMCO's namespace exists (its windows-instances ConfigMap lives there); this
    // variant carries no CRDs, because OpenShift has the real ones.
    let cp = ControlPlane::start();
    cp.install_crds();
    cp.namespace("openshift-windows-machine-config-operator");
    apply_and_read_back(&cp, &kustomize::repo("deploy/openshift"));
}

#[test]
fn the_monitoring_component_applies_with_the_prometheus_operators_crds() {
    let cp = ControlPlane::start();
    let crds = kustomize::repo("target/realparts/data/prometheus-operator-crd");
    assert!(crds.is_dir(), "{} is missing: run scripts/realparts.sh (scripts/test.sh does)", crds.display());
    for kind in ["podmonitors", "prometheusrules"] {
        let f = crds.join(format!("monitoring.coreos.com_{kind}.yaml"));
        cp.kubectl_ok(&["apply", "--server-side", "-f", f.to_str().unwrap()]);
    }
    cp.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    // A variant with the component added, as deploy/components/monitoring says to.
    let dir = tempfile::Builder::new().prefix("kustomize-").tempdir_in(kustomize::repo("target")).unwrap();
    fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../deploy/kubernetes/crio\n\
         components:\n- ../../deploy/components/monitoring\n",
    )
    .unwrap();
    apply_and_read_back(&cp, dir.path());
    let rules = cp.list("monitoring.coreos.com/v1", "PrometheusRule", "mirrorconf");
    let groups: Vec<&Value> = rules.iter().flat_map(|r| r["spec"]["groups"].as_array().unwrap().iter()).collect();
    assert!(!groups.is_empty(), "the alerts are on the server");
}
