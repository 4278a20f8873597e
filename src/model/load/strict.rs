//! Strict reading of manifest files: every field must be one the kind's schema declares, every
//! value of the declared type, every kind under the apiVersion mirrorconf reads, and a kind that
//! is nearly one of those is a typo, not another kind. serde alone would drop an unknown field
//! (`mirrorSourcePolicies:`) and the policy it meant with it.
//!
//! The schemas are the CRDs of `deploy/api`, embedded: what a file may hold is exactly what the
//! API server accepts, in one place. Objects read from a cluster do not come through here (see
//! docs/design.md, "Validation").

use serde_json::{json, Value as Schema};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// A kind mirrorconf reads and the one apiVersion it reads it under.
pub(super) struct KnownKind {
    pub kind: &'static str,
    pub api_version: &'static str,
}

pub(super) const KNOWN_KINDS: &[KnownKind] = &[
    KnownKind { kind: "ImageDigestMirrorSet", api_version: "config.openshift.io/v1" },
    KnownKind { kind: "ImageTagMirrorSet", api_version: "config.openshift.io/v1" },
    KnownKind { kind: "ImageContentSourcePolicy", api_version: "operator.openshift.io/v1alpha1" },
    KnownKind { kind: "Image", api_version: "config.openshift.io/v1" },
    KnownKind { kind: "ConfigMap", api_version: "v1" },
    KnownKind { kind: "Secret", api_version: "v1" },
];

/// The mirror kinds: long enough that two edits away is still a typo of them and no other real
/// kind, and no other group has kinds of these names.
pub(super) const TYPO_PRONE: &[&str] = &["ImageDigestMirrorSet", "ImageTagMirrorSet", "ImageContentSourcePolicy"];

/// The API groups of the kinds mirrorconf reads (`""` is the core group): a known kind under
/// another version of one of these is refused, not skipped.
pub(super) const GROUPS_READ: &[&str] = &["", "config.openshift.io", "operator.openshift.io"];

/// The CRDs installed on clusters without OpenShift's API; their schemas are what files may hold.
const CRDS: &[&str] = &[
    include_str!("../../../deploy/api/imagedigestmirrorsets.yaml"),
    include_str!("../../../deploy/api/imagetagmirrorsets.yaml"),
    include_str!("../../../deploy/api/imagecontentsourcepolicies.yaml"),
    include_str!("../../../deploy/api/images.yaml"),
];

/// At most this many problems are listed per object; the rest are counted.
const MAX_PROBLEMS: usize = 20;

/// One field that the schema refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldProblem {
    /// Path inside the object, e.g. `spec.imageDigestMirrors[0].mirrorSourcePolicies`.
    pub field: String,
    /// The last key of the path, to find its line.
    pub key: Option<String>,
    pub value: String,
    pub message: String,
    pub fix: Option<String>,
}

/// The known kind `kind` names when it is not one itself but a near miss: another case, a plural,
/// one or two letters off.
pub(super) fn near_miss_kind(kind: &str) -> Option<&'static str> {
    if kind.len() > 64 {
        return None;
    }
    let lower = kind.to_lowercase();
    KNOWN_KINDS
        .iter()
        .map(|k| k.kind)
        .find(|k| k.to_lowercase() == lower)
        .or_else(|| TYPO_PRONE.iter().copied().find(|k| is_close(&lower, k)))
}

/// The schema of each known kind: the embedded CRDs', and the fields of the core kinds.
fn schemas() -> &'static BTreeMap<&'static str, Schema> {
    static SCHEMAS: OnceLock<BTreeMap<&'static str, Schema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut out = BTreeMap::new();
        for text in CRDS {
            // Embedded at build time and parsed by a unit test: a failure here is a build defect.
            let crd: Schema = serde_yaml_ng::from_str(text).expect("an embedded CRD parses");
            let kind = crd["spec"]["names"]["kind"].as_str().expect("an embedded CRD names its kind");
            let kind = KNOWN_KINDS.iter().find(|k| k.kind == kind).expect("an embedded CRD is a known kind").kind;
            out.insert(kind, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone());
        }
        let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
        let core = json!({
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "data": strings, "binaryData": strings, "immutable": {"type": "boolean"},
        });
        out.insert("ConfigMap", json!({"type": "object", "properties": core}));
        let mut secret = core;
        secret["stringData"] = strings;
        secret["type"] = json!({"type": "string"});
        out.insert("Secret", json!({"type": "object", "properties": secret}));
        out
    })
}

/// Every field of `object` (a known kind) its schema refuses, at most [`MAX_PROBLEMS`] of them.
/// `metadata` and `status` are the API server's and the controllers': they are not checked.
pub(super) fn check(kind: &str, object: &Value) -> Vec<FieldProblem> {
    let Some(schema) = schemas().get(kind) else { return Vec::new() };
    let mut walk = Walk { problems: Vec::new(), more: 0, secret: kind == "Secret" };
    if let Value::Mapping(map) = object {
        for (key, value) in map {
            match key.as_str() {
                Some("metadata" | "status") => {}
                _ => walk.field(schema, "", key, value),
            }
        }
    }
    if walk.more > 0 {
        walk.problems.push(FieldProblem {
            field: String::new(),
            key: None,
            value: String::new(),
            message: format!("and {} more problems in this object", walk.more),
            fix: None,
        });
    }
    walk.problems
}

struct Walk {
    problems: Vec<FieldProblem>,
    more: usize,
    /// A Secret's values are credentials: never quoted.
    secret: bool,
}

impl Walk {
    fn push(&mut self, problem: FieldProblem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.more += 1;
        }
    }

    /// One `key: value` of a mapping whose schema is `parent`.
    fn field(&mut self, parent: &Schema, path: &str, key: &Value, value: &Value) {
        let Some(key) = key.as_str() else {
            let field = if path.is_empty() { "<key>".to_string() } else { format!("{path}.<key>") };
            let message = "a key must be a string".to_string();
            self.push(FieldProblem { field, key: None, value: self.shown(key), message, fix: None });
            return;
        };
        let name = printable(key);
        let field = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
        let declared = parent["properties"].get(key).or_else(|| parent.get("additionalProperties"));
        match declared {
            Some(schema) => self.value(schema, &field, Some(key), value),
            None if parent.get("properties").is_none() => {}
            None => {
                let known: Vec<&str> =
                    parent["properties"].as_object().into_iter().flatten().map(|(k, _)| k.as_str()).collect();
                let fix = match suggest(key, &known) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!("remove it; the fields here are {}", known.join(", ")),
                };
                self.push(FieldProblem {
                    field,
                    key: Some(key.to_string()),
                    value: self.shown(value),
                    message: "unknown field: the API declares no such field, so it would be ignored".to_string(),
                    fix: Some(fix),
                });
            }
        }
    }

    fn value(&mut self, schema: &Schema, field: &str, key: Option<&str>, value: &Value) {
        let want = schema["type"].as_str().unwrap_or("");
        let fits = match (want, value) {
            // A null field is an absent one, as the API server reads it.
            (_, Value::Null) | ("", _) => true,
            ("object", Value::Mapping(_)) | ("array", Value::Sequence(_)) | ("string", Value::String(_)) => true,
            ("boolean", Value::Bool(_)) => true,
            ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
            _ => false,
        };
        if !fits {
            let fix = match want {
                "array" => Some("write a list: `- item` lines, or `[item, ...]`".to_string()),
                "string" if !matches!(value, Value::Mapping(_) | Value::Sequence(_)) => {
                    Some("quote it to make it a string".to_string())
                }
                _ => None,
            };
            self.push(FieldProblem {
                field: field.to_string(),
                key: key.map(str::to_string),
                value: self.shown(value),
                message: format!("expected {}, found {}", expected(want), found(value)),
                fix,
            });
            return;
        }
        match value {
            Value::Mapping(map) => {
                for (k, v) in map {
                    self.field(schema, field, k, v);
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(&schema["items"], &format!("{field}[{i}]"), key, item);
                }
            }
            _ => {}
        }
    }

    /// A value as a message shows it: scalars as they are (cut short), collections by their type.
    fn shown(&self, value: &Value) -> String {
        if self.secret {
            return "<not shown: a Secret>".to_string();
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => "null".to_string(),
            other => return format!("<{}>", found(other)),
        };
        printable(&text)
    }
}

/// A key or value from a file as a message may print it: control characters escaped, cut short.
fn printable(text: &str) -> String {
    let cut: String = text.chars().take(256).collect();
    let escaped: String =
        cut.chars().flat_map(|c| if c.is_control() { c.escape_debug().collect::<Vec<_>>() } else { vec![c] }).collect();
    if cut.len() < text.len() {
        format!("{escaped}...")
    } else {
        escaped
    }
}

/// The declared field `key` most likely means: the same but for case, or at most two edits off.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if key.len() > 64 {
        return None;
    }
    let lower = key.to_lowercase();
    let distance = |k: &str| strsim::damerau_levenshtein(&lower, &k.to_lowercase());
    known.iter().copied().min_by_key(|k| distance(k)).filter(|k| is_close(&lower, k))
}

/// Whether `lower` (lowercased) is a typo of `name`: at most three edits, and few for the name's
/// length (`mirrorSourcePolicies` is `mirrorSourcePolicy`, `data` is not `type`).
fn is_close(lower: &str, name: &str) -> bool {
    let d = strsim::damerau_levenshtein(lower, &name.to_lowercase());
    d <= 3 && d * 4 <= name.len()
}

fn expected(schema_type: &str) -> &'static str {
    match schema_type {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "boolean" => "true or false",
        "integer" => "an integer",
        _ => "another type",
    }
}

fn found(value: &Value) -> &'static str {
    match value {
        Value::Mapping(_) => "a mapping",
        Value::Sequence(_) => "a list",
        Value::String(_) => "a string",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::Null => "null",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests;
