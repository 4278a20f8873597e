//! Property tests: random valid policies always render to files that parse, keep the base, say
//! what the policy says, and do not depend on the order of the objects, on the order of the entries
//! inside an object, or on which object of the same meaning holds an entry.

use mirrorconf::fileset::FileSet;
use mirrorconf::model::load_text;
use mirrorconf::policy::Policy;
use mirrorconf::render::{hosts_toml, policy_json, registries_conf, NodeInputs, Target};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;
use std::path::Path;

const HOSTS: [&str; 3] = ["a.io", "b.io:5000", "c.example.com"];
const PATHS: [&str; 4] = ["", "/ns", "/ns/app", "/x"];
const MIRROR_HOSTS: [&str; 3] = ["m1.io", "m2.io:8443", "m3.corp"];
const MIRROR_PATHS: [&str; 3] = ["", "/p", "/ns/app"];
const SCOPES: [&str; 5] = ["a.io", "b.io:5000/ns", "*.example.com", "m3.corp", "c.example.com/x"];
/// The node's own policy.json: none, the default, one with keys of its own.
const POLICY_BASES: [Option<&str>; 3] = [
    None,
    Some(policy_json::DEFAULT_BASE),
    Some("{\"default\": [{\"type\": \"reject\"}], \"transports\": {\"docker\": {\"a.io\": [{\"type\": \"signedBy\", \"keyType\": \"GPGKeys\", \"keyPath\": \"/k\"}], \"r.example\": [{\"type\": \"reject\"}]}, \"oci\": {\"\": [{\"type\": \"insecureAcceptAnything\"}]}}}"),
];
const BASES: [&str; 3] = [
    "",
    "unqualified-search-registries = ['registry.access.redhat.com', 'docker.io']\n",
    "# admin's file\nshort-name-mode = \"enforcing\"\n\n[[registry]]\nlocation = \"base.internal\"  # own entry\n\n[[registry.mirror]]\nlocation = \"base-mirror.internal\"\n\n[aliases]\n\"x\" = \"base.internal/x\"\n",
];

fn source(i: usize) -> String {
    format!("{}{}", HOSTS[i % 3], PATHS[i / 3 % 4])
}

fn mirror(i: usize) -> String {
    format!("{}{}", MIRROR_HOSTS[i % 3], MIRROR_PATHS[i / 3 % 3])
}

/// (source index, mirror indexes)
type Entry = (usize, Vec<usize>);
/// (kind 0=IDMS 1=ITMS 2=ICSP, entries)
type Object = (u8, Vec<Entry>);

#[derive(Debug, Clone)]
struct Case {
    objects: Vec<Object>,
    /// Sources under NeverContactSource (by index).
    never: Vec<bool>,
    insecure: Vec<usize>,
    blocked: Vec<usize>,
    base: usize,
}

fn case() -> impl Strategy<Value = Case> {
    let entry = (0usize..12, prop::collection::vec(0usize..9, 0..4));
    let object = (0u8..3, prop::collection::vec(entry, 0..4));
    (
        prop::collection::vec(object, 0..6),
        prop::collection::vec(any::<bool>(), 12),
        prop::collection::vec(0usize..5, 0..3),
        prop::collection::vec(0usize..5, 0..3),
        0usize..3,
    )
        .prop_map(|(objects, never, insecure, blocked, base)| Case { objects, never, insecure, blocked, base })
}

/// For each entry of a case (objects in order, entries in order, at most 6 x 4): which object it
/// may move to, and a sort key for its place inside the object it ends up in.
fn moves() -> impl Strategy<Value = Vec<(Index, u32)>> {
    prop::collection::vec((any::<Index>(), any::<u32>()), 24)
}

/// The same objects (names, kinds, document order) holding the same entries, rearranged: inside
/// each object the entries are put in the order of their sort keys, and with `across` each entry
/// also moves to another object where it means the same: one of its own kind, or between an
/// ImageDigestMirrorSet and an ImageContentSourcePolicy (both digest mirrors) when its source allows
/// contacting the source (an ICSP cannot say NeverContactSource). `Policy::from_inputs` sorts
/// objects by name, which normalises none of this: the merge must not depend on it.
fn rearranged(case: &Case, moves: &[(Index, u32)], across: bool) -> Case {
    let digest = |kind: u8| kind != 1;
    // Per object: (sort key, position in the case, entry).
    let mut placed: Vec<Vec<(u32, usize, Entry)>> = vec![Vec::new(); case.objects.len()];
    let mut n = 0;
    for (from, (kind, entries)) in case.objects.iter().enumerate() {
        for (source, mirrors) in entries {
            let (pick, key) = &moves[n];
            let to = if across {
                let fits: Vec<usize> = (0..case.objects.len())
                    .filter(|j| {
                        let other = case.objects[*j].0;
                        other == *kind || (!case.never[*source] && digest(*kind) && digest(other))
                    })
                    .collect();
                fits[pick.index(fits.len())]
            } else {
                from
            };
            placed[to].push((*key, n, (*source, mirrors.clone())));
            n += 1;
        }
    }
    let objects = case
        .objects
        .iter()
        .zip(placed)
        .map(|((kind, _), mut entries)| {
            entries.sort_by_key(|(key, n, _)| (*key, *n));
            (*kind, entries.into_iter().map(|(_, _, e)| e).collect())
        })
        .collect();
    Case { objects, ..case.clone() }
}

/// Every file of every target on `base`: path -> (mode, text).
fn all_files(text: &str, base: &str) -> BTreeMap<String, (u32, String)> {
    let inputs = load_text(Path::new("p.yaml"), text).expect("generated input loads");
    let policy = policy(text);
    let node = NodeInputs { inputs: &inputs, policy: &policy, base_registries_conf: base, base_policy_json: None };
    let files: FileSet = mirrorconf::render::render(&[Target::Linux, Target::Containerd, Target::Windows], &node)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    files.iter().map(|(p, f)| (p.to_string(), (f.mode, String::from_utf8_lossy(&f.contents).into_owned()))).collect()
}

fn yaml(case: &Case, order: &[usize]) -> String {
    let mut docs = Vec::new();
    for (n, (kind, entries)) in case.objects.iter().enumerate() {
        let (api, k, field) = match kind {
            0 => ("config.openshift.io/v1", "ImageDigestMirrorSet", "imageDigestMirrors"),
            1 => ("config.openshift.io/v1", "ImageTagMirrorSet", "imageTagMirrors"),
            _ => ("operator.openshift.io/v1alpha1", "ImageContentSourcePolicy", "repositoryDigestMirrors"),
        };
        let mut doc = format!("apiVersion: {api}\nkind: {k}\nmetadata:\n  name: obj-{n}\nspec:\n  {field}:\n");
        for (s, ms) in entries {
            // ICSP means AllowContactingSource: keep the input valid by leaving it out there.
            if *kind == 2 && case.never[*s] {
                continue;
            }
            // The API's mirrors list is a set, and a repeat in a file is refused: each mirror once,
            // in the order of its first place (what the merge made of a repeat).
            let mut ms: Vec<String> = ms.iter().map(|m| mirror(*m)).collect();
            let mut seen = std::collections::HashSet::new();
            ms.retain(|m| seen.insert(m.clone()));
            doc.push_str(&format!("  - source: {}\n    mirrors: [{}]\n", source(*s), ms.join(", ")));
            if *kind != 2 && case.never[*s] {
                doc.push_str("    mirrorSourcePolicy: NeverContactSource\n");
            }
        }
        docs.push(doc);
    }
    let list = |v: &[usize]| v.iter().map(|i| format!("'{}'", SCOPES[*i])).collect::<Vec<_>>().join(", ");
    docs.push(format!(
        "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata:\n  name: cluster\nspec:\n  registrySources:\n    insecureRegistries: [{}]\n    blockedRegistries: [{}]\n",
        list(&case.insecure),
        list(&case.blocked)
    ));
    let n = docs.len();
    order.iter().map(|i| docs[*i % n].clone()).collect::<Vec<_>>().join("---\n")
}

fn policy(text: &str) -> Policy {
    let inputs = load_text(Path::new("p.yaml"), text).expect("generated input loads");
    Policy::from_inputs(&inputs).unwrap_or_else(|e| panic!("generated input is valid: {e}\n{text}"))
}

proptest! {
    // No failure file next to this source (proptest's default): a test writes only in temp dirs,
    // and a failure prints its minimal input, which goes into a test of its own once understood.
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn registries_conf_parses_keeps_the_base_and_says_what_the_policy_says(case in case()) {
        let forward: Vec<usize> = (0..=case.objects.len()).collect();
        let base = BASES[case.base];
        let p = policy(&yaml(&case, &forward));
        let out = registries_conf::render(&p, base).unwrap();

        // Parses, and is byte-stable through a parse and re-serialisation.
        let doc: toml_edit::DocumentMut = out.parse().unwrap_or_else(|e| panic!("{e}\n{out}"));
        prop_assert_eq!(doc.to_string(), out.clone());
        // The admin's text survives untouched.
        prop_assert!(out.starts_with(base), "base lost:\n{}", out);
        // Rendering is deterministic (input order: see the test below).
        prop_assert_eq!(registries_conf::render(&p, base).unwrap(), out.clone());

        // Every merged set is on its scope's entry, in order, with its mode; NeverContactSource blocks.
        let regs = doc.get("registry").and_then(|r| r.as_array_of_tables());
        for (sets, mode) in [(&p.digest_sets, "digest-only"), (&p.tag_sets, "tag-only")] {
            for set in sets.iter() {
                let entry = regs
                    .and_then(|r| r.iter().find(|t| t.get("location").and_then(|l| l.as_str()) == Some(set.source.as_str())))
                    .unwrap_or_else(|| panic!("no entry for {}\n{out}", set.source));
                let got: Vec<&str> = entry["mirror"].as_array_of_tables().unwrap().iter()
                    .filter(|m| m.get("pull-from-mirror").and_then(|v| v.as_str()) == Some(mode))
                    .map(|m| m["location"].as_str().unwrap())
                    .collect();
                let want: Vec<&str> = set.mirrors.iter().map(String::as_str).collect();
                prop_assert_eq!(got, want, "{} {}", set.source, mode);
                if set.never_contact_source {
                    prop_assert_eq!(entry.get("blocked").and_then(|b| b.as_bool()), Some(true));
                }
            }
        }
        // Nothing at all to apply gives the base back byte for byte.
        prop_assert_eq!(registries_conf::render(&Policy::default(), base).unwrap(), base);
    }

    #[test]
    fn hosts_toml_files_parse_and_have_a_host_table(case in case()) {
        let forward: Vec<usize> = (0..=case.objects.len()).collect();
        let p = policy(&yaml(&case, &forward));
        let files = hosts_toml::render(&p, None, &hosts_toml::CaFiles::new()).unwrap();
        for f in &files {
            let doc: toml_edit::DocumentMut = f.text.parse().unwrap_or_else(|e| panic!("{e}\n{}", f.text));
            let hosts = doc["host"].as_table_like().expect("a [host] table");
            prop_assert!(!hosts.is_empty());
            prop_assert!(doc["server"].as_str().is_some_and(|s| s.starts_with("https://")));
        }
    }

    /// The order the inputs come in never shows in the files: not the order of the entries inside
    /// an object, not which object of the same meaning holds an entry (the objects keep their names
    /// and order, so the sort by name in `Policy::from_inputs` does not hide this), not the order of
    /// the documents.
    #[test]
    fn rendered_files_ignore_entry_order_and_which_object_holds_an_entry(case in case(), moves in moves()) {
        let forward: Vec<usize> = (0..=case.objects.len()).collect();
        let backward: Vec<usize> = forward.iter().rev().copied().collect();
        let base = BASES[case.base];
        let want = all_files(&yaml(&case, &forward), base);
        let shuffled = yaml(&rearranged(&case, &moves, false), &forward);
        prop_assert_eq!(&all_files(&shuffled, base), &want, "entries shuffled inside their objects:\n{}", shuffled);
        let moved = yaml(&rearranged(&case, &moves, true), &forward);
        prop_assert_eq!(&all_files(&moved, base), &want, "entries moved across objects:\n{}", moved);
        prop_assert_eq!(&all_files(&yaml(&case, &backward), base), &want, "documents reversed");
    }

    #[test]
    fn policy_json_parses_says_what_the_lists_say_and_keeps_the_base(
        scopes in proptest::sample::subsequence(SCOPES.to_vec(), 0..=SCOPES.len()),
        allow in any::<bool>(),
        base in 0..POLICY_BASES.len(),
    ) {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let policy = Policy {
            allowed_scopes: if allow { scopes.clone() } else { vec![] },
            blocked_scopes: if allow { vec![] } else { scopes.clone() },
            ..Policy::default()
        };
        let base = POLICY_BASES[base];
        let out = policy_json::render(&policy, base).unwrap();
        if scopes.is_empty() {
            prop_assert_eq!(out.as_deref(), base, "no list: the base, byte for byte (or no file)");
            return Ok(());
        }
        let out = out.expect("a list gives a file");
        let doc: serde_json::Value = serde_json::from_str(&out).expect("rendered policy.json parses");
        let (listed, default) = if allow { ("insecureAcceptAnything", "reject") } else { ("reject", "insecureAcceptAnything") };
        prop_assert_eq!(&doc["default"][0]["type"], default);
        for s in &scopes {
            prop_assert_eq!(&doc["transports"]["docker"][s][0]["type"], listed);
            prop_assert_eq!(doc["transports"]["atomic"].get(s).is_some(), s.matches('/').count() < 3);
        }
        if let Some(base) = base {
            let before: serde_json::Value = serde_json::from_str(base).unwrap();
            for (transport, entries) in before["transports"].as_object().unwrap() {
                for (scope, reqs) in entries.as_object().unwrap() {
                    if !scopes.contains(scope) {
                        prop_assert_eq!(&doc["transports"][transport][scope], reqs, "the node's {} {} was lost", transport, scope);
                    }
                }
            }
        }
    }
}
