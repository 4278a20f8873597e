//! Real clients over TLS: a docker-registry on 127.0.0.1 with a certificate from a test CA that only
//! the rendered files carry. skopeo must trust it through `/etc/docker/certs.d/<host:port>/ca.crt`,
//! containerd through the relative `ca` next to the Windows hosts.toml; both must fail without it.

mod common;

use common::{free_port, make_tls, oci_image, push_image, render_text, Containerd, Registry, Tls};
use std::fs;
use std::path::Path;

fn manifests(source: &str, mirror: &str, ca_key: &str, ca_pem: Option<&str>) -> String {
    let mut m = format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: app}}\nspec:\n  imageDigestMirrors:\n  - source: {source}\n    mirrors: [{mirror}]\n---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: registry-cas}}\n"
    );
    if let Some(pem) = ca_pem {
        let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
        m.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: registry-cas, namespace: openshift-config}}\ndata:\n  {ca_key}: |\n{indented}"
        ));
    }
    m
}

struct Setup {
    registry: Registry,
    image: common::OciImage,
    source: String,
    mirror: String,
    ca_key: String,
    ca_pem: String,
    _tls: common::TlsFiles,
}

fn setup() -> Setup {
    let tls = make_tls(&["127.0.0.1"]);
    let registry = Registry::start("127.0.0.1", Some(Tls { cert: &tls.server_cert, key: &tls.server_key }));
    let image = oci_image();
    push_image(&image, &format!("{}/mirror/app:v1", registry.host()), &[]);
    Setup {
        source: format!("127.0.0.1:{}/app", free_port("127.0.0.1")),
        mirror: format!("{}/mirror/app", registry.host()),
        ca_key: format!("127.0.0.1..{}", registry.addr.port()),
        ca_pem: fs::read_to_string(&tls.ca_cert).unwrap(),
        registry,
        image,
        _tls: tls,
    }
}

#[test]
fn skopeo_trusts_the_mirror_through_the_rendered_certs_d() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    render_text(&manifests(&s.source, &s.mirror, &s.ca_key, Some(&s.ca_pem)), root.path(), &["--target", "linux"]);
    let cert_dir = root.path().join(format!("etc/docker/certs.d/{}", s.registry.host()));
    assert!(cert_dir.join("ca.crt").is_file());
    let inspect = |cert_dir: &Path| {
        common::skopeo(home.path())
            .args(["--command-timeout", "60s", "--registries-conf"])
            .arg(root.path().join("etc/containers/registries.conf"))
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(cert_dir)
            .arg(format!("docker://{}@{}", s.source, s.image.manifest_digest))
            .output()
            .unwrap()
    };
    let manifest = format!("/v2/mirror/app/manifests/{}", s.image.manifest_digest);

    let empty = tempfile::tempdir().unwrap();
    let out = inspect(empty.path());
    assert!(!out.status.success(), "without the CA the mirror must not be trusted");
    assert!(!s.registry.saw(&manifest));

    let out = inspect(&cert_dir);
    assert!(out.status.success(), "with the rendered CA: {}", String::from_utf8_lossy(&out.stderr));
    assert!(s.registry.saw(&manifest), "{:?}", s.registry.requests());
}

#[test]
fn containerd_trusts_the_mirror_through_the_relative_ca_in_the_windows_tree() {
    let s = setup();
    let containerd = Containerd::start();
    let root = tempfile::tempdir().unwrap();
    let hosts_dir = root.path().join("k/containerd/registries");
    let reference = format!("{}@{}", s.source, s.image.manifest_digest);
    let manifest = format!("/v2/mirror/app/manifests/{}", s.image.manifest_digest);

    render_text(&manifests(&s.source, &s.mirror, &s.ca_key, Some(&s.ca_pem)), root.path(), &["--target", "windows"]);
    let source_dir = hosts_dir.join(format!("127.0.0.1_{}_", s.source.split([':', '/']).nth(1).unwrap()));
    let ca_file = format!("127.0.0.1_{}_.crt", s.registry.addr.port());
    assert!(source_dir.join(&ca_file).is_file(), "the CA sits next to the hosts.toml that uses it");
    let text = fs::read_to_string(source_dir.join("hosts.toml")).unwrap();
    assert!(text.contains(&format!("ca = \"{ca_file}\"")), "{text}");

    let out = containerd.fetch("with-ca", &hosts_dir, &reference);
    assert!(out.status.success(), "fetch with the CA failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(s.registry.saw(&manifest), "{:?}", s.registry.requests());

    // The CA ConfigMap is gone: the CA files go with it and TLS verification fails.
    render_text(&manifests(&s.source, &s.mirror, &s.ca_key, None), root.path(), &["--target", "windows"]);
    assert!(!source_dir.join(&ca_file).exists(), "a CA file mirrorconf wrote is removed with its key");
    let before = s.registry.requests().len();
    let out = containerd.fetch("without-ca", &hosts_dir, &reference);
    assert!(!out.status.success(), "without the CA containerd must refuse the mirror's certificate");
    assert_eq!(s.registry.requests().len(), before);
}
