//! Real client: skopeo (containers/image) reads the rendered registries.conf and pulls through the
//! mirror from a real CNCF distribution registry on 127.0.0.1. The assertions are on the registry's
//! access log, because a broken registries.conf makes clients silently use the source instead.

mod common;

use common::{free_port, oci_image, push_image, render_text, Registry};
use std::fs;
use std::path::Path;
use std::process::Output;

fn inspect(conf: &Path, reference: &str, home: &Path) -> Output {
    common::skopeo(home)
        .args(["--command-timeout", "60s", "--registries-conf"])
        .arg(conf)
        .args(["inspect", "--raw", &format!("docker://{reference}")])
        .output()
        .unwrap()
}

fn manifests(source: &str, mirror: &str, with_tags: bool, policy: &str) -> String {
    manifests_insecure(source, mirror, with_tags, policy, &[mirror.split('/').next().unwrap()])
}

/// IDMS (and optionally ITMS) for `source`, with `insecure` hosts allowed over plain HTTP.
fn manifests_insecure(source: &str, mirror: &str, with_tags: bool, policy: &str, insecure: &[&str]) -> String {
    let mut m = format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: app}}\nspec:\n  imageDigestMirrors:\n  - source: {source}\n    mirrors: [{mirror}]\n    mirrorSourcePolicy: {policy}\n---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    insecureRegistries: [{}]\n",
        insecure.iter().map(|h| format!("'{h}'")).collect::<Vec<_>>().join(", ")
    );
    if with_tags {
        m.push_str(&format!(
            "---\napiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {{name: app-tags}}\nspec:\n  imageTagMirrors:\n  - source: {source}\n    mirrors: [{mirror}]\n    mirrorSourcePolicy: {policy}\n"
        ));
    }
    m
}

#[test]
fn skopeo_uses_digest_only_and_tag_only_mirrors_as_rendered() {
    let registry = Registry::start("127.0.0.1", None);
    let image = oci_image();
    let mirror = format!("{}/mirror/team/app", registry.host());
    push_image(&image, &format!("{mirror}:v1"), &[]);
    // Nothing listens on this port: a pull that reaches the source fails at once.
    let source = format!("127.0.0.1:{}/team/app", free_port("127.0.0.1"));
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let conf = root.path().join("etc/containers/registries.conf");
    let by_digest = format!("{source}@{}", image.manifest_digest);
    let manifest_path = format!("/v2/mirror/team/app/manifests/{}", image.manifest_digest);

    // IDMS only: the digest reference is served by the mirror.
    render_text(&manifests(&source, &mirror, false, "AllowContactingSource"), root.path(), &[]);
    assert!(!registry.saw(&manifest_path));
    let out = inspect(&conf, &by_digest, home.path());
    assert!(out.status.success(), "digest pull through the mirror failed: {}", String::from_utf8_lossy(&out.stderr));
    let raw =
        fs::read(image.layout.join("blobs/sha256").join(image.manifest_digest.trim_start_matches("sha256:"))).unwrap();
    assert_eq!(out.stdout, raw, "the mirror's manifest came back");
    assert!(registry.saw(&manifest_path), "registry log: {:?}", registry.requests());

    // A tag reference never uses a digest-only mirror: it goes to the (dead) source and fails.
    let out = inspect(&conf, &format!("{source}:v1"), home.path());
    assert!(!out.status.success(), "a tag pull must not use a digest-only mirror");
    assert!(!registry.saw("/v2/mirror/team/app/manifests/v1"), "registry log: {:?}", registry.requests());

    // Adding an ITMS for the source lets the tag pull use the mirror.
    render_text(&manifests(&source, &mirror, true, "AllowContactingSource"), root.path(), &[]);
    let out = inspect(&conf, &format!("{source}:v1"), home.path());
    assert!(out.status.success(), "tag pull through the ITMS mirror failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(registry.saw("/v2/mirror/team/app/manifests/v1"), "registry log: {:?}", registry.requests());
}

#[test]
fn skopeo_never_contacts_a_blocked_source_but_still_uses_its_mirror() {
    let registry = Registry::start("127.0.0.1", None);
    let image = oci_image();
    let mirror = format!("{}/closed/app", registry.host());
    push_image(&image, &format!("{mirror}:v1"), &[]);
    // The source is a second live registry on another loopback address, reachable over plain HTTP.
    let source_registry = Registry::start("127.0.0.2", None);
    push_image(&image, &format!("{}/app:v1", source_registry.host()), &[]);
    let source = format!("{}/app", source_registry.host());
    let source_host = source_registry.host();
    let insecure = [registry.host(), source_host.clone()];
    let insecure: Vec<&str> = insecure.iter().map(String::as_str).collect();
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let conf = root.path().join("etc/containers/registries.conf");

    // Control: while the source may be contacted, a tag pull goes to it and succeeds.
    render_text(&manifests_insecure(&source, &mirror, false, "AllowContactingSource", &insecure), root.path(), &[]);
    let out = inspect(&conf, &format!("{source}:v1"), home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(source_registry.saw("/v2/app/manifests/v1"), "source log: {:?}", source_registry.requests());

    render_text(&manifests_insecure(&source, &mirror, false, "NeverContactSource", &insecure), root.path(), &[]);
    let before = source_registry.requests().len();
    let out = inspect(&conf, &format!("{source}@{}", image.manifest_digest), home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(registry.saw(&format!("/v2/closed/app/manifests/{}", image.manifest_digest)));
    let out = inspect(&conf, &format!("{source}:v1"), home.path());
    assert!(!out.status.success(), "a tag pull of a blocked source must fail");
    assert_eq!(
        source_registry.requests().len(),
        before,
        "the blocked source was contacted: {:?}",
        source_registry.requests()
    );
}
