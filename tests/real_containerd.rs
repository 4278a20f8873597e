//! Real client: Debian's containerd and `ctr content fetch --hosts-dir` read the rendered hosts.toml
//! trees (Windows layout and Linux containerd layout) and fetch from a TLS docker-registry on
//! 127.0.0.1 under the mirror's prefix. Assertions are on the registry's access log.

mod common;

use common::{free_port, make_tls, oci_image, push_image, render_text, Containerd, Registry, Tls};

fn manifests(source: &str, mirror: &str, mirror_host: &str, with_tags: bool) -> String {
    let mut m = format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: app}}\nspec:\n  imageDigestMirrors:\n  - source: {source}\n    mirrors: [{mirror}]\n---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    insecureRegistries: ['{mirror_host}']\n"
    );
    if with_tags {
        m.push_str(&format!(
            "---\napiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {{name: app-tags}}\nspec:\n  imageTagMirrors:\n  - source: {source}\n    mirrors: [{mirror}]\n"
        ));
    }
    m
}

#[test]
fn containerd_fetches_through_rendered_windows_and_linux_trees() {
    let tls = make_tls(&["127.0.0.1"]);
    let registry = Registry::start("127.0.0.1", Some(Tls { cert: &tls.server_cert, key: &tls.server_key }));
    let image = oci_image();
    let mirror_host = registry.host();
    push_image(&image, &format!("{mirror_host}/prefix/team/app:v1"), &[]);
    let containerd = Containerd::start();
    // Nothing listens on the source: anything that reaches it fails.
    let source = format!("127.0.0.1:{}/team/app", free_port("127.0.0.1"));
    let mirror = format!("{mirror_host}/prefix/team/app");
    let digest_manifest = format!("/v2/prefix/team/app/manifests/{}", image.manifest_digest);

    for (n, (target, tree)) in
        [("windows", "k/containerd/registries"), ("containerd", "etc/containerd/certs.d")].into_iter().enumerate()
    {
        let root = tempfile::tempdir().unwrap();
        let hosts_dir = root.path().join(tree);
        let before = registry.requests().len();

        render_text(&manifests(&source, &mirror, &mirror_host, false), root.path(), &["--target", target]);
        let out =
            containerd.fetch(&format!("{target}-digest"), &hosts_dir, &format!("{source}@{}", image.manifest_digest));
        assert!(
            out.status.success(),
            "{target}: digest fetch failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            containerd.server.log_text()
        );
        let seen = &registry.requests()[before..];
        assert!(
            seen.iter().any(|r| r.contains(&digest_manifest)),
            "{target}: the mirror under its prefix was not used: {seen:?}"
        );

        // IDMS only: a tag is never resolved on a pull-only mirror.
        let before = registry.requests().len();
        let out = containerd.fetch(&format!("{target}-tag"), &hosts_dir, &format!("{source}:v1"));
        assert!(!out.status.success(), "{target}: a tag fetch must not use a digest-only mirror");
        let seen = &registry.requests()[before..];
        assert!(!seen.iter().any(|r| r.contains("/manifests/v1")), "{target}: {seen:?}");

        // With the ITMS the same mirror may resolve tags.
        render_text(&manifests(&source, &mirror, &mirror_host, true), root.path(), &["--target", target]);
        let out = containerd.fetch(&format!("{target}-tag2-{n}"), &hosts_dir, &format!("{source}:v1"));
        assert!(
            out.status.success(),
            "{target}: tag fetch through the ITMS mirror failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = &registry.requests()[before..];
        assert!(seen.iter().any(|r| r.contains("/v2/prefix/team/app/manifests/v1")), "{target}: {seen:?}");
    }
}
