//! The command line as a user meets it: exit codes, nothing written on bad input, unchanged files
//! left alone, ownership-aware removal, and adoption of the node's own registries.conf.

mod common;

use common::{mirrorconf, tree};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const IDMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [m.corp/ns]\n  - source: reg.corp:5000/x\n    mirrors: [m.corp/x]\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn render(manifests: &str, root: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["render", "--manifests", manifests, "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    mirrorconf(&args)
}

#[test]
fn validate_exit_codes_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", IDMS);
    let out = mirrorconf(&["validate", "--manifests", &good]);
    assert_eq!(out.status.code(), Some(0));
    let bad =
        write(dir.path(), "bad.yaml", &IDMS.replace("m.corp/ns", "M.corp/NS").replace("reg.corp:5000/x", "reg corp"));
    let out = mirrorconf(&["validate", "--manifests", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.imageDigestMirrors[0].mirrors[0] = \"M.corp/NS\""), "{stderr}");
    assert!(stderr.contains("spec.imageDigestMirrors[1].source = \"reg corp\""), "{stderr}");
    let shared = write(dir.path(), "shared.yaml", &IDMS.replace("reg.corp:5000/x", "quay.io/other"));
    let out = mirrorconf(&["validate", "--manifests", &shared]);
    assert_eq!(out.status.code(), Some(0), "a registry-level limitation is a warning, not a failure");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning (containerd and Windows nodes): registry quay.io"));
    let out = mirrorconf(&["validate", "--manifests", "/nonexistent/path"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn refused_input_writes_nothing_and_keeps_the_last_good_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.yaml", IDMS);
    assert!(render(&m, root.path(), &["--target", "linux", "--target", "windows"]).status.success());
    let before: Vec<(String, Vec<u8>)> =
        tree(root.path()).into_iter().map(|f| (f.clone(), fs::read(root.path().join(&f)).unwrap())).collect();
    write(dir.path(), "m.yaml", &format!("{IDMS}  - source: q.io\n    mirrors: ['*.bad']\n"));
    let out = render(&m, root.path(), &["--target", "linux", "--target", "windows"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"));
    let after: Vec<(String, Vec<u8>)> =
        tree(root.path()).into_iter().map(|f| (f.clone(), fs::read(root.path().join(&f)).unwrap())).collect();
    assert_eq!(before, after);
    let out = render(&m, root.path(), &["--base", "/nonexistent/registries.conf"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unchanged_files_are_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.yaml", IDMS);
    let args = ["--target", "linux", "--target", "containerd", "--target", "windows"];
    assert!(render(&m, root.path(), &args).status.success());
    let stamp = |f: &str| {
        let md = fs::metadata(root.path().join(f)).unwrap();
        (md.ino(), md.mtime_nsec(), md.mtime())
    };
    let files: Vec<String> = tree(root.path());
    let before: Vec<_> = files.iter().map(|f| stamp(f)).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = render(&m, root.path(), &args);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wrote"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(files.iter().map(|f| stamp(f)).collect::<Vec<_>>(), before);
}

#[test]
fn the_last_mirror_of_a_host_takes_its_folder_but_not_foreign_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "etc/containerd/certs.d/foreign.io/hosts.toml", "server = \"https://foreign.io\"\n");
    let m = write(dir.path(), "m.yaml", IDMS);
    let args = ["--target", "containerd", "--target", "windows"];
    assert!(render(&m, root.path(), &args).status.success());
    assert!(root.path().join("k/containerd/registries/reg.corp_5000_/hosts.toml").exists());
    assert!(root.path().join("etc/containerd/certs.d/reg.corp:5000/hosts.toml").exists());
    // Drop the reg.corp:5000 source: its folders go, quay.io's stay, the foreign one is untouched.
    write(dir.path(), "m.yaml", &IDMS.replace("  - source: reg.corp:5000/x\n    mirrors: [m.corp/x]\n", ""));
    let out = render(&m, root.path(), &args);
    assert!(out.status.success());
    assert!(!root.path().join("k/containerd/registries/reg.corp_5000_").exists());
    assert!(!root.path().join("etc/containerd/certs.d/reg.corp:5000").exists());
    assert!(root.path().join("k/containerd/registries/quay.io/hosts.toml").exists());
    assert!(root.path().join("etc/containerd/certs.d/foreign.io/hosts.toml").exists());
    // No mirrors at all: every file mirrorconf made is gone, the foreign one stays.
    write(dir.path(), "m.yaml", "apiVersion: v1\nkind: List\nitems: []\n");
    assert!(render(&m, root.path(), &args).status.success());
    let left: Vec<String> = tree(root.path()).into_iter().filter(|f| !f.starts_with("var/lib/mirrorconf/")).collect();
    assert_eq!(left, ["etc/containerd/certs.d/foreign.io/hosts.toml"]);
}

#[test]
fn the_nodes_registries_conf_is_adopted_and_restored_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let original = "# from the node image\nunqualified-search-registries = ['registry.access.redhat.com', 'docker.io']\nshort-name-mode = \"enforcing\"\n\n[aliases]\n\"ubi\" = \"registry.access.redhat.com/ubi9\"\n";
    write(root.path(), "etc/containers/registries.conf", original);
    let m = write(dir.path(), "m.yaml", IDMS);
    assert!(render(&m, root.path(), &[]).status.success());
    let live = fs::read_to_string(root.path().join("etc/containers/registries.conf")).unwrap();
    assert!(live.starts_with(original) && live.contains("m.corp/ns"), "{live}");
    assert_eq!(fs::read_to_string(root.path().join("var/lib/mirrorconf/base/registries.conf")).unwrap(), original);
    // A second render does not adopt mirrorconf's own output.
    assert!(render(&m, root.path(), &[]).status.success());
    assert_eq!(fs::read_to_string(root.path().join("var/lib/mirrorconf/base/registries.conf")).unwrap(), original);
    write(dir.path(), "m.yaml", "apiVersion: v1\nkind: List\nitems: []\n");
    assert!(render(&m, root.path(), &[]).status.success());
    assert_eq!(fs::read_to_string(root.path().join("etc/containers/registries.conf")).unwrap(), original);
}

#[test]
fn ca_folders_follow_the_configmap_and_foreign_ones_are_never_touched() {
    let cert =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/certs/test-ca.crt")).unwrap();
    let indented: String = cert.lines().map(|l| format!("    {l}\n")).collect();
    let with_keys = |keys: &[&str]| {
        let mut m = String::from("apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  additionalTrustedCA: {name: cas}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cas, namespace: openshift-config}\ndata:\n");
        for k in keys {
            m.push_str(&format!("  {k}: |\n{indented}"));
        }
        m
    };
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "etc/docker/certs.d/other.corp:5000/ca.crt", "someone else's");
    write(root.path(), "etc/docker/certs.d/admin.corp/ca.crt", "the admin's own CA");
    let m = write(dir.path(), "m.yaml", &with_keys(&["reg.corp..5000", "admin.corp"]));
    let out = render(&m, root.path(), &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: kept") && stderr.contains("admin.corp/ca.crt"), "{stderr}");
    assert_eq!(
        fs::read_to_string(root.path().join("etc/docker/certs.d/admin.corp/ca.crt")).unwrap(),
        "the admin's own CA"
    );
    assert_eq!(
        fs::read_to_string(root.path().join("etc/docker/certs.d/reg.corp:5000/ca.crt")).unwrap().trim(),
        cert.trim()
    );

    write(dir.path(), "m.yaml", &with_keys(&["admin.corp"]));
    assert!(render(&m, root.path(), &[]).status.success());
    assert!(!root.path().join("etc/docker/certs.d/reg.corp:5000").exists(), "its own folder goes with the key");
    assert_eq!(
        fs::read_to_string(root.path().join("etc/docker/certs.d/other.corp:5000/ca.crt")).unwrap(),
        "someone else's"
    );
    assert!(root.path().join("etc/docker/certs.d/admin.corp/ca.crt").exists());
}
