use super::*;

fn load(text: &str) -> Result<Inputs, Vec<LoadError>> {
    load_text(Path::new("test.yaml"), text)
}

#[test]
fn reads_multi_document_yaml_and_skips_other_kinds() {
    let inputs = load(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors:\n  - source: q.io/ns\n    mirrors: [m.io/ns]\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\napiVersion: operator.openshift.io/v1alpha1\nkind: ImageContentSourcePolicy\nmetadata: {name: b}\nspec:\n  repositoryDigestMirrors:\n  - source: r.io\n    mirrors: [n.io]\n",
    )
    .unwrap();
    assert_eq!(inputs.digest_sets.len(), 1);
    assert_eq!(inputs.digest_sets[0].spec.image_digest_mirrors[0].mirrors, vec!["m.io/ns"]);
    assert_eq!(inputs.content_source_policies.len(), 1);
}

#[test]
fn reads_plain_and_typed_lists() {
    let inputs = load(
        r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"config.openshift.io/v1","kind":"ImageTagMirrorSet","metadata":{"name":"t"},"spec":{"imageTagMirrors":[{"source":"a.io","mirrors":["b.io"]}]}}]}"#,
    )
    .unwrap();
    assert_eq!(inputs.tag_sets.len(), 1);
    let inputs = load(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSetList\nitems:\n- metadata: {name: one}\n  spec: {imageDigestMirrors: []}\n- metadata: {name: two}\n  spec: {}\n",
    )
    .unwrap();
    assert_eq!(inputs.digest_sets.len(), 2);
}

#[test]
fn image_must_be_cluster_and_in_config_group() {
    let inputs = load(
        "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: other}\n---\napiVersion: image.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\n",
    )
    .unwrap();
    assert!(inputs.image.is_none());
    let inputs = load(
        "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    blockedRegistries: [b.io]\n",
    )
    .unwrap();
    assert_eq!(inputs.image.unwrap().spec.registry_sources.unwrap().blocked_registries, vec!["b.io"]);
    let inputs = load("apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  additionalTrustedCA: {name: cas}\n").unwrap();
    assert_eq!(inputs.image.unwrap().spec.additional_trusted_ca.unwrap().name, "cas");
}

#[test]
fn reports_every_bad_document_with_its_position() {
    let errors = load(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors: 7\n---\nkind: ImageTagMirrorSet\napiVersion: config.openshift.io/v1\nmetadata: {}\n---\n- just a list\n",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(errors[0].document, Some(1));
    assert_eq!(
        errors[0].to_string(),
        "test.yaml:5: ImageDigestMirrorSet/a: spec.imageDigestMirrors = \"7\": expected a list, found a number; fix: write a list: `- item` lines, or `[item, ...]`"
    );
    assert!(errors[1].to_string().starts_with("test.yaml:7: ImageTagMirrorSet has no metadata.name"), "{}", errors[1]);
    assert!(errors[2].to_string().starts_with("test.yaml:11: a document must be"), "{}", errors[2]);
}

#[test]
fn duplicate_objects_are_refused() {
    let doc = "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {name: t}\nspec: {}\n";
    let errors = load(&format!("{doc}---\n{doc}")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("ImageTagMirrorSet/t is defined twice"), "{}", errors[0]);
}

#[test]
fn syntax_errors_are_reported() {
    let errors = load("kind: [unclosed\n").unwrap_err();
    assert!(errors[0].message.starts_with("not valid YAML or JSON"), "{}", errors[0]);
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    // The mapping is one level, so the 64th bracket is the 65th level.
    let flow = format!("a: {}", "[".repeat(100_000));
    let e = load(&flow).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "test.yaml: nested deeper than 64 levels (the limit) at line 1, column 67; refused before parsing"
    );
    let block = format!("{}x\n", "- ".repeat(65));
    assert!(load(&block).unwrap_err()[0].message.starts_with("nested deeper than 64 levels"));
    // 64 levels are fine (and are a parse error only because serde has no such type).
    assert!(load(&format!("{}{}", "[".repeat(63), "]".repeat(63))).unwrap_err()[0].message.contains("mapping"));
}

#[test]
fn load_text_applies_the_file_size_limit() {
    let limits = Limits { file_bytes: 10, ..Limits::DEFAULT };
    let e = load_text_with(Path::new("t.yaml"), "kind: List\nitems: []\n", &limits).unwrap_err();
    assert_eq!(e[0].to_string(), "t.yaml: 21 bytes, over 10 bytes (the limit for one file); refused before parsing");
    assert!(load_text_with(Path::new("t.yaml"), "# empty\n", &limits).is_ok());
}

const LIST: &str = "apiVersion: v1\nkind: List\nitems: []\n";

#[test]
fn file_sizes_are_checked_before_and_while_reading() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    // Sparse: the metadata says 5 MiB; nothing needs reading to refuse it.
    std::fs::File::create(&big).unwrap().set_len(5 << 20).unwrap();
    let e = load_paths(&[&big]).unwrap_err();
    assert_eq!(e[0].message, "5242880 bytes, over 4 MiB (the limit for one file); refused before reading");
    // A device reports no size: the limit holds while reading.
    let e = load_paths(&[Path::new("/dev/zero")]).unwrap_err();
    assert_eq!(e[0].message, "more than 4 MiB (the limit for one file) while reading; refused");
    let e = load_paths(&[Path::new("/dev/urandom")]).unwrap_err();
    assert!(e[0].message.starts_with("more than 4 MiB"), "{}", e[0]);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, b"kind: \xff\n").unwrap();
    assert_eq!(load_paths(&[&bad]).unwrap_err()[0].message, "not UTF-8 text (invalid byte at offset 6)");
}

#[test]
fn the_whole_load_is_bounded_and_stops_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.yaml", "b.yaml", "c.yaml"] {
        std::fs::write(dir.path().join(name), LIST).unwrap();
    }
    std::fs::write(dir.path().join("d.yaml"), "not: [valid").unwrap();
    let limits = Limits { load_bytes: 2 * LIST.len() as u64 + 1, ..Limits::DEFAULT };
    let e = load_paths_with(&[dir.path()], &limits).unwrap_err();
    // a and b fit; c would not; d (broken) is never read.
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].path.ends_with("c.yaml"));
    assert_eq!(
        e[0].message,
        format!("would take this load over {} bytes (the limit for all files of one load); refused, and the files after it were not read", limits.load_bytes)
    );
    let limits = Limits { load_bytes: 3 * LIST.len() as u64, ..Limits::DEFAULT };
    let e =
        load_paths_with(&[&dir.path().join("a.yaml"), &dir.path().join("b.yaml"), &dir.path().join("c.yaml")], &limits);
    assert!(e.is_ok(), "exactly at the limit is fine: {e:?}");
}

#[test]
fn symlink_loops_are_reported_and_the_rest_is_still_read() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("sub/deeper/ok.yaml"), LIST).unwrap();
    std::fs::write(root.join("z-broken.yaml"), "kind: [").unwrap();
    symlink(&root, root.join("sub/deeper/loop")).unwrap();
    symlink(".", root.join("sub/self")).unwrap();
    let e = load_paths(&[&root]).unwrap_err();
    let messages: Vec<String> = e.iter().map(ToString::to_string).collect();
    let r = root.display();
    assert_eq!(
        messages,
        [
            format!("{r}: symlink loop: {r}/sub/self leads back to {r}/sub"),
            format!("{r}: symlink loop: {r}/sub/deeper/loop leads back to {r}"),
            format!("{r}/z-broken.yaml:2: not valid YAML or JSON: {}", messages[2].split_once("JSON: ").unwrap().1),
        ]
    );
    // Two links to one folder (not a loop): its files are read once, not "defined twice".
    std::fs::remove_file(root.join("z-broken.yaml")).unwrap();
    std::fs::remove_file(root.join("sub/deeper/loop")).unwrap();
    std::fs::remove_file(root.join("sub/self")).unwrap();
    std::fs::write(
        root.join("sub/deeper/ok.yaml"),
        "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {name: t}\nspec: {}\n",
    )
    .unwrap();
    symlink(root.join("sub/deeper"), root.join("again")).unwrap();
    symlink(root.join("sub/deeper"), root.join("sub/twice")).unwrap();
    assert_eq!(load_paths(&[&root]).unwrap().tag_sets.len(), 1);
}

#[test]
fn only_regular_files_are_read_from_folders() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.yaml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::write(dir.path().join("ok.yaml"), LIST).unwrap();
    // Opening the FIFO would block until a writer came: it is refused without being opened.
    let e = load_paths(&[dir.path()]).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, fifo);
    assert!(e[0].message.starts_with("not a regular file"), "{}", e[0]);
}

const IDMS_V1: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors:\n  - source: q.io\n    mirrors: [m.io]\n";

#[test]
fn a_known_kind_under_another_version_or_group_is_refused_and_other_groups_skipped() {
    for (api_version, message) in [
        (
            "config.openshift.io/v2",
            "not a version of ImageDigestMirrorSet that mirrorconf reads (it reads config.openshift.io/v1)",
        ),
        (
            "operator.openshift.io/v1alpha1",
            "ImageDigestMirrorSet is not in this API group (it is config.openshift.io/v1)",
        ),
        ("mirrors.example/v1", "ImageDigestMirrorSet is not in this API group (it is config.openshift.io/v1)"),
    ] {
        let errors = load(&format!("# c\n{}", IDMS_V1.replace("config.openshift.io/v1", api_version))).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!((e.line, e.field.as_deref(), e.value.as_deref()), (Some(2), Some("apiVersion"), Some(api_version)));
        assert_eq!(e.message, message);
        assert_eq!(e.fix.as_deref(), Some("write `apiVersion: config.openshift.io/v1`"));
    }
    let errors = load("apiVersion: operator.openshift.io/v1\nkind: ImageContentSourcePolicy\nmetadata: {name: i}\n")
        .unwrap_err();
    assert_eq!(errors[0].fix.as_deref(), Some("write `apiVersion: operator.openshift.io/v1alpha1`"));
    let errors = load("apiVersion: v2\nkind: ConfigMap\nmetadata: {name: c}\n").unwrap_err();
    assert_eq!(errors[0].field.as_deref(), Some("apiVersion"));
    // Image and ConfigMap are names other groups use for other kinds: those are not ours.
    let inputs = load("apiVersion: image.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\ndockerImageReference: x\n---\napiVersion: example.com/v1\nkind: ConfigMap\nmetadata: {name: c}\n").unwrap();
    assert!(inputs.image.is_none() && inputs.config_maps.is_empty());
}

#[test]
fn a_near_miss_kind_is_refused_with_the_kind_meant() {
    let errors = load(&IDMS_V1.replace("ImageDigestMirrorSet", "ImageDigestMirrorsSet")).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "test.yaml:2: ImageDigestMirrorsSet/a: kind = \"ImageDigestMirrorsSet\": not a kind mirrorconf reads; did you mean ImageDigestMirrorSet? fix: write `kind: ImageDigestMirrorSet`"
    );
    // In a typed list too.
    let list = "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSetsList\nitems:\n- metadata: {name: one}\n";
    assert!(load(list).unwrap_err()[0].message.contains("did you mean ImageTagMirrorSet?"));
    assert!(load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {x: 1}\n").is_ok());
}

#[test]
fn unknown_fields_are_refused_at_their_line_and_objects_keep_their_origin() {
    let text = format!(
        "{IDMS_V1}    mirrorSourcePolicies: NeverContactSource\n---\n# next\n{}",
        IDMS_V1.replace("name: a", "name: b")
    );
    let errors = load(&text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.line, Some(8));
    assert_eq!(e.object.as_deref(), Some("ImageDigestMirrorSet/a"));
    assert_eq!(e.field.as_deref(), Some("spec.imageDigestMirrors[0].mirrorSourcePolicies"));
    assert_eq!(e.fix.as_deref(), Some("did you mean `mirrorSourcePolicy`?"));

    let inputs = load(&format!("{IDMS_V1}---\n# next\n{}", IDMS_V1.replace("name: a", "name: b"))).unwrap();
    let origin = |o: &str| inputs.origins.get(o).map(|o| (o.file.display().to_string(), o.line));
    assert_eq!(origin("ImageDigestMirrorSet/a"), Some(("test.yaml".to_string(), Some(1))));
    assert_eq!(origin("ImageDigestMirrorSet/b"), Some(("test.yaml".to_string(), Some(10))));
}

#[test]
fn objects_from_a_cluster_are_read_leniently_and_the_same_text_in_a_file_is_not() {
    // What kube-rs does with an API server's answer: serde_json into the types. A field a newer
    // OpenShift adds must not stop the agent (docs/design.md, "Validation").
    let json = r#"{"apiVersion":"config.openshift.io/v1","kind":"ImageDigestMirrorSet","metadata":{"name":"a"},
        "spec":{"imageDigestMirrors":[{"source":"q.io","mirrors":["m.io"],"someFutureField":true}],"futureSpecField":1}}"#;
    let from_cluster: crate::model::ImageDigestMirrorSet = serde_json::from_str(json).unwrap();
    assert_eq!(from_cluster.spec.image_digest_mirrors[0].mirrors, ["m.io"]);
    let errors = load(json).unwrap_err();
    let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    assert_eq!(fields, ["spec.imageDigestMirrors[0].someFutureField", "spec.futureSpecField"]);
}
