//! `Image/cluster` allowedRegistries and blockedRegistries, proved with the real clients that enforce
//! them, on live registries on loopback: skopeo (containers/image) with the rendered policy.json,
//! and containerd (`ctr --hosts-dir`) with the rendered hosts.toml tree and its `_default` folder.
//! Assertions are on what the registries saw.

mod common;

use common::{make_tls, mirrorconf, oci_image, push_image, require_tool, Containerd, Registry, Tls};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn manifests(list: &str, scopes: &[&str], insecure: &[&str]) -> String {
    let quote = |v: &[&str]| v.iter().map(|h| format!("'{h}'")).collect::<Vec<_>>().join(", ");
    format!(
        "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    insecureRegistries: [{}]\n    {list}: [{}]\n",
        quote(insecure),
        quote(scopes)
    )
}

fn render(dir: &Path, root: &Path, text: &str, target: &str) -> Output {
    let m = dir.join("m.yaml");
    fs::write(&m, text).unwrap();
    mirrorconf(&["render", "--manifests", m.to_str().unwrap(), "--root", root.to_str().unwrap(), "--target", target])
}

/// `skopeo copy` of `reference` into a fresh folder, with the rendered policy and registries.conf.
fn copy(root: &Path, reference: &str) -> Output {
    copy_with(root, &root.join("etc/containers/registries.conf"), reference)
}

/// The same with another registries.conf: the signature policy alone decides.
fn copy_with(root: &Path, registries_conf: &Path, reference: &str) -> Output {
    let dest = tempfile::tempdir().unwrap();
    Command::new(require_tool("skopeo"))
        .env("HOME", root)
        .args(["--command-timeout", "60s", "--policy"])
        .arg(root.join("etc/containers/policy.json"))
        .arg("--registries-conf")
        .arg(registries_conf)
        .args(["copy", &format!("docker://{reference}")])
        .arg(format!("dir:{}", dest.path().join("image").display()))
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn skopeo_pulls_only_what_the_rendered_policy_json_allows() {
    let image = oci_image();
    let allowed = Registry::start("127.0.0.1", None);
    let outside = Registry::start("127.0.0.2", None);
    for r in [&allowed, &outside] {
        push_image(&image, &format!("{}/team/app:v1", r.host()), &[]);
    }
    let hosts = [allowed.host(), outside.host()];
    let insecure: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // Layer downloads (the pushes above only asked with HEAD).
    let blob = |r: &Registry| r.requests().iter().any(|q| q.starts_with("GET /v2/team/app/blobs/"));

    // allowedRegistries: the allowed registry serves the pull; the one outside is refused by the
    // signature policy before any layer is fetched.
    let out = render(dir.path(), &root, &manifests("allowedRegistries", &[&allowed.host()], &insecure), "linux");
    assert!(out.status.success(), "{}", stderr(&out));
    let ok = copy(&root, &format!("{}/team/app:v1", allowed.host()));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(blob(&allowed), "allowed registry log: {:?}", allowed.requests());
    let refused = copy(&root, &format!("{}/team/app:v1", outside.host()));
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("rejected"), "{}", stderr(&refused));
    assert!(!blob(&outside), "a refused image's layers were fetched: {:?}", outside.requests());

    // blockedRegistries: the reverse. registries.conf blocks the registry too (`blocked = true`), so
    // the signature policy is checked alone, with a registries.conf that only marks both insecure.
    let out = render(dir.path(), &root, &manifests("blockedRegistries", &[&outside.host()], &insecure), "linux");
    assert!(out.status.success(), "{}", stderr(&out));
    let refused = copy(&root, &format!("{}/team/app:v1", outside.host()));
    assert!(!refused.status.success(), "the rendered files let a blocked registry through");
    let plain = dir.path().join("insecure-only.conf");
    let tables: String = hosts.iter().map(|h| format!("[[registry]]\nlocation = \"{h}\"\ninsecure = true\n")).collect();
    fs::write(&plain, tables).unwrap();
    let refused = copy_with(&root, &plain, &format!("{}/team/app:v1", outside.host()));
    assert!(!refused.status.success(), "policy.json let a blocked registry through");
    assert!(stderr(&refused).contains("rejected"), "{}", stderr(&refused));
    assert!(!blob(&outside), "a blocked image's layers were fetched: {:?}", outside.requests());
    assert!(copy(&root, &format!("{}/team/app:v1", allowed.host())).status.success());
    assert!(copy_with(&root, &plain, &format!("{}/team/app:v1", allowed.host())).status.success());
}

#[test]
fn the_nodes_policy_json_is_adopted_and_given_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let own = "{\"default\": [{\"type\": \"insecureAcceptAnything\"}],\n \"transports\": {\"oci\": {\"\": [{\"type\": \"insecureAcceptAnything\"}]}}}\n";
    fs::create_dir_all(root.join("etc/containers")).unwrap();
    fs::write(root.join("etc/containers/policy.json"), own).unwrap();
    let policy_json = || fs::read_to_string(root.join("etc/containers/policy.json")).ok();

    // diff says what would change and what the MCO would do for it.
    let m = dir.path().join("m.yaml");
    fs::write(&m, manifests("blockedRegistries", &["bad.example.com"], &[])).unwrap();
    let out = mirrorconf(&["diff", "--manifests", m.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("+++ b/etc/containers/policy.json"), "{text}");
    assert!(text.contains("policy.json: the Machine Config Operator would do: a CRI-O reload, no drain"), "{text}");
    assert!(render(dir.path(), &root, &manifests("blockedRegistries", &["bad.example.com"], &[]), "linux")
        .status
        .success());
    let doc: serde_json::Value = serde_json::from_str(&policy_json().unwrap()).unwrap();
    assert_eq!(doc["transports"]["docker"]["bad.example.com"][0]["type"], "reject");
    assert_eq!(doc["transports"]["oci"][""][0]["type"], "insecureAcceptAnything");
    assert_eq!(fs::read_to_string(root.join("var/lib/mirrorconf/base/policy.json")).unwrap(), own);

    // Both lists gone: the node's own file, byte for byte.
    assert!(render(dir.path(), &root, &manifests("blockedRegistries", &[], &[]), "linux").status.success());
    assert_eq!(policy_json().as_deref(), Some(own));

    // A node without a policy.json gets one while a list is set, and none once it is not.
    let bare = dir.path().join("bare");
    assert!(render(dir.path(), &bare, &manifests("allowedRegistries", &["a.example.com"], &[]), "linux")
        .status
        .success());
    assert!(bare.join("etc/containers/policy.json").is_file());
    assert!(render(dir.path(), &bare, &manifests("allowedRegistries", &[], &[]), "linux").status.success());
    assert!(!bare.join("etc/containers/policy.json").exists());
}

#[test]
fn validate_warns_and_resolve_says_why_a_pull_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    let idms = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/team/app\n    mirrors: [elsewhere.example.com/team/app]\n---\n";
    fs::write(&m, format!("{idms}{}", manifests("allowedRegistries", &["quay.io/team"], &[]))).unwrap();
    let out =
        mirrorconf(&["validate", "--manifests", m.to_str().unwrap(), "--must-allow", "quay.io/team/mirrorconf:v1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(!e.contains("refuses quay.io/team/mirrorconf"), "{e}");
    assert!(e.contains("mirror \"elsewhere.example.com/team/app\" of the allowed source"), "{e}");
    let out = mirrorconf(&["validate", "--manifests", m.to_str().unwrap()]);
    assert!(stderr(&out).contains("allowedRegistries refuses registry.k8s.io/pause"), "{}", stderr(&out));

    let resolve = |image: &str| {
        let out = mirrorconf(&["resolve", image, "--manifests", m.to_str().unwrap(), "--output", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(resolve("quay.io/team/app:v1")["refused"], serde_json::Value::Null);
    let refused = resolve("docker.io/library/busybox:1");
    assert!(
        refused["refused"].as_str().unwrap().contains("policy.json) rejects docker.io/library/busybox"),
        "{refused}"
    );
}

#[test]
fn containerd_pulls_from_allowed_registries_and_never_contacts_one_outside() {
    let tls = make_tls(&["127.0.0.1", "127.0.0.2"]);
    let tls = || Some(Tls { cert: &tls.server_cert, key: &tls.server_key });
    let (allowed, outside) = (Registry::start("127.0.0.1", tls()), Registry::start("127.0.0.2", tls()));
    let image = oci_image();
    push_image(&image, &format!("{}/team/app:v1", allowed.host()), &[]);
    push_image(&image, &format!("{}/team/app:v1", outside.host()), &[]);
    push_image(&image, &format!("{}/mirror/team/app:v1", outside.host()), &[]);
    let plain = Registry::start("127.0.0.3", None);
    push_image(&image, &format!("{}/team/app:v1", plain.host()), &[]);
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tree = root.join("etc/containerd/certs.d");
    let insecure = [allowed.host(), outside.host()];
    let insecure: Vec<&str> = insecure.iter().map(String::as_str).collect();
    let seen = |r: &Registry| r.requests().len();
    let mut n = 0;
    let mut fetch = |reference: &str| {
        n += 1;
        containerd.fetch(&format!("ns{n}"), &tree, reference)
    };

    // Both allowed: each serves its own pull.
    let both = manifests("allowedRegistries", &[&allowed.host(), &outside.host()], &insecure);
    assert!(render(dir.path(), &root, &both, "containerd").status.success());
    let out = fetch(&format!("{}/team/app:v1", outside.host()));
    assert!(out.status.success(), "{}\n{}", stderr(&out), containerd.server.log_text());
    assert!(outside.saw("/v2/team/app/manifests/v1"), "{:?}", outside.requests());

    // Only the first allowed: the other one is never contacted, whether it has a folder or not.
    let one = manifests("allowedRegistries", &[&allowed.host()], &insecure);
    assert!(render(dir.path(), &root, &one, "containerd").status.success());
    assert!(tree.join("_default/hosts.toml").is_file());
    let out = fetch(&format!("{}/team/app:v1", allowed.host()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(allowed.saw("/v2/team/app/manifests/v1"), "{:?}", allowed.requests());
    let before = seen(&outside);
    let out = fetch(&format!("{}/team/app:v1", outside.host()));
    assert!(!out.status.success(), "a registry outside allowedRegistries served a pull");
    assert_eq!(seen(&outside), before, "contacted: {:?}", &outside.requests()[before..]);
    // A plain-HTTP registry with no folder at all: containerd's own default would reach it over
    // HTTP (it does for loopback addresses); `_default` keeps it from being contacted.
    let out = fetch(&format!("{}/team/app:v1", plain.host()));
    assert!(!out.status.success(), "a registry outside allowedRegistries served a pull");
    assert!(plain.requests().iter().all(|r| !r.starts_with("GET /v2/team/app/manifests")), "{:?}", plain.requests());

    // A mirror that an allowed source uses keeps working, though a direct pull of it is refused.
    let idms = format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: d}}\nspec:\n  imageDigestMirrors:\n  - source: {}/team/app\n    mirrors: [{}/mirror/team/app]\n---\n",
        allowed.host(),
        outside.host()
    );
    assert!(render(dir.path(), &root, &format!("{idms}{one}"), "containerd").status.success());
    let out = fetch(&format!("{}/team/app@{}", allowed.host(), image.manifest_digest));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        outside.saw(&format!("/v2/mirror/team/app/manifests/{}", image.manifest_digest)),
        "{:?}",
        outside.requests()
    );
    let before = seen(&outside);
    let out = fetch(&format!("{}/mirror/team/app@{}", outside.host(), image.manifest_digest));
    assert!(!out.status.success(), "a direct pull of a mirror outside allowedRegistries worked");
    assert_eq!(seen(&outside), before, "contacted: {:?}", &outside.requests()[before..]);
}
