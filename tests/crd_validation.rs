//! The CRDs of deploy/api, checked without a cluster: each openAPIV3Schema as a JSON Schema (with
//! `x-kubernetes-list-type: set` read as `uniqueItems`, as the API server enforces it) plus its CEL
//! rules (`x-kubernetes-validations`, evaluated with the `cel` crate on the value they sit on).
//! Every valid golden case passes them, every invalid case whose fault lies in one object fails
//! them, and for single objects they agree with the agent's own validation except where the table
//! at the end says why not (docs/design.md, "Validation").

use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

struct Crd {
    api_version: String,
    kind: String,
    schema: Value,
    validator: jsonschema::Validator,
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `x-kubernetes-list-type: set` as JSON Schema says it.
fn as_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out: serde_json::Map<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), as_json_schema(v))).collect();
            if m.get("x-kubernetes-list-type") == Some(&json!("set")) {
                out.insert("uniqueItems".into(), json!(true));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(as_json_schema).collect()),
        v => v.clone(),
    }
}

fn crds() -> Vec<Crd> {
    let mut out = Vec::new();
    for entry in fs::read_dir(repo("deploy/api")).unwrap() {
        let path = entry.unwrap().path();
        for doc in yaml_docs(&fs::read_to_string(&path).unwrap()) {
            if doc["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let version = &doc["spec"]["versions"][0];
            let schema = version["schema"]["openAPIV3Schema"].clone();
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .build(&as_json_schema(&schema))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(Crd {
                api_version: format!(
                    "{}/{}",
                    doc["spec"]["group"].as_str().unwrap(),
                    version["name"].as_str().unwrap()
                ),
                kind: doc["spec"]["names"]["kind"].as_str().unwrap().to_string(),
                schema,
                validator,
            });
        }
    }
    assert_eq!(out.len(), 4, "the four kinds mirrorconf reads");
    out
}

/// Evaluates every CEL rule of `schema` on `value`, descending as the API server does.
fn cel_refusals(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    thread_local! {
        // Compiled once: a 1024-item list runs its item rule 1024 times.
        static PROGRAMS: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<cel::Program>>> =
            Default::default();
    }
    for rule in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        let source = rule["rule"].as_str().unwrap();
        let program = PROGRAMS.with_borrow_mut(|p| {
            let compiled = p.entry(source.to_string()).or_insert_with(|| {
                std::rc::Rc::new(cel::Program::compile(source).unwrap_or_else(|e| panic!("{source}: {e}")))
            });
            std::rc::Rc::clone(compiled)
        });
        let mut context = cel::Context::default();
        context.add_variable("self", value.clone()).unwrap();
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => out.push(format!("{path}: {}", rule["message"].as_str().unwrap())),
            other => panic!("{source} on {value}: {other:?}"),
        }
    }
    if let (Some(props), Some(fields)) = (schema["properties"].as_object(), value.as_object()) {
        for (k, sub) in props {
            if let Some(v) = fields.get(k) {
                cel_refusals(sub, v, &format!("{path}.{k}"), out);
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, v) in items.iter().enumerate() {
            cel_refusals(&schema["items"], v, &format!("{path}[{i}]"), out);
        }
    }
}

/// What the API server would say about one object: `None` if it is not one of the CRDs' kinds.
fn refusals(crds: &[Crd], object: &Value) -> Option<Vec<String>> {
    let crd =
        crds.iter().find(|c| object["apiVersion"] == c.api_version.as_str() && object["kind"] == c.kind.as_str())?;
    let mut out: Vec<String> =
        crd.validator.iter_errors(object).map(|e| format!("{}: {e}", e.instance_path())).collect();
    cel_refusals(&crd.schema, object, "", &mut out);
    Some(out)
}

/// Every golden case (the shared ones and mirrorconf's own), with its objects and whether the agent
/// accepts it.
fn cases() -> Vec<(String, Vec<Value>, bool)> {
    let mut out = Vec::new();
    for dir in ["tests/fixtures/golden", "tests/fixtures/cases"] {
        for e in fs::read_dir(repo(dir)).unwrap() {
            let case = e.unwrap().path();
            let objects = yaml_docs(&fs::read_to_string(case.join("manifests.yaml")).unwrap());
            let valid = case.join("expected").is_dir();
            assert!(
                valid != case.join("expected-error.txt").is_file(),
                "{}: expected/ or expected-error.txt",
                case.display()
            );
            out.push((case.file_name().unwrap().to_string_lossy().into_owned(), objects, valid));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Invalid cases no CRD can refuse, and what refuses them instead.
const NOT_ONE_OBJECT: &[(&str, &str)] = &[
    (
        "mco-06-conflicting-policy-rejected",
        "two objects give one source different policies: the agent's cross-object check",
    ),
    ("mco-07-never-contact-self-mirror-rejected", "openshift/api declares no rule for it: the agent (and the MCO)"),
    ("invalid-base-v1", "the node's own registries.conf: the agent's renderer"),
    ("invalid-ca", "a ConfigMap's contents (core kind, no schema of ours): the agent's CA checks"),
];

#[test]
fn every_valid_golden_case_passes_the_crds() {
    let crds = crds();
    for (case, objects, valid) in cases().into_iter().filter(|c| c.2) {
        assert!(valid);
        for o in &objects {
            if let Some(errors) = refusals(&crds, o) {
                assert!(errors.is_empty(), "{case}: {} {} refused: {errors:#?}", o["kind"], o["metadata"]["name"]);
            }
        }
    }
}

#[test]
fn every_invalid_single_object_case_fails_the_crds() {
    let crds = crds();
    let invalid: Vec<_> = cases().into_iter().filter(|c| !c.2).collect();
    for (name, _) in NOT_ONE_OBJECT {
        assert!(invalid.iter().any(|c| c.0 == *name), "NOT_ONE_OBJECT names {name}, which is not an invalid case");
    }
    for (case, objects, _) in invalid {
        let refused: Vec<String> = objects.iter().filter_map(|o| refusals(&crds, o)).flatten().collect();
        match NOT_ONE_OBJECT.iter().find(|(n, _)| *n == case) {
            Some((_, why)) => assert!(refused.is_empty(), "{case} ({why}) is refused by a CRD after all: {refused:#?}"),
            None => assert!(!refused.is_empty(), "{case}: the agent refuses it, the CRDs accept every object"),
        }
    }
}

#[test]
fn the_crds_carry_no_defaults_and_their_patterns_are_re2() {
    // A `default: []` (what serde's defaults generate) would be filled in before validation, making
    // has(self.blockedRegistries) true on every Image: the CEL rule would then refuse them all.
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                assert!(!m.contains_key("default"), "{path}: a default changes what the API server validates");
                if let Some(p) = m.get("pattern") {
                    // The API server compiles patterns as Go's RE2, which the regex crate matches.
                    regex::Regex::new(p.as_str().unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"));
                }
                if m.contains_key("properties") || m.contains_key("items") || path.is_empty() {
                    assert!(m.contains_key("type"), "{path}: a structural schema types every node");
                }
                m.iter().for_each(|(k, v)| walk(v, &format!("{path}/{k}")));
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{path}/{i}"))),
            _ => {}
        }
    }
    for crd in crds() {
        walk(&crd.schema, "");
    }
}

#[test]
fn every_field_the_agent_reads_is_declared() {
    // The API server drops fields a CRD does not declare, so each one the agent's types read must be.
    fn walk(ours: &Value, installed: &Value, path: &str) {
        for (k, sub) in ours["properties"].as_object().into_iter().flatten() {
            // The entry type is shared with IDMS; an ICSP has no such field (the agent refuses it in
            // files, and the API server drops it, as OpenShift's does).
            if path.starts_with("ImageContentSourcePolicy") && k == "mirrorSourcePolicy" {
                continue;
            }
            let there = &installed["properties"][k];
            assert!(there.is_object(), "{path}.{k} is read by the agent but not declared in deploy/api");
            walk(sub, there, &format!("{path}.{k}"));
        }
        if ours["items"].is_object() {
            walk(&ours["items"], &installed["items"], &format!("{path}[]"));
        }
    }
    let crds = crds();
    for generated in mirrorconf::model::custom_resource_definitions() {
        let generated = serde_json::to_value(&generated).unwrap();
        let kind = generated["spec"]["names"]["kind"].as_str().unwrap();
        let installed = crds.iter().find(|c| c.kind == kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
        walk(&generated["spec"]["versions"][0]["schema"]["openAPIV3Schema"], &installed.schema, kind);
    }
}

/// Single objects through both checks. `Agree` cases must get one verdict from both; the others
/// are the known differences, each with its reason.
#[derive(Debug, PartialEq)]
enum Expect {
    Agree,
    OnlyAgentRefuses(&'static str),
    OnlyCrdRefuses(&'static str),
}

fn agent_refuses(object: &Value) -> bool {
    let text = serde_json::to_string(object).unwrap();
    match mirrorconf::model::load_text(Path::new("object.json"), &text) {
        Ok(inputs) => mirrorconf::policy::Policy::from_inputs(&inputs).is_err(),
        Err(_) => true,
    }
}

fn mirror_set(kind: &str, entry: Value) -> Value {
    let (api, field) = match kind {
        "ImageDigestMirrorSet" => ("config.openshift.io/v1", "imageDigestMirrors"),
        "ImageTagMirrorSet" => ("config.openshift.io/v1", "imageTagMirrors"),
        _ => ("operator.openshift.io/v1alpha1", "repositoryDigestMirrors"),
    };
    json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x"}, "spec": {field: [entry]}})
}

fn image(registry_sources: Value) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
           "spec": {"registrySources": registry_sources}})
}

#[test]
fn for_single_objects_the_crds_and_the_agent_agree_but_for_the_documented_differences() {
    use Expect::*;
    let crds = crds();
    let mut samples: Vec<(Value, Expect)> = Vec::new();
    let sources = [
        "quay.io",
        "quay.io/ns/app",
        "*.corp.example",
        "reg.corp:5000/team/app",
        "10.0.0.1:5000/x",
        "UPPER.example/ns",
        "my-reg.io/a__b/c.d-e",
        "Bad Source!",
        "",
        "quay.io/NS",
        "docker://quay.io/ns",
        "quay.io/ns:tag",
        "quay.io/ns@sha256:0123",
        "*.corp/path",
        "*",
        "quay..io",
        "-bad.io",
        "quay.io/",
        "quay.io:port",
    ];
    let mirrors =
        ["mirror.corp/ns", "m:8443/x", "*.mirror.corp", "mirror.corp/UPPER", "mirror.corp/ns/", "https://m.corp"];
    for kind in ["ImageDigestMirrorSet", "ImageTagMirrorSet", "ImageContentSourcePolicy"] {
        for s in sources {
            samples.push((mirror_set(kind, json!({"source": s, "mirrors": ["mirror.corp/x"]})), Agree));
        }
        for m in mirrors {
            samples.push((mirror_set(kind, json!({"source": "quay.io/ns", "mirrors": [m]})), Agree));
        }
    }
    for kind in ["ImageDigestMirrorSet", "ImageTagMirrorSet", "ImageContentSourcePolicy"] {
        // mirrors is a set in the API: a repeat is refused by both.
        samples.push((mirror_set(kind, json!({"source": "quay.io/ns", "mirrors": ["m.corp/ns", "m.corp/ns"]})), Agree));
        samples.push((
            mirror_set(kind, json!({"source": "quay.io/ns", "mirrors": ["m.corp/ns"], "mirrorSourcePolicies": "NeverContactSource"})),
            OnlyAgentRefuses("an unknown field: the API server prunes it, or refuses it under kubectl's strict field validation, which a JSON Schema reading of the CRD cannot model"),
        ));
    }
    for kind in ["ImageDigestMirrorSet", "ImageTagMirrorSet"] {
        for p in ["NeverContactSource", "AllowContactingSource", "Sometimes"] {
            samples.push((
                mirror_set(kind, json!({"source": "q.io/a", "mirrors": ["m.io/a"], "mirrorSourcePolicy": p})),
                Agree,
            ));
        }
        samples.push((
            mirror_set(kind, json!({"source": "q.io/a", "mirrors": ["m.io/a"], "mirrorSourcePolicy": ""})),
            OnlyCrdRefuses("the enum has no empty value; the agent reads \"\" as unset"),
        ));
        samples.push((
            mirror_set(kind, json!({"source": "q.io/a", "mirrors": ["q.io/a", "m.io/a"], "mirrorSourcePolicy": "NeverContactSource"})),
            OnlyAgentRefuses("openshift/api declares no rule for the source among its own NeverContactSource mirrors"),
        ));
    }
    let long = "a".repeat(257);
    let many: Vec<String> = (0..1025).map(|i| format!("r{i}.corp")).collect();
    for list in ["insecureRegistries", "blockedRegistries", "allowedRegistries"] {
        for scope in [
            "quay.io",
            "*.corp.example",
            "reg:5000/ns",
            "",
            long.as_str(),
            "quay.io/ns:tag",
            "*.corp/path",
            "Bad Source!",
        ] {
            samples.push((image(json!({list: [scope]})), Agree));
        }
        samples.push((image(json!({list: many[..1024]})), Agree));
        samples.push((image(json!({list: many})), Agree));
    }
    samples.push((image(json!({"allowedRegistries": ["a.io"], "blockedRegistries": ["b.io"]})), Agree));
    samples.push((
        image(json!({"allowedRegistries": ["a.io"], "blockedRegistries": []})),
        OnlyCrdRefuses("the API's rule asks whether the field is set, the agent whether the list is empty"),
    ));
    samples.push((image(json!({"containerRuntimeSearchRegistries": ["quay.io", "reg.corp:5000"]})), Agree));
    samples.push((image(json!({"containerRuntimeSearchRegistries": ["quay.io", "quay.io"]})), Agree));
    samples.push((
        image(json!({"containerRuntimeSearchRegistries": []})),
        OnlyCrdRefuses("minItems 1 in the API; the agent reads an empty list as none"),
    ));
    samples.push((
        json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
               "spec": {"registrysources": {"blockedRegistries": ["b.io"]}}}),
        OnlyAgentRefuses("an unknown field (see above)"),
    ));
    samples.push((
        image(json!({"containerRuntimeSearchRegistries": ["quay.io/ns"]})),
        OnlyAgentRefuses("the API's format: hostname sits on the list, where the API server does not apply it"),
    ));

    for (object, expect) in samples {
        let crd = !refusals(&crds, &object).unwrap().is_empty();
        let agent = agent_refuses(&object);
        let got = match (agent, crd) {
            (a, c) if a == c => Agree,
            (true, false) => OnlyAgentRefuses(""),
            (false, true) => OnlyCrdRefuses(""),
            _ => unreachable!(),
        };
        let same = matches!(
            (&got, &expect),
            (Agree, Agree) | (OnlyAgentRefuses(_), OnlyAgentRefuses(_)) | (OnlyCrdRefuses(_), OnlyCrdRefuses(_))
        );
        let shown: String = object.to_string().chars().take(300).collect();
        assert!(same, "{shown}: expected {expect:?}, got {got:?} (agent refuses: {agent}, CRD refuses: {crd})");
    }
}
