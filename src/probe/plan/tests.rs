use super::*;
use crate::fileset::{FileSet, MODE_PUBLIC};

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn auths() -> Auths {
    let json = br#"{"auths":{"m.local:5000/team":{"auth":"dTpw"}}}"#;
    Auths { secret: Some(PullSecret::from_json(json).unwrap()), from: "the pull secret".into() }
}

fn linux_files() -> NodeFiles {
    let conf = r#"
[[registry]]
  location = "quay.io/team"
  blocked = true

  [[registry.mirror]]
    location = "m.local:5000/team"
    pull-from-mirror = "digest-only"

  [[registry.mirror]]
    location = "plain.local/team"
    insecure = true
    pull-from-mirror = "tag-only"
"#;
    let mut set = FileSet::new();
    set.insert(registries_conf::PATH, conf, MODE_PUBLIC).unwrap();
    set.insert("etc/docker/certs.d/m.local:5000/ca.crt", "docker", MODE_PUBLIC).unwrap();
    set.insert("etc/docker/certs.d/m.local:5000/client.cert", "not a CA", MODE_PUBLIC).unwrap();
    set.insert("etc/containers/certs.d/plain.local/a.crt", "containers", MODE_PUBLIC).unwrap();
    set.insert("etc/docker/certs.d/plain.local/b.crt", "shadowed", MODE_PUBLIC).unwrap();
    NodeFiles::Rendered(set)
}

#[test]
fn linux_endpoints_carry_what_containers_image_would_use() {
    let plan = plan(&linux_files(), Target::Linux, None, &auths()).unwrap();
    let [m, plain] = &plan.rows[..] else { panic!("{plan:?}") };
    assert_eq!((m.registry.as_str(), m.endpoint.as_str()), ("quay.io/team", "m.local:5000/team"));
    assert_eq!((m.probe.host.as_str(), m.probe.port, m.probe.https), ("m.local", 5000, true));
    assert_eq!(
        m.probe.cas,
        [CaFile { path: "/etc/docker/certs.d/m.local:5000/ca.crt".into(), pem: b"docker".to_vec() }]
    );
    assert_eq!(m.probe.credentials, Some(Credentials { user: "u".into(), password: "p".into() }));
    assert_eq!(
        (plain.probe.skip_verify, plain.probe.http_fallback, plain.probe.credentials.is_none()),
        (true, true, true)
    );
    let paths: Vec<&str> = plain.probe.cas.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/etc/containers/certs.d/plain.local/a.crt"], "the first folder that exists, alone");
    assert_eq!(plan.skipped, ["quay.io/team: the source is blocked (NeverContactSource or blockedRegistries)"]);
}

#[test]
fn with_an_image_the_manifest_is_asked_as_the_runtime_would() {
    let image = ImageRef::parse(&format!("quay.io/team/app:v1@{D}")).unwrap();
    let plan = plan(&linux_files(), Target::Linux, Some(&image), &auths()).unwrap();
    let [m] = &plan.rows[..] else { panic!("{plan:?}") };
    let manifest = m.probe.manifest.as_ref().unwrap();
    assert_eq!((manifest.path.as_str(), manifest.by_digest), (format!("/v2/team/app/manifests/{D}").as_str(), true));
    assert_eq!(manifest.repository, "team/app");
    assert!(plan.skipped.iter().any(|s| s.contains("tag-only")), "{:?}", plan.skipped);
}

#[test]
fn containerd_endpoints_skip_names_that_never_resolve() {
    let mut set = FileSet::new();
    let text = r#"server = "https://q.local:5000/v2"
override_path = true
ca = "q.local_5000_.crt"

[host."https://m.local:5000/v2/team"]
  capabilities = ["pull"]
  override_path = true
  ca = "m.local_5000_.crt"
  skip_verify = true
  [host."https://m.local:5000/v2/team".header]
    authorization = "Basic dTI6cDI="
"#;
    set.insert("k/containerd/registries/q.local_5000_/hosts.toml", text, MODE_PUBLIC).unwrap();
    set.insert("k/containerd/registries/q.local_5000_/m.local_5000_.crt", "pem", MODE_PUBLIC).unwrap();
    let refused = "server = \"https://refused-by-allowedregistries.invalid/v2\"\n[host.\"https://refused-by-allowedregistries.invalid/v2\"]\n";
    set.insert("k/containerd/registries/_default/hosts.toml", refused, MODE_PUBLIC).unwrap();
    let plan = plan(&NodeFiles::Rendered(set), Target::Windows, None, &auths()).unwrap();
    let endpoints: Vec<(&str, &str)> = plan.rows.iter().map(|r| (r.registry.as_str(), r.endpoint.as_str())).collect();
    assert_eq!(
        endpoints,
        [("q.local:5000", "https://m.local:5000/v2/team"), ("q.local:5000", "https://q.local:5000/v2")]
    );
    let m = &plan.rows[0].probe;
    assert_eq!(m.cas[0].path, "/k/containerd/registries/q.local_5000_/m.local_5000_.crt");
    assert_eq!((m.skip_verify, m.http_fallback), (true, false), "containerd never falls back to plain HTTP");
    assert_eq!(m.credentials, Some(Credentials { user: "u2".into(), password: "p2".into() }), "the header wins");
    assert!(plan.rows[1].probe.cas.is_empty(), "a missing CA file gives the system roots only");
    assert_eq!(plan.skipped.len(), 2, "{:?}", plan.skipped);
    assert!(plan.skipped.iter().all(|s| s.contains("never resolves")));
}

#[test]
fn hosts_and_ports() {
    assert_eq!(split_host("m.local:5000", true), ("m.local".into(), 5000));
    assert_eq!(split_host("m.local", true), ("m.local".into(), 443));
    assert_eq!(split_host("m.local", false), ("m.local".into(), 80));
    assert_eq!(split_host("[::1]:5000", true), ("::1".into(), 5000));
    assert_eq!(split_host("m.local:x", true), ("m.local:x".into(), 443));
    assert_eq!(registry_of_dir("reg.local_5000_", Layout::Windows), "reg.local:5000");
    assert_eq!(registry_of_dir("my_reg_", Layout::Windows), "my_reg_");
    assert_eq!(registry_of_dir("reg.local:5000", Layout::Linux), "reg.local:5000");
    assert!(never_resolves("refused-by-allowedregistries.invalid") && !never_resolves("invalid.example"));
}
