//! Hostile input through the real binary: every refusal is exit 2, names the file (or object and
//! field) and the limit, quotes no credential, and writes nothing, for `validate` and for `render`
//! of every target alike.

mod common;

use common::{mirrorconf, tree};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

const TARGETS: [&str; 3] = ["linux", "containerd", "windows"];

fn regression(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/manifests").join(name)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `validate` and `render --target T` for every target: each exits 2 with nothing written.
/// Returns the stderr of each run.
fn refused_everywhere(manifests: &Path, extra: &[&str]) -> Vec<String> {
    let manifests = manifests.to_str().unwrap();
    let mut args = vec!["validate", "--manifests", manifests];
    args.extend_from_slice(extra);
    let out = mirrorconf(&args);
    assert_eq!(out.status.code(), Some(2), "validate: {}", stderr(&out));
    let mut all = vec![stderr(&out)];
    for target in TARGETS {
        let root = tempfile::tempdir().unwrap();
        let mut args = vec!["render", "--manifests", manifests, "--root", root.path().to_str().unwrap()];
        args.extend_from_slice(&["--target", target]);
        args.extend_from_slice(extra);
        let out = mirrorconf(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "render --target {target}: {err}");
        assert!(err.contains("nothing was written"), "render --target {target}: {err}");
        assert!(tree(root.path()).is_empty(), "render --target {target} wrote {:?}", tree(root.path()));
        all.push(err);
    }
    all
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    for name in [
        "deep-flow-sequences.yaml",
        "deep-flow-mappings.json",
        "deep-flow-pairs.yaml",
        "deep-block-compact-sequences.yaml",
        "deep-block-indentation.yaml",
        "deep-after-apostrophe-in-plain-scalar.yaml",
        "deep-after-block-scalar-ends.yaml",
        "deep-after-byte-order-mark.yaml",
        "deep-as-block-mapping-key.yaml",
    ] {
        let file = regression(name);
        for err in refused_everywhere(&file, &[]) {
            let want = format!("invalid: {}: nested deeper than 64 levels (the limit) at line ", file.display());
            assert!(err.contains(&want) && err.contains("; refused before parsing"), "{name}: {err}");
        }
    }
    // The reported case: 200 KB of nested '[' took libyaml minutes. Refused without parsing.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.yaml");
    fs::write(&file, "[".repeat(200_000)).unwrap();
    let out = mirrorconf(&["validate", "--manifests", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out)
        .contains("x.yaml: nested deeper than 64 levels (the limit) at line 1, column 65; refused before parsing"));
}

#[test]
fn files_with_too_many_tokens_are_refused_before_parsing() {
    // 2.2 MB of `[a,a,...]`: within the size limit, but 2.2 million tokens (serde_yaml_ng would hold
    // an event for each); a Kubernetes object has about one token per 8 bytes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flat.yaml");
    fs::write(&file, format!("[{}]", "a,".repeat(1_100_000))).unwrap();
    for err in refused_everywhere(&file, &[]) {
        let want = format!(
            "invalid: {}: more than 2000000 YAML tokens (scalars, brackets and indicators; the limit for one file) by line 1, column 2000001; refused before parsing",
            file.display()
        );
        assert!(err.contains(&want), "{err}");
    }
}

#[test]
fn files_over_the_size_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: the size comes from the metadata, nothing is read.
    let big = dir.path().join("big.yaml");
    fs::File::create(&big).unwrap().set_len(5 << 20).unwrap();
    for err in refused_everywhere(&big, &[]) {
        let want =
            format!("{}: 5242880 bytes, over 4 MiB (the limit for one file); refused before reading", big.display());
        assert!(err.contains(&want), "{err}");
    }
    // A device reports no size: the limit is enforced while reading.
    let out = mirrorconf(&["validate", "--manifests", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/dev/zero: more than 4 MiB (the limit for one file) while reading; refused"));
    // Five files of 3.5 MiB: the fifth would take the load over 16 MiB.
    let many = dir.path().join("many");
    fs::create_dir(&many).unwrap();
    for i in 1..=5 {
        fs::File::create(many.join(format!("{i}.yaml"))).unwrap().set_len(7 << 19).unwrap();
    }
    let out = mirrorconf(&["validate", "--manifests", many.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let want = format!(
        "{}: would take this load over 16 MiB (the limit for all files of one load); refused, and the files after it were not read",
        many.join("5.yaml").display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
fn a_symlink_loop_is_reported_and_the_rest_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    fs::create_dir_all(m.join("a/b")).unwrap();
    std::os::unix::fs::symlink(&m, m.join("a/b/loop")).unwrap();
    fs::write(m.join("z.yaml"), "kind: [").unwrap();
    let out = mirrorconf(&["validate", "--manifests", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let m = m.display();
    assert!(err.contains(&format!("invalid: {m}: symlink loop: {m}/a/b/loop leads back to {m}\n")), "{err}");
    assert!(err.contains(&format!("invalid: {m}/z.yaml:2: not valid YAML or JSON")), "{err}");
    assert!(!err.contains("defined twice") && !err.contains("too long"), "{err}");
}

#[test]
fn registry_sources_are_checked_as_the_api_server_checks_them() {
    for err in refused_everywhere(&regression("bad-registry-scopes.yaml"), &[]) {
        for (i, value) in [
            "..",
            "x/../../y",
            "quay.io:latest",
            "a:b:c",
            "quay.io/Upper",
            "quay.io/ns/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ]
        .iter()
        .enumerate()
        {
            for list in ["blockedRegistries", "insecureRegistries"] {
                // After the file and line the object came from.
                let want = format!(
                    "bad-registry-scopes.yaml:9: Image/cluster: spec.registrySources.{list}[{i}] = {value:?}: invalid registry scope"
                );
                assert!(err.contains(&want), "{want}\n{err}");
            }
        }
        assert!(err.contains(
            "Image/cluster: spec.registrySources.blockedRegistries[6] = \"\": a registry scope must not be empty"
        ));
        assert!(err.contains("Image/cluster: spec.registrySources.containerRuntimeSearchRegistries[1] = \"quay.io\": listed twice (the list is a set); first at spec.registrySources.containerRuntimeSearchRegistries[0]"), "{err}");
        assert!(err.contains(
            "containerRuntimeSearchRegistries[2] = \"q.io/ns\": a search registry must be a registry host[:port]"
        ));
        assert!(!err.contains("refusing file path"), "{err}");
    }
    for err in refused_everywhere(&regression("blocked-registries-1025-items.yaml"), &[]) {
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("invalid: ")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].ends_with("blocked-registries-1025-items.yaml:1: Image/cluster: spec.registrySources.blockedRegistries = \"1025 items\": more than 1024 items (the API server's limit)"),
            "{err}"
        );
    }
}

#[test]
fn credentials_and_keys_are_refused_without_being_quoted() {
    for err in refused_everywhere(&regression("broken-pull-secret.yaml"), &[]) {
        assert!(
            err.contains("broken-pull-secret.yaml:9: Secret/pull-secret: data[.dockerconfigjson] = \"<credentials, not shown>\": not a docker config.json"),
            "{err}"
        );
        assert!(!err.contains("c3VwZXJzZWNyZXQ"), "{err}");
    }
    for err in refused_everywhere(&regression("private-key-as-ca.yaml"), &[]) {
        assert!(err.contains("private-key-as-ca.yaml:7: ConfigMap/cas: data[reg.io] = \"<"), "{err}");
        assert!(
            err.contains("PEM block 1 holds a PRIVATE KEY block; a CA bundle must hold only certificates"),
            "{err}"
        );
        assert!(!err.contains("MC4CAQAw"), "{err}");
    }
}

#[test]
fn a_base_registries_conf_over_its_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m.yaml");
    fs::write(&manifests, "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors:\n  - source: q.io/ns\n    mirrors: [m.io/ns]\n").unwrap();
    let base = dir.path().join("registries.conf");
    fs::File::create(&base).unwrap().set_len(2 << 20).unwrap();
    let root = tempfile::tempdir().unwrap();
    let args = ["render", "--manifests", manifests.to_str().unwrap(), "--root", root.path().to_str().unwrap()];
    let out = mirrorconf(&[&args[..], &["--base", base.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let want = format!(
        "invalid: {}: 2097152 bytes, over 1 MiB (the limit for a base registries.conf); refused before reading",
        base.display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert!(tree(root.path()).is_empty());
    // The node's own file, about to be adopted as the base, is bounded the same way.
    let live = root.path().join("etc/containers/registries.conf");
    fs::create_dir_all(live.parent().unwrap()).unwrap();
    fs::File::create(&live).unwrap().set_len(2 << 20).unwrap();
    let out = mirrorconf(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("registries.conf: 2097152 bytes, over 1 MiB"), "{}", stderr(&out));
    assert_eq!(tree(root.path()), ["etc/containers/registries.conf"]);
}

#[test]
fn hosts_that_differ_only_in_case_are_reported() {
    let out =
        mirrorconf(&["validate", "--manifests", regression("hosts-differing-only-in-case.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning (containerd and Windows nodes): registry hosts [\"Quay.io\", \"quay.io\"] differ only in case: Windows nodes (case-insensitive folders) get one folder quay.io"),
        "{}",
        stderr(&out)
    );
}
