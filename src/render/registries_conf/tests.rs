use super::*;
use crate::model::load_text;
use crate::policy::Policy;
use std::path::Path;

fn policy(yaml: &str) -> Policy {
    Policy::from_inputs(&load_text(Path::new("t.yaml"), yaml).unwrap()).unwrap()
}

const BASE: &str = "# managed by the platform team\nunqualified-search-registries = [\"docker.io\"]  # only this\nshort-name-mode = \"enforcing\"\ncredential-helpers = [\"containers-auth.json\"]\n\n[aliases]\n  \"fedora\" = \"registry.fedoraproject.org/fedora\"\n\n[[registry]]\n# mine\nlocation = \"internal.corp\"\n";

const IDMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [m.corp/ns]\n";

#[test]
fn no_policy_gives_back_the_base_byte_for_byte() {
    assert_eq!(render(&Policy::default(), BASE).unwrap(), BASE);
    let odd = "a = 1   # spacing kept\r\n\r\n[[registry]]\r\n  location='x.io'\r\n";
    assert_eq!(render(&Policy::default(), odd).unwrap(), odd);
}

#[test]
fn the_admins_text_survives_around_the_policy() {
    let out = render(&policy(IDMS), BASE).unwrap();
    assert!(out.starts_with(BASE), "the base is a prefix of the result:\n{out}");
    assert!(out.ends_with("\n[[registry]]\nlocation = \"quay.io/ns\"\n\n[[registry.mirror]]\nlocation = \"m.corp/ns\"\npull-from-mirror = \"digest-only\"\n"), "{out}");
}

#[test]
fn mirrors_go_onto_the_admins_entry_for_the_same_scope() {
    let yaml = IDMS.replace("quay.io/ns", "internal.corp");
    let out = render(&policy(&yaml), BASE).unwrap();
    let doc: DocumentMut = out.parse().unwrap();
    let regs = doc["registry"].as_array_of_tables().unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs.get(0).unwrap()["mirror"].as_array_of_tables().unwrap().len(), 1);
    assert!(out.contains("# mine\nlocation = \"internal.corp\"\n"));
}

#[test]
fn mirror_by_digest_only_is_converted_so_the_file_stays_valid() {
    let base = "[[registry]]\nlocation = \"quay.io/ns\"\nmirror-by-digest-only = true\n\n[[registry.mirror]]\nlocation = \"old.corp/ns\"\n";
    let out = render(&policy(IDMS), base).unwrap();
    assert!(!out.contains("mirror-by-digest-only"), "{out}");
    let doc: DocumentMut = out.parse().unwrap();
    let mirrors = doc["registry"][0]["mirror"].as_array_of_tables().unwrap();
    let modes: Vec<_> =
        mirrors.iter().map(|m| (m["location"].as_str().unwrap(), m["pull-from-mirror"].as_str().unwrap())).collect();
    assert_eq!(modes, [("old.corp/ns", "digest-only"), ("m.corp/ns", "digest-only")]);
}

#[test]
fn bad_bases_are_refused_with_a_reason() {
    let p = policy(IDMS);
    assert!(matches!(render(&p, "[registries.search]\nregistries = []\n"), Err(RenderError::BaseV1Format)));
    assert!(matches!(render(&p, "registry = 3\n"), Err(RenderError::BaseRegistryShape(_))));
    assert!(matches!(render(&p, "[[registry]]\nlocation='a'\nmirror = 'x'\n"), Err(RenderError::BaseMirrorShape(_))));
    let e = render(&p, "not toml = = 1").unwrap_err();
    assert!(e.to_string().starts_with("the base registries.conf is not valid TOML"), "{e}");
    // Even with nothing to apply, a broken base is reported rather than passed on.
    assert!(render(&Policy::default(), "x = [").is_err());
}

#[test]
fn an_empty_base_starts_without_a_blank_line() {
    let out = render(&policy(IDMS), "").unwrap();
    assert!(out.starts_with("[[registry]]\n"), "{out:?}");
}

#[test]
fn insecure_and_blocked_reach_nested_entries_and_mirrors_but_mirrors_are_never_blocked() {
    let yaml = format!(
        "{IDMS}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    insecureRegistries: [m.corp]\n    blockedRegistries: [quay.io]\n"
    );
    let out = render(&policy(&yaml), "").unwrap();
    let doc: DocumentMut = out.parse().unwrap();
    let ns = &doc["registry"][0];
    assert_eq!(ns["location"].as_str(), Some("quay.io/ns"));
    assert_eq!(ns["blocked"].as_bool(), Some(true));
    assert_eq!(ns["mirror"][0]["insecure"].as_bool(), Some(true));
    assert!(ns["mirror"][0].get("blocked").is_none());
}

#[test]
fn search_drop_in_only_when_set() {
    assert_eq!(render_search_drop_in(&Policy::default()), None);
    let p = Policy { search_registries: vec!["a.io".into(), "b.io:5000".into()], ..Policy::default() };
    let text = render_search_drop_in(&p).unwrap();
    let doc: DocumentMut = text.parse().unwrap();
    let list: Vec<_> =
        doc["unqualified-search-registries"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(list, ["a.io", "b.io:5000"]);
}

#[test]
fn every_permutation_of_objects_gives_identical_bytes() {
    let docs = [
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: a}\nspec:\n  imageDigestMirrors:\n  - source: s.io\n    mirrors: [a.io, z.io]\n  - source: t.io/x\n    mirrors: [b.io/x]\n",
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: b}\nspec:\n  imageDigestMirrors:\n  - source: s.io\n    mirrors: [b.io, c.io]\n",
        "apiVersion: operator.openshift.io/v1alpha1\nkind: ImageContentSourcePolicy\nmetadata: {name: c}\nspec:\n  repositoryDigestMirrors:\n  - source: s.io\n    mirrors: [c.io, a.io]\n",
        "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {name: d}\nspec:\n  imageTagMirrors:\n  - source: t.io\n    mirrors: [tag.io]\n",
    ];
    let render_order = |order: &[usize]| {
        let yaml: Vec<&str> = order.iter().map(|i| docs[*i]).collect();
        render(&policy(&yaml.join("---\n")), BASE).unwrap()
    };
    let expected = render_order(&[0, 1, 2, 3]);
    let mut order = vec![0, 1, 2, 3];
    // Heap's algorithm over all 24 orders.
    let mut c = [0usize; 4];
    let mut i = 0;
    while i < 4 {
        if c[i] < i {
            if i % 2 == 0 {
                order.swap(0, i)
            } else {
                order.swap(c[i], i)
            }
            assert_eq!(render_order(&order), expected, "order {order:?}");
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}
