//! `mirrorconf resolve` against what skopeo (containers/image) really tries, and `mirrorconf diff`
//! against what `render` then really writes.

mod common;

use common::{mirrorconf, render_text, Registry};
use serde_json::Value;
use std::fs;
use std::path::Path;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// Three live registries that hold no image: skopeo tries every endpoint in turn and each fails
/// with "manifest unknown", so its debug log lists the whole order.
fn policy(source: &str, m1: &str, m2: &str, tag_mirror: &str, blocked: bool, insecure: &[String]) -> String {
    let never = if blocked { "    mirrorSourcePolicy: NeverContactSource\n" } else { "" };
    format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: d}}\nspec:\n  imageDigestMirrors:\n  - source: {source}\n    mirrors: [{m1}, {m2}]\n{never}---\n\
         apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {{name: t}}\nspec:\n  imageTagMirrors:\n  - source: {source}\n    mirrors: [{tag_mirror}]\n{never}---\n\
         apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    insecureRegistries: [{}]\n",
        insecure.iter().map(|h| format!("'{h}'")).collect::<Vec<_>>().join(", ")
    )
}

/// What skopeo tried, in order, from its `--debug` log.
fn skopeo_tries(conf: &Path, reference: &str) -> Vec<String> {
    let home = tempfile::tempdir().unwrap();
    let out = common::skopeo(home.path())
        .args(["--debug", "--command-timeout", "60s", "--registries-conf"])
        .arg(conf)
        .args(["inspect", "--raw", &format!("docker://{reference}")])
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing holds the image, yet skopeo succeeded");
    let log = String::from_utf8_lossy(&out.stderr);
    // logrus quotes the message: msg="Trying to access \"<reference>\"". A blocked source is
    // listed too, then refused without a connection ("... failed: registry ... is blocked").
    let quoted = |line: &str, after: &str| {
        line.split_once(after).and_then(|(_, rest)| rest.split_once(r#"\""#)).map(|(r, _)| r.to_string())
    };
    let blocked: Vec<String> =
        log.lines().filter(|l| l.contains("is blocked in")).filter_map(|l| quoted(l, r#"Accessing \""#)).collect();
    log.lines().filter_map(|l| quoted(l, r#"Trying to access \""#)).filter(|r| !blocked.contains(r)).collect()
}

fn resolve(manifests: &Path, reference: &str) -> Value {
    let out = mirrorconf(&["resolve", reference, "--manifests", manifests.to_str().unwrap(), "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pulls(v: &Value) -> Vec<String> {
    v["endpoints"].as_array().unwrap().iter().map(|e| e["pull"].as_str().unwrap().to_string()).collect()
}

#[test]
fn resolve_lists_what_skopeo_really_tries_in_that_order() {
    let regs: Vec<Registry> =
        ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().map(|ip| Registry::start(ip, None)).collect();
    let hosts: Vec<String> = regs.iter().map(Registry::host).collect();
    let source = format!("{}/team/app", hosts[2]);
    let (m1, m2, tm) = (format!("{}/m1/app", hosts[0]), format!("{}/m2/app", hosts[1]), format!("{}/t/app", hosts[1]));
    for blocked in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("m.yaml");
        let text = policy(&source, &m1, &m2, &tm, blocked, &hosts);
        fs::write(&manifests, &text).unwrap();
        let root = dir.path().join("root");
        render_text(&text, &root, &[]);
        let conf = root.join("etc/containers/registries.conf");
        for reference in [format!("{source}@{DIGEST}"), format!("{source}:v1")] {
            let expected = pulls(&resolve(&manifests, &reference));
            assert!(!expected.is_empty());
            let before: Vec<usize> = regs.iter().map(|r| r.requests().len()).collect();
            let tried = skopeo_tries(&conf, &reference);
            assert_eq!(tried, expected, "blocked={blocked} {reference}");
            // And the registries saw it: each endpoint's registry got a manifest request; the
            // blocked source got none.
            for (i, r) in regs.iter().enumerate() {
                let asked = r.requests().len() > before[i];
                let listed = expected.iter().any(|p| p.starts_with(&hosts[i]));
                assert_eq!(
                    asked,
                    listed,
                    "registry {} asked={asked} listed={listed} for {reference}: {:?}",
                    hosts[i],
                    r.requests()
                );
            }
        }
    }
}

#[test]
fn resolve_explains_skips_and_normalises_docker_hub() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m.yaml");
    fs::write(&manifests, policy("docker.io/library/busybox", "m1.local/bb", "m2.local/bb", "t.local/bb", true, &[]))
        .unwrap();
    let v = resolve(&manifests, "busybox:1.36");
    assert_eq!(v["reference"], "docker.io/library/busybox:1.36");
    assert_eq!(pulls(&v), vec!["t.local/bb:1.36"]);
    let skipped: Vec<&str> = v["skipped"].as_array().unwrap().iter().map(|s| s["why"].as_str().unwrap()).collect();
    assert!(skipped.iter().filter(|w| w.contains("digest-only")).count() == 2, "{skipped:?}");
    assert!(skipped.iter().any(|w| w.contains("blocked")), "{skipped:?}");
    let text = mirrorconf(&["resolve", "busybox:1.36", "--manifests", manifests.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1. t.local/bb:1.36") && text.contains("skipped: docker.io/library/busybox:1.36"), "{text}");
    // Windows: containerd uses only hosts with the resolve capability for a tag.
    let out = mirrorconf(&[
        "resolve",
        "busybox:1.36",
        "--manifests",
        manifests.to_str().unwrap(),
        "--target",
        "windows",
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pulls(&v)[0], "https://t.local/v2/bb/library/busybox/manifests/1.36", "{v}");
    let bad = mirrorconf(&["resolve", "Not/A/Ref", "--manifests", manifests.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("image reference \"Not/A/Ref\""));
}

#[test]
fn diff_shows_what_render_writes_and_classifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let base = "# the admin's file\nunqualified-search-registries = [\"registry.access.redhat.com\"]\n";
    fs::create_dir_all(root.join("etc/containers")).unwrap();
    fs::write(root.join("etc/containers/registries.conf"), base).unwrap();
    let one = dir.path().join("one.yaml");
    fs::write(&one, "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/a\n    mirrors: [m.local/a]\n").unwrap();
    let r = root.to_str().unwrap();
    let diff = |m: &Path, extra: &[&str]| {
        let mut args = vec!["diff", "--manifests", m.to_str().unwrap(), "--root", r];
        args.extend_from_slice(extra);
        mirrorconf(&args)
    };
    // Appending a digest-only mirror: the MCO would only reload.
    let out = diff(&one, &["--output", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(1), "changes with --exit-code");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["registries_conf"]["mco"], "reload", "{v}");
    let d = v["files"][0]["diff"].as_str().unwrap();
    assert!(d.contains("+++ b/etc/containers/registries.conf") && d.contains("+location = \"m.local/a\""), "{d}");
    assert!(!root.join("var/lib/mirrorconf").exists(), "diff wrote something");
    assert_eq!(fs::read_to_string(root.join("etc/containers/registries.conf")).unwrap(), base);

    // After render, nothing is left to show; the diff predicted exactly what was written.
    let predicted = d.to_string();
    let out = mirrorconf(&["render", "--manifests", one.to_str().unwrap(), "--root", r]);
    assert!(out.status.success());
    let out = diff(&one, &["--exit-code"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no changes"));
    let written = fs::read_to_string(root.join("etc/containers/registries.conf")).unwrap();
    for line in predicted.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")) {
        assert!(written.contains(&line[1..]), "{line:?} not in the written file");
    }

    // Removing the mirror set: the MCO would drain and reboot; mirrorconf reloads.
    let none = dir.path().join("none.yaml");
    fs::write(&none, "apiVersion: v1\nkind: List\nitems: []\n").unwrap();
    let out = diff(&none, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cordon, drain and reboot") && text.contains("removes the registry \"quay.io/a\""), "{text}");
    assert!(text.contains("mirrorconf: writes the file atomically and reloads CRI-O"), "{text}");
}
