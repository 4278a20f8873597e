use super::*;
use crate::model::load_text;
use std::path::Path;

fn policy(yaml: &str) -> Policy {
    Policy::from_inputs(&load_text(Path::new("t.yaml"), yaml).unwrap()).unwrap()
}

fn idms(entries: &str) -> String {
    format!("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: d}}\nspec:\n  imageDigestMirrors:\n{entries}")
}

fn render_one(p: &Policy) -> Vec<HostsFile> {
    render(p, None, &CaFiles::new()).unwrap()
}

#[test]
fn cut_down_keeps_the_part_before_the_source_path() {
    assert_eq!(cut_down("quay.io/my-org/image", "quay.io/remote-org/image"), "quay.io/my-org");
    assert_eq!(cut_down("m.io:8443/x/team/app", "reg:5000/team/app"), "m.io:8443/x");
    assert_eq!(cut_down("m.io/team/app", "reg/team/app"), "m.io");
    assert_eq!(cut_down("example.io/example", "registry.access.redhat.com"), "example.io/example");
    // The host is never cut, even when it equals a path component of the source.
    assert_eq!(cut_down("app/x", "q.io/app/x"), "app");
}

#[test]
fn windows_folders_never_hold_a_colon() {
    assert_eq!(Layout::Windows.dir_name("reg.corp:5000"), "reg.corp_5000_");
    assert_eq!(Layout::Linux.dir_name("reg.corp:5000"), "reg.corp:5000");
    assert_eq!(Layout::Windows.file_path("q.io"), "k/containerd/registries/q.io/hosts.toml");
    assert_eq!(Layout::Linux.file_path("q.io:1"), "etc/containerd/certs.d/q.io:1/hosts.toml");
}

#[test]
fn the_toml_filter_escapes_every_value() {
    let v = toml_filter(minijinja::Value::from("a\"b\\c\nd")).unwrap();
    let doc: toml_edit::DocumentMut = format!("k = {v}").parse().unwrap();
    assert_eq!(doc["k"].as_str(), Some("a\"b\\c\nd"));
    let list = toml_filter(minijinja::Value::from(vec!["pull", "re\"solve"])).unwrap();
    let doc: toml_edit::DocumentMut = format!("k = {list}").parse().unwrap();
    assert_eq!(doc["k"].as_array().unwrap().get(1).unwrap().as_str(), Some("re\"solve"));
}

#[test]
fn duplicate_mirrors_collapse_and_capabilities_union() {
    let yaml = format!(
        "{}---\napiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {{name: t}}\nspec:\n  imageTagMirrors:\n  - source: q.io/a\n    mirrors: [m.io/a]\n",
        idms("  - source: q.io/a\n    mirrors: [m.io/a, n.io/a]\n  - source: q.io/b\n    mirrors: [m.io/b]\n")
    );
    let files = render_one(&policy(&yaml));
    assert_eq!(files.len(), 1);
    let text = &files[0].text;
    assert_eq!(text.matches("[host.\"https://m.io/v2\"]").count(), 1, "{text}");
    assert!(text.contains("[host.\"https://m.io/v2\"]\n  capabilities = [\"pull\", \"resolve\"]"), "{text}");
    assert!(text.contains("[host.\"https://n.io/v2\"]\n  capabilities = [\"pull\"]"), "{text}");
}

#[test]
fn every_file_has_a_host_table_and_parses() {
    let p = policy(&format!(
        "{}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    blockedRegistries: [blocked.io]\n",
        idms("  - source: q.io\n    mirrors: [m.io]\n")
    ));
    let mut cas = CaFiles::new();
    cas.insert("ca-only.io:5000".into(), "ca.crt".into());
    let files = render(&p, None, &cas).unwrap();
    let hosts: Vec<_> = files.iter().map(|f| f.host.as_str()).collect();
    assert_eq!(hosts, ["blocked.io", "ca-only.io:5000", "q.io"]);
    for f in &files {
        let doc: toml_edit::DocumentMut = f.text.parse().unwrap();
        assert!(doc["host"].as_table_like().is_some_and(|t| !t.is_empty()), "{}", f.text);
    }
    let ca_only = &files[1].text;
    assert!(
        ca_only.contains("server = \"https://ca-only.io:5000/v2\"\n\noverride_path = true\nca = \"ca.crt\"\n"),
        "{ca_only}"
    );
    assert!(ca_only.contains("[host.\"https://ca-only.io:5000/v2\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n  ca = \"ca.crt\"\n"), "{ca_only}");
}

#[test]
fn cas_are_referenced_relative_on_mirrors_and_server() {
    let p = policy(&idms("  - source: q.io:5000/a\n    mirrors: [m.io:8443/x/a]\n"));
    let cas: CaFiles = [
        ("q.io:5000".to_string(), "q.io_5000.crt".to_string()),
        ("m.io:8443".to_string(), "m.io_8443.crt".to_string()),
    ]
    .into();
    let files = render(&p, None, &cas).unwrap();
    // The mirror registry has a CA too, so it gets its own folder as well.
    assert_eq!(files.iter().map(|f| f.host.as_str()).collect::<Vec<_>>(), ["m.io:8443", "q.io:5000"]);
    let text = &files[1].text;
    assert!(text.contains("override_path = true\nca = \"q.io_5000.crt\"\n"), "{text}");
    assert!(text.contains("  override_path = true\n  ca = \"m.io_8443.crt\"\n"), "{text}");
}

#[test]
fn wildcard_sources_are_skipped_with_a_warning() {
    let p = policy(&idms("  - source: '*.example.com'\n    mirrors: [m.io/ex]\n"));
    assert!(render_one(&p).is_empty());
    let w = warnings(&p);
    assert!(w.iter().any(|w| w.contains("is a wildcard")), "{w:?}");
}

#[test]
fn warns_when_sources_of_one_registry_would_share_mirrors() {
    let p = policy(&idms("  - source: q.io/a\n    mirrors: [m.io/a]\n  - source: q.io/b\n    mirrors: [n.io/b]\n"));
    let w = warnings(&p);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("registry q.io: sources [\"q.io/a\", \"q.io/b\"] have different mirrors"), "{w:?}");
    // Same cut-down mirrors for both sources: nothing goes to a wrong place.
    let p = policy(&idms("  - source: q.io/a\n    mirrors: [m.io/a]\n  - source: q.io/b\n    mirrors: [m.io/b]\n"));
    assert!(warnings(&p).is_empty(), "{:?}", warnings(&p));
}

#[test]
fn warns_when_a_mirror_does_not_end_with_the_source_path() {
    let p = policy(&idms("  - source: q.io/team/app\n    mirrors: [m.io/other/app-mirror]\n"));
    let w = warnings(&p);
    assert!(w[0].contains("containerd looks for q.io/team/app/... at m.io/other/app-mirror/team/app/..."), "{w:?}");
}

#[test]
fn credentials_come_from_the_pull_secret() {
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: pull-secret, namespace: openshift-config}}\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"m.io\":{{\"auth\":\"dTpw\"}}}}}}'\n",
        idms("  - source: q.io\n    mirrors: [m.io/x, n.io]\n")
    );
    let inputs = load_text(Path::new("t.yaml"), &yaml).unwrap();
    let p = Policy::from_inputs(&inputs).unwrap();
    let secret = PullSecret::from_inputs(&inputs).unwrap().unwrap();
    let f = &render(&p, Some(&secret), &CaFiles::new()).unwrap()[0];
    assert!(f.has_credentials);
    assert!(
        f.text.contains("  [host.\"https://m.io/v2/x\".header]\n    authorization = \"Basic dTpw\"\n"),
        "{}",
        f.text
    );
    assert_eq!(f.text.matches("authorization").count(), 1);
}

#[test]
fn windows_folders_merge_hosts_that_differ_only_in_case() {
    let yaml = format!(
        "{}---\napiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: b}}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/b\n    mirrors: [m2.io/b]\n",
        idms("  - source: Quay.io/a\n    mirrors: [m1.io/a]\n")
    );
    let p = policy(&yaml);
    // Windows: one lowercase folder holding the mirrors of both spellings.
    let files = render_for(Layout::Windows, &p, None, &CaFiles::new()).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].host, "quay.io");
    assert_eq!(Layout::Windows.file_path(&files[0].host), "k/containerd/registries/quay.io/hosts.toml");
    let doc: toml_edit::DocumentMut = files[0].text.parse().unwrap();
    let hosts: Vec<&str> = doc["host"].as_table_like().unwrap().iter().map(|(k, _)| k).collect();
    assert_eq!(hosts, ["https://m1.io/v2", "https://m2.io/v2"], "{}", files[0].text);
    assert_eq!(doc["server"].as_str(), Some("https://quay.io/v2"));
    // Linux keeps the hosts apart: its file system, and containerd's lookup, are case-sensitive.
    let linux: Vec<String> = render(&p, None, &CaFiles::new()).unwrap().into_iter().map(|f| f.host).collect();
    assert_eq!(linux, ["Quay.io", "quay.io"]);
    let w = warnings(&p);
    assert!(
        w.iter().any(|w| w.starts_with("registry hosts [\"Quay.io\", \"quay.io\"] differ only in case: Windows nodes")),
        "{w:?}"
    );
}

#[test]
fn a_file_that_does_not_parse_back_is_reported_without_its_text() {
    let secret = "c3VwZXJzZWNyZXQ6aHVudGVyMg==";
    let text = format!(
        "server = \"https://q.io/v2\"\n\n[host.\"https://m.io/v2\"]\n  capabilities = [\"pull\"]\n  [host.\"https://m.io/v2\".header]\n    authorization = \"Basic {secret}\n"
    );
    let e = parse_back("q.io", &text).unwrap_err().to_string();
    assert!(!e.contains(secret) && !e.contains("authorization") && !e.contains("Basic"), "{e}");
    assert!(e.starts_with("internal error: rendered hosts.toml for q.io does not parse back (line 6, column "), "{e}");
    assert!(parse_back("q.io", "server = \"https://q.io/v2\"\n").is_ok());
}

#[test]
fn warns_when_never_contact_source_covers_only_some_sources_of_a_registry() {
    let p = policy(&idms(
        "  - source: q.io/a\n    mirrors: [m.io/a]\n    mirrorSourcePolicy: NeverContactSource\n  - source: q.io/b\n    mirrors: [m.io/b]\n",
    ));
    let w = warnings(&p);
    assert_eq!(w, ["registry q.io: NeverContactSource on [\"q.io/a\"] applies to the whole registry on containerd and Windows nodes"]);
}
