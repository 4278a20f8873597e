use super::*;
use crate::model::load_text;
use std::path::Path;

fn policy(yaml: &str) -> Result<Policy, ValidationErrors> {
    Policy::from_inputs(&load_text(Path::new("t.yaml"), yaml).expect("loads"))
}

fn idms(name: &str, entries: &str) -> String {
    format!("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: {name}}}\nspec:\n  imageDigestMirrors:\n{entries}---\n")
}

fn itms(name: &str, entries: &str) -> String {
    format!("apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {{name: {name}}}\nspec:\n  imageTagMirrors:\n{entries}---\n")
}

#[test]
fn reports_every_error_with_object_field_and_value() {
    let yaml = idms(
        "bad",
        "  - source: quay.io/ns\n    mirrors: [ok.io/ns, 'Bad.io/NS', '*.wild.io']\n  - source: ''\n    mirrors: [m.io]\n",
    );
    let errors = policy(&yaml).unwrap_err().0;
    let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.value.as_str())).collect();
    assert_eq!(
        fields,
        [
            ("spec.imageDigestMirrors[0].mirrors[1]", "Bad.io/NS"),
            ("spec.imageDigestMirrors[0].mirrors[2]", "*.wild.io"),
            ("spec.imageDigestMirrors[1].source", ""),
        ]
    );
    assert!(errors.iter().all(|e| e.object == "ImageDigestMirrorSet/bad"));
    assert_eq!(
        errors[0].to_string(),
        "t.yaml:7: ImageDigestMirrorSet/bad: spec.imageDigestMirrors[0].mirrors[1] = \"Bad.io/NS\": invalid mirror: expected host[:port][/path] with a lowercase path (no scheme, tag, digest or wildcard); fix: write the path in lowercase: `/ns`"
    );
}

#[test]
fn a_scheme_in_a_source_is_refused_with_a_hint() {
    let e = policy(&idms("s", "  - source: docker://quay.io\n    mirrors: [m.io]\n")).unwrap_err();
    assert_eq!(e.0[0].fix.as_deref(), Some("drop the scheme `docker://`"), "{e}");
    assert_eq!(e.to_string().matches("docker://quay.io").count(), 1, "the value once: {e}");
}

#[test]
fn conflicting_policies_across_kinds_are_refused_whatever_the_file_order() {
    let a = idms("a", "  - source: q.io/ns\n    mirrors: [m1.io/ns]\n    mirrorSourcePolicy: NeverContactSource\n");
    let b = itms("b", "  - source: q.io/ns\n    mirrors: [m2.io/ns]\n");
    for yaml in [format!("{a}{b}"), format!("{b}{a}")] {
        let e = policy(&yaml).unwrap_err().0;
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].object, "ImageTagMirrorSet/b");
        assert_eq!(e[0].field, "spec.imageTagMirrors[0].mirrorSourcePolicy");
        assert!(e[0].message.contains("conflicting mirrorSourcePolicy is set for the same source \"q.io/ns\""));
        assert_eq!(e[0].fix.as_deref(), Some("give the source one mirrorSourcePolicy in every object"));
    }
}

#[test]
fn icsp_counts_as_allow_contacting_source() {
    let icsp = "apiVersion: operator.openshift.io/v1alpha1\nkind: ImageContentSourcePolicy\nmetadata: {name: c}\nspec:\n  repositoryDigestMirrors:\n  - source: q.io\n    mirrors: [m.io]\n---\n";
    let never = idms("n", "  - source: q.io\n    mirrors: [m2.io]\n    mirrorSourcePolicy: NeverContactSource\n");
    assert!(policy(&format!("{icsp}{never}")).is_err());
    let allow = idms("n", "  - source: q.io\n    mirrors: [m2.io]\n    mirrorSourcePolicy: AllowContactingSource\n");
    assert!(policy(&format!("{icsp}{allow}")).is_ok());
}

#[test]
fn an_icsp_in_a_conflict_is_never_given_a_policy_field_and_the_fix_is_to_migrate_it() {
    let icsp = "apiVersion: operator.openshift.io/v1alpha1\nkind: ImageContentSourcePolicy\nmetadata: {name: c}\nspec:\n  repositoryDigestMirrors:\n  - source: q.io\n    mirrors: [m.io]\n---\n";
    let never = idms("n", "  - source: q.io\n    mirrors: [m2.io]\n    mirrorSourcePolicy: NeverContactSource\n");
    // IDMS are read before ICSPs: the ICSP is the one at fault, at its source.
    let e = policy(&format!("{icsp}{never}")).unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].object.as_str(), e[0].field.as_str(), e[0].value.as_str()),
        ("ImageContentSourcePolicy/c", "spec.repositoryDigestMirrors[0].source", "q.io")
    );
    assert!(e[0].message.contains("an ImageContentSourcePolicy has no mirrorSourcePolicy and means AllowContactingSource, while ImageDigestMirrorSet/n sets NeverContactSource"), "{}", e[0]);
    assert_eq!(
        e[0].fix.as_deref(),
        Some(
            "migrate ImageContentSourcePolicy/c to an ImageDigestMirrorSet with mirrorSourcePolicy: NeverContactSource"
        )
    );
    assert_eq!(e[0].line, Some(6), "the line of the ICSP's source");
    // An ITMS read after the ICSP: the ITMS's field is named, and the fix still migrates the ICSP.
    let tag = itms("t", "  - source: q.io\n    mirrors: [m3.io]\n    mirrorSourcePolicy: NeverContactSource\n");
    let e = policy(&format!("{icsp}{tag}")).unwrap_err().0;
    assert_eq!(e[0].field, "spec.imageTagMirrors[0].mirrorSourcePolicy");
    assert!(e[0].message.contains("ImageContentSourcePolicy/c means AllowContactingSource (an ImageContentSourcePolicy has no mirrorSourcePolicy)"), "{}", e[0]);
    assert_eq!(
        e[0].fix.as_deref(),
        Some(
            "migrate ImageContentSourcePolicy/c to an ImageDigestMirrorSet with mirrorSourcePolicy: NeverContactSource"
        )
    );
}

#[test]
fn a_repeated_mirror_is_refused_in_a_file_and_merged_in_a_cluster() {
    let yaml = idms("d", "  - source: q.io\n    mirrors: [m.io, n.io, m.io]\n");
    let e = policy(&yaml).unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].field.as_str(), e[0].value.as_str()), ("spec.imageDigestMirrors[0].mirrors[2]", "m.io"));
    assert_eq!(e[0].message, "listed twice in this entry (mirrors is a set); first at mirrors[0]");
    assert_eq!(e[0].fix.as_deref(), Some("remove the repeat"));
    // The same object from a cluster (no file to point at): merged, as the runtime would.
    let mut inputs = load_text(Path::new("t.yaml"), &yaml).unwrap();
    inputs.origins.clear();
    assert_eq!(Policy::from_inputs(&inputs).unwrap().digest_sets[0].mirrors, ["m.io", "n.io"]);
}

#[test]
fn a_wrong_policy_value_gets_the_value_meant() {
    let e = policy(&idms("p", "  - source: q.io\n    mirrors: [m.io]\n    mirrorSourcePolicy: nevercontactsource\n"))
        .unwrap_err()
        .0;
    assert_eq!(e[0].fix.as_deref(), Some("write `NeverContactSource`"));
    let e =
        policy(&idms("p", "  - source: q.io\n    mirrors: [m.io]\n    mirrorSourcePolicy: Sometimes\n")).unwrap_err().0;
    assert_eq!(e[0].fix.as_deref(), Some("write `AllowContactingSource` or `NeverContactSource`"));
}

#[test]
fn errors_of_a_cluster_object_name_no_file() {
    let mut inputs =
        load_text(Path::new("t.yaml"), &idms("c", "  - source: q.io\n    mirrors: ['m.io/a:v1']\n")).unwrap();
    inputs.origins.clear();
    let e = Policy::from_inputs(&inputs).unwrap_err().0;
    assert_eq!((e[0].file.as_ref(), e[0].line), (None, None));
    assert!(
        e[0].to_string().starts_with("ImageDigestMirrorSet/c: spec.imageDigestMirrors[0].mirrors[0] = \"m.io/a:v1\": "),
        "{}",
        e[0]
    );
    assert!(e[0].to_string().ends_with("; fix: drop the tag `:v1`"), "{}", e[0]);
}

#[test]
fn dropped_entries_still_take_part_in_policy_checks() {
    // Mirrors equal to the source drop the entry from rendering, but its policy still conflicts.
    let a = idms("a", "  - source: q.io\n    mirrors: [q.io]\n");
    let b = idms("b", "  - source: q.io\n    mirrors: [m.io]\n    mirrorSourcePolicy: NeverContactSource\n");
    assert!(policy(&format!("{a}{b}")).is_err());
    let p = policy(&a).unwrap();
    assert!(p.digest_sets.is_empty() && !p.touches_registries_conf());
}

#[test]
fn never_contact_source_marks_the_set() {
    let p = policy(&idms("a", "  - source: q.io\n    mirrors: [m.io]\n    mirrorSourcePolicy: NeverContactSource\n"))
        .unwrap();
    assert!(p.digest_sets[0].never_contact_source);
    let e =
        policy(&idms("a", "  - source: q.io\n    mirrors: [m.io, q.io]\n    mirrorSourcePolicy: NeverContactSource\n"))
            .unwrap_err();
    assert_eq!(e.0[0].message, "cannot set mirrorSourcePolicy: NeverContactSource if the source is one of the mirrors");
    assert_eq!(e.0[0].value, "q.io");
    assert_eq!(e.0[0].field, "spec.imageDigestMirrors[0].mirrors[1]");
}

#[test]
fn merges_per_exact_source_across_objects() {
    let a = idms("a", "  - source: q.io\n    mirrors: [c.io, d.io]\n  - source: q.io/ns\n    mirrors: [x.io]\n");
    let b = idms("b", "  - source: q.io\n    mirrors: [a.io, b.io, c.io]\n");
    let p = policy(&format!("{a}{b}")).unwrap();
    assert_eq!(p.digest_sets.len(), 2);
    assert_eq!(p.digest_sets[0].mirrors, ["a.io", "b.io", "c.io", "d.io"]);
    assert_eq!(p.digest_sets[1].source, "q.io/ns");
}

fn image(rs: &str) -> String {
    format!(
        "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n{rs}"
    )
}

#[test]
fn image_scopes_are_checked() {
    let e =
        policy(&image("    insecureRegistries: ['', 'a.*.io']\n    containerRuntimeSearchRegistries: ['q.io/ns']\n"))
            .unwrap_err();
    let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.registrySources.insecureRegistries[0]",
            "spec.registrySources.insecureRegistries[1]",
            "spec.registrySources.containerRuntimeSearchRegistries[0]"
        ]
    );
    let p = policy(&image(
        "    blockedRegistries: ['*.b.io']\n    containerRuntimeSearchRegistries: ['q.io', 'registry.corp.example']\n",
    ))
    .unwrap();
    assert_eq!(p.blocked_scopes, ["*.b.io"]);
    assert_eq!(p.search_registries, ["q.io", "registry.corp.example"]);
}

#[test]
fn registry_scopes_are_what_the_api_server_accepts() {
    let bad = [
        "quay.io:latest",
        "quay.io/ns/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "..",
        "x/../../y",
        "a:b:c",
        "quay.io/Upper",
        "",
    ];
    let long = format!("q.io/{}", "a".repeat(300));
    for list in ["insecureRegistries", "blockedRegistries", "allowedRegistries"] {
        let items: Vec<String> =
            ["ok.io/ns"].iter().chain(&bad).map(|s| format!("'{s}'")).chain([format!("'{long}'")]).collect();
        let e = policy(&image(&format!("    {list}: [{}]\n", items.join(", ")))).unwrap_err().0;
        assert_eq!(e.len(), bad.len() + 1, "{list}: {e:?}");
        for (i, (err, value)) in e.iter().zip(bad.iter()).enumerate() {
            assert_eq!(err.object, "Image/cluster");
            assert_eq!(err.field, format!("spec.registrySources.{list}[{}]", i + 1));
            assert_eq!(err.value, *value);
        }
        assert!(
            e[1].to_string().contains("expected host[:port][/path] with a lowercase path, or *.domain"),
            "{}",
            e[1]
        );
        let last = e.last().unwrap();
        assert_eq!(last.field, format!("spec.registrySources.{list}[{}]", bad.len() + 1));
        assert_eq!(last.message, "305 characters, more than 256 (the API server's limit)");
        assert!(last.value.ends_with("...") && last.value.len() == 259, "a long value is shortened: {}", last.value);
    }
}

#[test]
fn a_list_over_the_item_limit_is_one_error() {
    let items = |n: usize| (0..n).map(|i| format!("'r{i}.io'")).collect::<Vec<_>>().join(", ");
    assert_eq!(
        policy(&image(&format!("    blockedRegistries: [{}]\n", items(1024)))).unwrap().blocked_scopes.len(),
        1024
    );
    let e = policy(&image(&format!("    blockedRegistries: [{}]\n", items(1025)))).unwrap_err().0;
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "t.yaml:1: Image/cluster: spec.registrySources.blockedRegistries = \"1025 items\": more than 1024 items (the API server's limit)"
    );
}

#[test]
fn search_registries_are_a_set_of_registry_hosts() {
    let e = policy(&image(
        "    containerRuntimeSearchRegistries: [quay.io, 'reg.io:5000', quay.io, 'q.io/ns', '*.corp.io', '', 'docker://x.io', my-registry]\n",
    ))
    .unwrap_err()
    .0;
    let got: Vec<(String, &str)> = e.iter().map(|e| (e.field.clone(), e.value.as_str())).collect();
    let at = |i: usize| format!("spec.registrySources.containerRuntimeSearchRegistries[{i}]");
    assert_eq!(
        got,
        [(at(2), "quay.io"), (at(3), "q.io/ns"), (at(4), "*.corp.io"), (at(5), ""), (at(6), "docker://x.io")]
    );
    assert_eq!(e[0].message, format!("listed twice (the list is a set); first at {}", at(0)));
    assert!(e[1].message.starts_with("a search registry must be a registry host[:port]"), "{}", e[1]);
    assert!(e.iter().all(|e| e.object == "Image/cluster"));
}

fn pull_secret(json: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: pull-secret, namespace: openshift-config}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{json}'\n---\n")
}

#[test]
fn the_pull_secret_is_validated_with_everything_else() {
    let secret = "c3VwZXJzZWNyZXQ6aHVudGVyMg==";
    for broken in
        [format!("{{\"auths\": \"{secret}\"}}"), format!("{{\"auths\": {{\"m.io\": {{\"auth\": {secret}}}}}}}")]
    {
        let e = policy(&format!("{}{}", pull_secret(&broken), idms("a", "  - source: q.io\n    mirrors: [m.io]\n")))
            .unwrap_err()
            .0;
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].object.as_str(), e[0].field.as_str()), ("Secret/pull-secret", "data[.dockerconfigjson]"));
        let shown = e[0].to_string();
        assert!(
            shown.contains("not a docker config.json") && !shown.contains(secret) && !shown.contains("c3Vw"),
            "{shown}"
        );
    }
    let p = policy(&pull_secret(&format!("{{\"auths\": {{\"m.io\": {{\"auth\": \"{secret}\"}}}}}}"))).unwrap();
    assert_eq!(p.pull_secret.as_ref().and_then(|s| s.auth_for("m.io/x")), Some(secret));
    assert!(!format!("{p:?}").contains(secret), "a debug-printed policy holds no credentials");
}
