//! The API under deploy/api against a real kube-apiserver (tests/common/cluster.rs): every CRD is
//! accepted and Established, every golden and example object is accepted, every validation rule
//! the CRDs carry refuses a breaking object with its own message, and the cross-object rules the
//! server cannot carry are refused by mirrorconf on objects the server accepted.

mod common;

use common::cluster::ControlPlane;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn yaml_docs(text: &str) -> Vec<Value> {
    common::kustomize::docs(text)
}

/// Server-side dry run: every check the server makes (schema, CEL, strict fields, admission),
/// nothing stored, so tests of this binary share one control plane.
fn dry_run(cp: &ControlPlane, object: &Value) -> Result<(), String> {
    let out = cp.kubectl_as(
        &cp.kubeconfig(),
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        Some(&object.to_string()),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn every_crd_is_established_and_every_golden_and_example_object_accepted() {
    let cp = ControlPlane::shared();
    let crds = cp.list("apiextensions.k8s.io/v1", "CustomResourceDefinition", "");
    let mut names: Vec<&str> = crds.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "imagecontentsourcepolicies.operator.openshift.io",
            "imagedigestmirrorsets.config.openshift.io",
            "images.config.openshift.io",
            "imagetagmirrorsets.config.openshift.io",
        ]
    );
    for crd in &crds {
        let conditions = crd["status"]["conditions"].as_array().unwrap();
        let status = |t: &str| conditions.iter().find(|c| c["type"] == t).map(|c| c["status"].clone());
        let name = &crd["metadata"]["name"];
        assert_eq!(status("Established"), Some(json!("True")), "{name}: {conditions:#?}");
        assert_eq!(status("NamesAccepted"), Some(json!("True")), "{name}: {conditions:#?}");
        // A schema the server cannot use structurally is still accepted, with this condition.
        assert_eq!(status("NonStructuralSchema"), None, "{name}: {conditions:#?}");
    }

    let mut files = Vec::new();
    for dir in ["tests/fixtures/golden", "tests/fixtures/cases"] {
        for e in fs::read_dir(repo(dir)).unwrap() {
            let case = e.unwrap().path();
            if case.join("expected").is_dir() {
                files.push(case.join("manifests.yaml"));
            }
        }
    }
    for e in fs::read_dir(repo("examples/manifests")).unwrap() {
        files.push(e.unwrap().path());
    }
    files.sort();
    assert!(files.len() > 20, "the golden cases and the examples: {files:?}");
    let mut checked = 0;
    for f in files {
        for object in yaml_docs(&fs::read_to_string(&f).unwrap()) {
            // The kinds mirrorconf reads; cases also carry unrelated objects it must skip.
            let kind = object["kind"].as_str().unwrap_or("");
            if ![
                "ImageDigestMirrorSet",
                "ImageTagMirrorSet",
                "ImageContentSourcePolicy",
                "Image",
                "ConfigMap",
                "Secret",
            ]
            .contains(&kind)
            {
                continue;
            }
            dry_run(cp, &object).unwrap_or_else(|e| {
                panic!("{}: {} {} refused:\n{e}", f.display(), object["kind"], object["metadata"]["name"])
            });
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} objects checked");
}

fn mirror_set(kind: &str, entry: Value) -> Value {
    let (api, field) = match kind {
        "ImageDigestMirrorSet" => ("config.openshift.io/v1", "imageDigestMirrors"),
        "ImageTagMirrorSet" => ("config.openshift.io/v1", "imageTagMirrors"),
        _ => ("operator.openshift.io/v1alpha1", "repositoryDigestMirrors"),
    };
    json!({"apiVersion": api, "kind": kind, "metadata": {"name": "rule-check"}, "spec": {field: [entry]}})
}

fn image(spec: Value) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"}, "spec": spec})
}

#[test]
fn each_rule_the_crds_carry_is_refused_by_the_server_with_its_message() {
    let cp = ControlPlane::shared();
    let many: Vec<String> = (0..1025).map(|i| format!("r{i}.corp")).collect();
    let long = format!("{}.corp", "a".repeat(252));
    // (what breaks, the object, what the server must say)
    let mut table: Vec<(String, Value, Vec<String>)> = Vec::new();
    let v = |parts: &[&str]| -> Vec<String> { parts.iter().map(|p| p.to_string()).collect() };
    for (kind, field) in [
        ("ImageDigestMirrorSet", "imageDigestMirrors"),
        ("ImageTagMirrorSet", "imageTagMirrors"),
        ("ImageContentSourcePolicy", "repositoryDigestMirrors"),
    ] {
        let at = |rest: &str| format!("spec.{field}[0].{rest}");
        table.push((
            format!("{kind}: source pattern"),
            mirror_set(kind, json!({"source": "quay.io/ns:tag", "mirrors": ["m.corp/ns"]})),
            v(&[&at("source"), "should match"]),
        ));
        table.push((
            format!("{kind}: mirror pattern (no wildcard)"),
            mirror_set(kind, json!({"source": "quay.io/ns", "mirrors": ["*.m.corp"]})),
            v(&[&at("mirrors[0]"), "should match"]),
        ));
        table.push((
            format!("{kind}: source required"),
            mirror_set(kind, json!({"mirrors": ["m.corp/ns"]})),
            v(&[&at("source"), "Required value"]),
        ));
        table.push((
            format!("{kind}: an unknown field"),
            mirror_set(
                kind,
                json!({"source": "quay.io/ns", "mirrors": ["m.corp/ns"], "mirrorSourcePolicies": "NeverContactSource"}),
            ),
            v(&["unknown field", "mirrorSourcePolicies"]),
        ));
        if kind != "ImageContentSourcePolicy" {
            table.push((
                format!("{kind}: mirrorSourcePolicy enum"),
                mirror_set(
                    kind,
                    json!({"source": "quay.io/ns", "mirrors": ["m.corp/ns"], "mirrorSourcePolicy": "Never"}),
                ),
                v(&[&at("mirrorSourcePolicy"), "Unsupported value", "NeverContactSource"]),
            ));
            table.push((
                format!("{kind}: mirrors is a set"),
                mirror_set(kind, json!({"source": "quay.io/ns", "mirrors": ["m.corp/ns", "m.corp/ns"]})),
                v(&[&at("mirrors[1]"), "Duplicate value"]),
            ));
        }
    }
    for list in ["insecureRegistries", "blockedRegistries", "allowedRegistries"] {
        let at = format!("spec.registrySources.{list}");
        let at = at.as_str();
        table.push((
            format!("Image: {list} at most 1024"),
            image(json!({"registrySources": {list: many}})),
            v(&[at, "Too many", "1024"]),
        ));
        table.push((
            format!("Image: {list} items not empty"),
            image(json!({"registrySources": {list: [""]}})),
            v(&[at, "at least 1"]),
        ));
        table.push((
            format!("Image: {list} items at most 256"),
            image(json!({"registrySources": {list: [long]}})),
            v(&[at, "256"]),
        ));
        table.push((
            format!("Image: {list} items in the source format"),
            image(json!({"registrySources": {list: ["quay.io/ns@sha256:0123"]}})),
            v(&[at, "each registry must be a valid hostname[:port][/path]"]),
        ));
    }
    table.push((
        "Image: allowed and blocked together (CEL)".into(),
        image(json!({"registrySources": {"allowedRegistries": ["a.io"], "blockedRegistries": ["b.io"]}})),
        v(&["spec.registrySources", "Only one of blockedRegistries or allowedRegistries may be set"]),
    ));
    table.push((
        "Image: search registries at least one".into(),
        image(json!({"registrySources": {"containerRuntimeSearchRegistries": []}})),
        v(&["spec.registrySources.containerRuntimeSearchRegistries", "at least 1"]),
    ));
    table.push((
        "Image: search registries a set".into(),
        image(json!({"registrySources": {"containerRuntimeSearchRegistries": ["quay.io", "quay.io"]}})),
        v(&["spec.registrySources.containerRuntimeSearchRegistries[1]", "Duplicate value"]),
    ));
    table.push((
        "Image: additionalTrustedCA needs a name".into(),
        image(json!({"additionalTrustedCA": {}})),
        v(&["spec.additionalTrustedCA.name", "Required value"]),
    ));
    table.push((
        "Image: an unknown field (registrysources)".into(),
        image(json!({"registrysources": {"blockedRegistries": ["b.io"]}})),
        v(&["unknown field", "registrysources"]),
    ));
    table.push((
        "Image: spec required".into(),
        json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"}}),
        v(&["spec", "Required value"]),
    ));

    let mut failures = Vec::new();
    for (what, object, said) in &table {
        match dry_run(cp, object) {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(message) => {
                if let Some(missing) = said.iter().find(|s| !message.contains(s.as_str())) {
                    failures.push(format!("{what}: the server's message lacks {missing:?}:\n{message}"));
                }
            }
        }
        // The same object with the fault mended is accepted, so the refusal is that rule's.
    }
    assert!(failures.is_empty(), "{} of {} rules:\n{}", failures.len(), table.len(), failures.join("\n"));
}

#[test]
fn cross_object_rules_are_refused_by_mirrorconf_on_objects_the_server_accepted() {
    let cp = ControlPlane::shared();
    // The invalid golden cases whose fault no single object carries (tests/crd_validation.rs).
    for (case, message) in [
        ("mco-06-conflicting-policy-rejected", "conflicting mirrorSourcePolicy"),
        ("mco-07-never-contact-self-mirror-rejected", "NeverContactSource"),
    ] {
        let objects =
            yaml_docs(&fs::read_to_string(repo(&format!("tests/fixtures/golden/{case}/manifests.yaml"))).unwrap());
        for o in &objects {
            cp.try_create(o.clone())
                .unwrap_or_else(|e| panic!("{case}: the server refused {}: {e}", o["metadata"]["name"]));
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(["check", "--kube", "--target", "linux"])
            .env("KUBECONFIG", cp.kubeconfig())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: check --kube on the server's objects:\n{stderr}");
        assert!(stderr.contains(message), "{case}: {stderr}");
        for o in &objects {
            let (api_version, kind, name) = (
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            );
            cp.delete(api_version, kind, o["metadata"]["namespace"].as_str().unwrap_or(""), name);
        }
    }
}
