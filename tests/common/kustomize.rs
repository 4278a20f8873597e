//! `kubectl kustomize`, run for real on the folders under deploy/. The tests need kubectl 1.27 or
//! newer (its built-in kustomize v5: components, `patches`, generator labels); a missing or older
//! kubectl fails them. scripts/test.sh builds it (scripts/realparts.sh), since Debian does not package it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest kubectl whose `kubectl kustomize` builds every variant.
pub const MIN_KUBECTL: (u64, u64) = (1, 27);

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// kubectl's path, after checking its version; panics (never skips) without it.
pub fn kubectl() -> PathBuf {
    let kubectl = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "kubectl is not on PATH: the deploy tests need kubectl {}.{} or newer (Debian does not package it)",
                MIN_KUBECTL.0, MIN_KUBECTL.1
            )
        });
    let out = Command::new(&kubectl).args(["version", "--client", "-o", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("`kubectl version --client -o json` gave no JSON ({e}): {out:?}"));
    let number = |k: &str| -> u64 {
        let digits: String =
            v["clientVersion"][k].as_str().unwrap_or("").chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or(0)
    };
    let (major, minor) = (number("major"), number("minor"));
    assert!(
        (major, minor) >= MIN_KUBECTL,
        "kubectl {major}.{minor} is too old: the deploy tests need kubectl {}.{} or newer (kustomize v5)",
        MIN_KUBECTL.0,
        MIN_KUBECTL.1
    );
    kubectl
}

/// The objects `kubectl kustomize DIR` prints, in order.
pub fn build(dir: &Path) -> Vec<Value> {
    let out = Command::new(kubectl()).arg("kustomize").arg(dir).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize {}:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    docs(&String::from_utf8(out.stdout).unwrap())
}

/// The documents of a multi-document YAML text, empty ones dropped.
pub fn docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{e}\n{text}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Builds a kustomization written in a temp folder inside the repository's target folder (kustomize
/// only follows relative paths); `{deploy}` in `text` stands for the path to deploy/ from there.
pub fn build_overlay(text: &str) -> Vec<Value> {
    let base = repo("target/kustomize-overlays");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let text = text.replace("{deploy}", "../../../deploy");
    std::fs::write(dir.path().join("kustomization.yaml"), &text).unwrap();
    build(dir.path())
}

pub fn of_kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|d| d["kind"] == kind).collect()
}

/// The pod templates of every Deployment and DaemonSet, with the workload's name.
pub fn pods(all: &[Value]) -> Vec<(&str, &Value)> {
    all.iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "DaemonSet")
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), &d["spec"]["template"]["spec"]))
        .collect()
}

pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap()).collect()).unwrap_or_default()
}
