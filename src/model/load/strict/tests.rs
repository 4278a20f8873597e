use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

fn fields(kind: &str, text: &str) -> Vec<(String, String, Option<String>)> {
    check(kind, &yaml(text)).into_iter().map(|p| (p.field, p.message, p.fix)).collect()
}

#[test]
fn every_embedded_crd_parses_and_names_a_known_kind() {
    let schemas = schemas();
    for kind in KNOWN_KINDS {
        assert!(schemas[kind.kind]["properties"].is_object(), "{}", kind.kind);
    }
}

#[test]
fn unknown_fields_are_refused_with_their_path_and_the_field_meant() {
    let got = fields(
        "ImageDigestMirrorSet",
        "spec:\n  imageDigestMirrors:\n  - source: q.io\n    mirrors: [m.io]\n    mirrorSourcePolicies: NeverContactSource\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "spec.imageDigestMirrors[0].mirrorSourcePolicies");
    assert!(got[0].1.starts_with("unknown field"), "{got:?}");
    assert_eq!(got[0].2.as_deref(), Some("did you mean `mirrorSourcePolicy`?"));

    for (kind, text, field, meant) in [
        ("Image", "spec:\n  registrysources: {}\n", "spec.registrysources", "registrySources"),
        (
            "ImageTagMirrorSet",
            "spec:\n  imageTagMirrors:\n  - source: q.io\n    mirror: [m.io]\n",
            "spec.imageTagMirrors[0].mirror",
            "mirrors",
        ),
        ("ImageDigestMirrorSet", "spec:\n  imageDigestMirror: []\n", "spec.imageDigestMirror", "imageDigestMirrors"),
        ("ImageDigestMirrorSet", "spek: {}\n", "spek", "spec"),
        ("ConfigMap", "date: {a: b}\n", "date", "data"),
    ] {
        let got = fields(kind, text);
        assert_eq!(got.len(), 1, "{kind} {text}: {got:?}");
        assert_eq!(got[0].0, field);
        assert_eq!(got[0].2, Some(format!("did you mean `{meant}`?")), "{field}");
    }
    let got = fields(
        "ImageContentSourcePolicy",
        "spec:\n  repositoryDigestMirrors:\n  - source: q.io\n    mirrorSourcePolicy: NeverContactSource\n",
    );
    assert_eq!(got[0].0, "spec.repositoryDigestMirrors[0].mirrorSourcePolicy", "ICSP has no policy field");
    let got = fields("ImageDigestMirrorSet", "spec:\n  unrelatedThing: 1\n");
    assert_eq!(got[0].2.as_deref(), Some("remove it; the fields here are imageDigestMirrors"));
}

#[test]
fn metadata_status_and_every_declared_field_are_accepted() {
    let image = "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata:\n  name: cluster\n  annotations: {a: b}\n  managedFields: [{manager: x}]\nspec:\n  allowedRegistriesForImport: [{domainName: q.io, insecure: false}]\n  externalRegistryHostnames: [r.io]\n  imageStreamImportMode: Legacy\n  additionalTrustedCA: {name: cas}\n  registrySources: {insecureRegistries: [a.io], containerRuntimeSearchRegistries: [q.io]}\nstatus:\n  internalRegistryHostname: x\n  anythingAControllerAdds: 1\n";
    assert_eq!(fields("Image", image), vec![]);
    assert_eq!(
        fields("Secret", "type: kubernetes.io/dockerconfigjson\ndata: {a: b}\nstringData: {c: d}\nimmutable: true\n"),
        vec![]
    );
    assert_eq!(
        fields("ImageDigestMirrorSet", "spec:\n  imageDigestMirrors:\n  - source: q.io\n    mirrors: null\n"),
        vec![],
        "null is absent"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_field_path() {
    let got = fields("ImageDigestMirrorSet", "spec:\n  imageDigestMirrors:\n  - source: q.io\n    mirrors: m.io/x\n");
    assert_eq!(
        got,
        vec![(
            "spec.imageDigestMirrors[0].mirrors".to_string(),
            "expected a list, found a string".to_string(),
            Some("write a list: `- item` lines, or `[item, ...]`".to_string())
        )]
    );
    let got = fields("ImageDigestMirrorSet", "spec:\n  imageDigestMirrors:\n  - source: q.io\n    mirrors: [5000]\n");
    assert_eq!(got[0].0, "spec.imageDigestMirrors[0].mirrors[0]");
    assert_eq!(got[0].1, "expected a string, found a number");
    assert_eq!(fields("ConfigMap", "immutable: yes please\n")[0].1, "expected true or false, found a string");
}

#[test]
fn secrets_are_never_quoted_and_problems_are_capped() {
    let got = check("Secret", &yaml("typo: hunter2\n"));
    assert_eq!(got[0].value, "<not shown: a Secret>");
    let many: String = (0..100).map(|i| format!("f{i}: x\n")).collect();
    let got = check("ConfigMap", &yaml(&many));
    assert_eq!(got.len(), MAX_PROBLEMS + 1);
    assert_eq!(got[MAX_PROBLEMS].message, format!("and {} more problems in this object", 100 - MAX_PROBLEMS));
}

#[test]
fn control_characters_in_keys_are_escaped() {
    let got = check("ConfigMap", &yaml("\"a\\e[2Jb\": x\n"));
    assert_eq!(got[0].field, "a\\u{1b}[2Jb");
}

#[test]
fn near_miss_kinds_are_named_and_other_kinds_are_not() {
    for (typo, meant) in [
        ("ImageDigestMirrorsSet", "ImageDigestMirrorSet"),
        ("imagedigestmirrorset", "ImageDigestMirrorSet"),
        ("ImageTagMirrorSets", "ImageTagMirrorSet"),
        ("imagetagmirrorsets", "ImageTagMirrorSet"),
        ("ImageContentSourcePolicies", "ImageContentSourcePolicy"),
        ("configmap", "ConfigMap"),
        ("image", "Image"),
    ] {
        assert_eq!(near_miss_kind(typo), Some(meant), "{typo}");
    }
    for other in
        ["Deployment", "ImageStream", "ImageContentPolicy", "ImagePolicy", "ClusterImagePolicy", "Images", "Namespace"]
    {
        assert_eq!(near_miss_kind(other), None, "{other}");
    }
}
