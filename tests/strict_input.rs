//! Strict input from files (issue 23, "Silent misconfiguration"): the exact mistakes an admin makes
//! (a misspelt field, a wrong apiVersion, a repeated mirror, a near-miss kind, an image reference
//! where a repository is meant) are refused by `validate`, `render` and the agent with exit 2 and
//! nothing written, each message naming file:line, field path, the value once and the fix; and
//! every field the CRDs of deploy/api declare is accepted, so objects copied from a cluster stay
//! valid.

mod common;

use common::{free_port, http_get, metric, mirrorconf, tree, wait_until};
use serde_json::Value;
use std::fs;
use std::path::Path;

const IDMS_HEAD: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: airgap\nspec:\n  imageDigestMirrors:\n";

/// An IDMS with one entry whose lines follow the head (the entry starts on line 7).
fn idms(entry: &str) -> String {
    format!("{IDMS_HEAD}{entry}")
}

struct Refusal {
    stderr: String,
}

impl Refusal {
    /// The one stderr line about `field`.
    fn line(&self, field: &str) -> &str {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| l.contains(field)).collect();
        assert_eq!(lines.len(), 1, "one line about {field}:\n{}", self.stderr);
        lines[0]
    }
}

/// Runs `validate`, and `render` into a fresh root, on `text` as `name`; both must refuse it with
/// exit 2 and the same message, and the root must stay empty.
fn refused(name: &str, text: &str) -> Refusal {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    fs::write(&file, text).unwrap();
    let out = mirrorconf(&["validate", "--manifests", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "validate must refuse:\n{text}\n{stderr}");
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let out = mirrorconf(&["render", "--manifests", file.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    let render_stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "render must refuse:\n{render_stderr}");
    assert!(render_stderr.ends_with("nothing was written\n"), "{render_stderr}");
    assert_eq!(tree(&root), Vec::<String>::new(), "a refused render wrote under --root");
    assert_eq!(stderr, render_stderr, "validate and render say the same");
    // Messages name the file by the path given.
    Refusal { stderr: stderr.replace(&format!("{}/", dir.path().display()), "") }
}

fn assert_value_once(line: &str, value: &str) {
    assert_eq!(line.matches(value).count(), 1, "the value {value:?} is printed once: {line}");
}

#[test]
fn a_misspelt_field_is_refused_with_its_line_and_the_field_meant() {
    let r = refused(
        "typo.yaml",
        &idms("  - source: quay.io/ns\n    mirrors: [m.corp/ns]\n    mirrorSourcePolicies: NeverContactSource\n"),
    );
    assert_eq!(
        r.line("mirrorSourcePolicies"),
        "invalid: typo.yaml:9: ImageDigestMirrorSet/airgap: spec.imageDigestMirrors[0].mirrorSourcePolicies = \"NeverContactSource\": \
         unknown field: the API declares no such field, so it would be ignored; fix: did you mean `mirrorSourcePolicy`?"
    );
    let cases = [
        (idms("  - source: quay.io/ns\n    mirror: [m.corp/ns]\n"), 8, "spec.imageDigestMirrors[0].mirror", "mirrors"),
        (format!("{}  imageDigestMirror: []\n", &IDMS_HEAD[..IDMS_HEAD.len() - "  imageDigestMirrors:\n".len()]), 6, "spec.imageDigestMirror", "imageDigestMirrors"),
        (
            "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata:\n  name: cluster\nspec:\n  registrysources:\n    blockedRegistries: [evil.io]\n".to_string(),
            6,
            "spec.registrysources",
            "registrySources",
        ),
    ];
    for (text, line, field, meant) in cases {
        let r = refused("m.yaml", &text);
        let got = r.line(field);
        assert!(got.starts_with(&format!("invalid: m.yaml:{line}: ")), "{got}");
        assert!(got.contains(&format!("{field} = ")), "{got}");
        assert!(got.ends_with(&format!("fix: did you mean `{meant}`?")), "{got}");
    }
}

#[test]
fn a_known_kind_under_another_version_or_group_is_refused() {
    let itms = "apiVersion: config.openshift.io/v1alpha1\nkind: ImageTagMirrorSet\nmetadata: {name: t}\nspec:\n  imageTagMirrors: [{source: quay.io/ns, mirrors: [m.corp/ns]}]\n";
    let r = refused("itms.yaml", itms);
    let line = r.line("apiVersion");
    assert_eq!(
        line,
        "invalid: itms.yaml:1: ImageTagMirrorSet/t: apiVersion = \"config.openshift.io/v1alpha1\": not a version of ImageTagMirrorSet \
         that mirrorconf reads (it reads config.openshift.io/v1); fix: write `apiVersion: config.openshift.io/v1`"
    );
    let r = refused(
        "idms.yaml",
        &idms("  - source: q.io\n    mirrors: [m.io]\n").replace("config.openshift.io/v1", "config.openshift.io/v2"),
    );
    assert!(r.line("apiVersion").contains("not a version of ImageDigestMirrorSet"), "{}", r.stderr);
    let r = refused(
        "group.yaml",
        &idms("  - source: q.io\n    mirrors: [m.io]\n")
            .replace("config.openshift.io/v1", "operator.openshift.io/v1alpha1"),
    );
    assert!(
        r.line("apiVersion").contains("ImageDigestMirrorSet is not in this API group (it is config.openshift.io/v1)"),
        "{}",
        r.stderr
    );
    let r = refused(
        "other.yaml",
        &idms("  - source: q.io\n    mirrors: [m.io]\n").replace("config.openshift.io/v1", "mirrors.example.com/v1"),
    );
    assert!(r.line("apiVersion").contains("not in this API group"), "{}", r.stderr);
}

#[test]
fn a_near_miss_kind_asks_did_you_mean_and_other_kinds_are_still_skipped() {
    for (kind, meant) in [
        ("ImageDigestMirrorsSet", "ImageDigestMirrorSet"),
        ("imagedigestmirrorset", "ImageDigestMirrorSet"),
        ("ImageTagMirrorSets", "ImageTagMirrorSet"),
    ] {
        let r = refused(
            "kind.yaml",
            &idms("  - source: q.io\n    mirrors: [m.io]\n").replace("ImageDigestMirrorSet", kind),
        );
        assert_eq!(
            r.line("did you mean"),
            format!("invalid: kind.yaml:2: {kind}/airgap: kind = \"{kind}\": not a kind mirrorconf reads; did you mean {meant}? fix: write `kind: {meant}`")
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yaml");
    fs::write(
        &other,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {whatever: 1}\n---\napiVersion: image.openshift.io/v1\nkind: Image\nmetadata: {name: sha256:0}\ndockerImageReference: x\n",
    )
    .unwrap();
    let out = mirrorconf(&["validate", "--manifests", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_repeated_mirror_is_refused() {
    let r = refused("dup.yaml", &idms("  - source: quay.io/ns\n    mirrors:\n    - m.corp/ns\n    - m.corp/ns\n"));
    assert_eq!(
        r.line("mirrors[1]"),
        "invalid: dup.yaml:1: ImageDigestMirrorSet/airgap: spec.imageDigestMirrors[0].mirrors[1] = \"m.corp/ns\": \
         listed twice in this entry (mirrors is a set); first at mirrors[0]; fix: remove the repeat"
    );
}

#[test]
fn an_image_reference_where_a_repository_is_meant_gets_its_fix() {
    let cases = [
        ("mirror.corp.example/team/app:v1", "drop the tag `:v1`"),
        ("m.corp/app@sha256:0123456789abcdef", "drop the digest `@sha256:...`"),
        ("https://m.corp", "drop the scheme `https://`"),
        ("m.corp/Team/App", "write the path in lowercase: `/team/app`"),
        ("m.corp/ns/", "drop the trailing `/`"),
    ];
    for (mirror, fix) in cases {
        let r = refused("fix.yaml", &idms(&format!("  - source: quay.io/ns\n    mirrors:\n    - \"{mirror}\"\n")));
        let line = r.line("mirrors[0]");
        // The mirror's own line: it is written once.
        assert!(
            line.starts_with(
                "invalid: fix.yaml:9: ImageDigestMirrorSet/airgap: spec.imageDigestMirrors[0].mirrors[0] = "
            ),
            "{line}"
        );
        assert!(line.ends_with(&format!("; fix: {fix}")), "{line}");
        assert_value_once(line, mirror);
    }
    let r = refused("source.yaml", &idms("  - source: docker://quay.io/ns\n    mirrors: [m.corp/ns]\n"));
    let line = r.line(".source");
    assert!(line.ends_with("fix: drop the scheme `docker://`"), "{line}");
    assert_value_once(line, "docker://quay.io/ns");
}

#[test]
fn a_type_error_names_its_field_path() {
    let r = refused("type.yaml", &idms("  - source: quay.io/ns\n    mirrors: m.corp/ns\n"));
    assert_eq!(
        r.line("mirrors"),
        "invalid: type.yaml:8: ImageDigestMirrorSet/airgap: spec.imageDigestMirrors[0].mirrors = \"m.corp/ns\": expected a list, \
         found a string; fix: write a list: `- item` lines, or `[item, ...]`"
    );
}

#[test]
fn the_icsp_conflict_says_to_migrate_the_icsp() {
    let text = format!(
        "{}---\napiVersion: operator.openshift.io/v1alpha1\nkind: ImageContentSourcePolicy\nmetadata: {{name: old}}\nspec:\n  repositoryDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [m2.corp/ns]\n",
        idms("  - source: quay.io/ns\n    mirrors: [m.corp/ns]\n    mirrorSourcePolicy: NeverContactSource\n")
    );
    let r = refused("conflict.yaml", &text);
    let line = r.line("conflicting");
    assert_eq!(
        line,
        "invalid: conflict.yaml:16: ImageContentSourcePolicy/old: spec.repositoryDigestMirrors[0].source = \"quay.io/ns\": \
         conflicting mirrorSourcePolicy is set for the same source: an ImageContentSourcePolicy has no mirrorSourcePolicy and means \
         AllowContactingSource, while ImageDigestMirrorSet/airgap sets NeverContactSource; fix: migrate ImageContentSourcePolicy/old \
         to an ImageDigestMirrorSet with mirrorSourcePolicy: NeverContactSource"
    );
    assert!(!line.contains("repositoryDigestMirrors[0].mirrorSourcePolicy"), "no field the ICSP does not have");
}

#[test]
fn validate_output_json_is_one_record_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    fs::write(
        &file,
        idms(
            "  - source: quay.io/ns\n    mirrors: [\"m.corp/app:v1\"]\n    mirrorSourcePolicies: NeverContactSource\n",
        ),
    )
    .unwrap();
    let out = mirrorconf(&["validate", "--output", "json", "--manifests", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let records: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(
        records,
        serde_json::json!([{
            "file": file.to_str().unwrap(),
            "line": 9,
            "object": "ImageDigestMirrorSet/airgap",
            "field": "spec.imageDigestMirrors[0].mirrorSourcePolicies",
            "value": "NeverContactSource",
            "message": "unknown field: the API declares no such field, so it would be ignored",
            "fix": "did you mean `mirrorSourcePolicy`?"
        }])
    );
    // Once the field is fixed, the policy's own checks speak in the same shape.
    fs::write(&file, idms("  - source: quay.io/ns\n    mirrors: [\"m.corp/app:v1\"]\n")).unwrap();
    let out = mirrorconf(&["validate", "--output", "json", "--manifests", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records[0]["line"], 8, "the mirror's own line");
    assert_eq!(records[0]["field"], "spec.imageDigestMirrors[0].mirrors[0]");
    assert_eq!(records[0]["value"], "m.corp/app:v1");
    assert_eq!(records[0]["fix"], "drop the tag `:v1`");
    // A syntax error: file and line, nothing else to name.
    fs::write(&file, "kind: [\n").unwrap();
    let out = mirrorconf(&["validate", "--output", "json", "--manifests", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records[0]["line"], 2, "{records}");
    assert_eq!(records[0]["object"], Value::Null);
    // Valid: an empty array, still exit 0.
    fs::write(&file, idms("  - source: quay.io/ns\n    mirrors: [m.corp/ns]\n")).unwrap();
    let out = mirrorconf(&["validate", "--output", "json", "--manifests", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

/// Every property the CRD schema declares under `schema`, as (path, a value of its type); `[]`
/// in a path is an item of a list.
fn declared(schema: &Value, path: &[String], out: &mut Vec<(Vec<String>, Value)>) {
    for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
        let here: Vec<String> = path.iter().cloned().chain([key.clone()]).collect();
        let sample = match sub["type"].as_str() {
            Some("string") => Value::from("a.io"),
            Some("boolean") => Value::Bool(false),
            Some("object") => serde_json::json!({}),
            Some("array") => serde_json::json!([]),
            other => panic!("{key}: type {other:?}"),
        };
        out.push((here.clone(), sample));
        declared(sub, &here, out);
        if sub["items"]["properties"].is_object() {
            let items: Vec<String> = here.iter().cloned().chain(["[]".to_string()]).collect();
            declared(&sub["items"], &items, out);
        }
    }
}

/// Sets `leaf` at `path` inside `at`, making the mappings and one-item lists on the way.
fn set(at: &mut Value, path: &[String], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        *at = leaf;
        return;
    };
    let next = if first == "[]" {
        if !at.is_array() {
            *at = serde_json::json!([{}]);
        }
        &mut at[0]
    } else {
        if at[first.as_str()].is_null() {
            at[first.as_str()] = serde_json::json!({});
        }
        &mut at[first.as_str()]
    };
    set(next, rest, leaf);
}

#[test]
fn files_may_hold_exactly_what_the_crds_of_deploy_api_declare() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/api");
    let mut checked = 0;
    let mut crds = Vec::new();
    for entry in fs::read_dir(&api).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(doc).unwrap();
            if doc["kind"] == "CustomResourceDefinition" {
                crds.push(doc);
            }
        }
    }
    assert_eq!(crds.len(), 4, "the four kinds mirrorconf reads");
    for crd in crds {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let version = &crd["spec"]["versions"][0];
        let api_version = format!("{}/{}", crd["spec"]["group"].as_str().unwrap(), version["name"].as_str().unwrap());
        let mut fields = Vec::new();
        declared(&version["schema"]["openAPIV3Schema"], &[], &mut fields);
        for (path, sample) in fields {
            if ["apiVersion", "kind", "metadata"].contains(&path[0].as_str()) {
                continue;
            }
            // The declared field, set to a value of its type; then an undeclared one beside it
            // (status is the controllers': never checked).
            let beside: Vec<String> =
                path[..path.len() - 1].iter().cloned().chain(["notDeclaredAnywhere".into()]).collect();
            let under_status = path[0] == "status" && path.len() > 1;
            for (extra, refused) in [(None, false), (Some(beside), !under_status)] {
                // `spec` is required by every CRD.
                let mut object = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "cluster"}, "spec": {}});
                set(&mut object, &path, sample.clone());
                if let Some(extra) = &extra {
                    set(&mut object, extra, Value::from("x"));
                }
                let text = serde_json::to_string(&object).unwrap();
                match (refused, mirrorconf::model::load_text(Path::new("o.json"), &text)) {
                    (false, Ok(_)) => {}
                    (true, Err(errors)) => {
                        let unknown = errors
                            .iter()
                            .any(|e| e.field.as_deref().is_some_and(|f| f.ends_with("notDeclaredAnywhere")));
                        assert!(unknown, "{text}: refused, but not for the undeclared field: {errors:?}");
                    }
                    (refused, got) => {
                        panic!("{kind} {}: expected refused={refused}, got {got:?}\n{text}", path.join("."))
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "walked only {checked} fields");
}

#[test]
fn the_agent_refuses_the_same_input_and_writes_nothing() {
    let manifests = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let log = manifests.path().join("agent.log");
    fs::create_dir(manifests.path().join("in")).unwrap();
    fs::write(
        manifests.path().join("in/typo.yaml"),
        idms("  - source: quay.io/ns\n    mirrors: [m.corp/ns]\n    mirrorSourcePolicies: NeverContactSource\n"),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["run", "--manifests"])
        .arg(manifests.path().join("in"))
        .arg("--root")
        .arg(root.path())
        .args(["--listen", &addr])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = addr.parse().unwrap();
    let metric_of = |name: &str| http_get(addr, "/metrics").and_then(|(_, body)| metric(&body, name));
    // The metrics move before the problems are logged: wait for both.
    wait_until(20, "the refusal", || {
        metric_of("mirrorconf_render_errors_total").is_some_and(|n| n >= 1.0)
            && fs::read_to_string(&log).unwrap().contains("input refused")
    });
    assert_eq!(metric_of("mirrorconf_input_valid"), Some(0.0));
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(
            "typo.yaml:9: ImageDigestMirrorSet/airgap: spec.imageDigestMirrors[0].mirrorSourcePolicies = \"NeverContactSource\""
        ),
        "{logged}"
    );
    let node_files: Vec<String> =
        tree(root.path()).into_iter().filter(|p| !p.starts_with("var/lib/mirrorconf/")).collect();
    assert_eq!(node_files, Vec::<String>::new(), "refused input wrote node files");
    child.kill().unwrap();
    child.wait().unwrap();
}
