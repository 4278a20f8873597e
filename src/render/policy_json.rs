//! `/etc/containers/policy.json` (containers-policy.json(5)): the signature policy CRI-O, podman
//! and skopeo check before every pull, edited the way OpenShift's Machine Config Operator edits it
//! for `Image/cluster` `registrySources` (docs/design.md, "Allowed and blocked registries"):
//!
//! - `allowedRegistries` set: `default` becomes `[{"type":"reject"}]` and every allowed scope gets
//!   `transports.docker[scope] = [{"type":"insecureAcceptAnything"}]`;
//! - `blockedRegistries` set: `default` becomes `[{"type":"insecureAcceptAnything"}]` and every
//!   blocked scope gets `[{"type":"reject"}]`;
//! - the same scopes go to `transports.atomic`, except scopes with three or more `/` (the atomic
//!   transport names at most `host/namespace/stream`);
//! - every other key and transport of the node's own file is kept (written with sorted keys).
//!
//! With neither list set the node's file comes back byte for byte (or no file, when it had none).

use crate::policy::Policy;
use serde_json::{json, Map, Value};

pub const PATH: &str = "etc/containers/policy.json";

/// containers-policy.json(5)'s default, the base for a node that has no policy.json.
pub const DEFAULT_BASE: &str = r#"{
    "default": [
        {
            "type": "insecureAcceptAnything"
        }
    ],
    "transports": {
        "docker-daemon": {
            "": [
                {
                    "type": "insecureAcceptAnything"
                }
            ]
        }
    }
}
"#;

#[derive(Debug, thiserror::Error)]
pub enum PolicyJsonError {
    #[error("not valid JSON (line {line}, column {column}): {message}")]
    Syntax { line: usize, column: usize, message: String },
    #[error("{0}")]
    Shape(String),
}

/// Which requirement the listed scopes get, and the default for every other image.
fn requirements(policy: &Policy) -> Option<(&[String], &'static str, &'static str)> {
    if !policy.allowed_scopes.is_empty() {
        Some((&policy.allowed_scopes, "insecureAcceptAnything", "reject"))
    } else if !policy.blocked_scopes.is_empty() {
        Some((&policy.blocked_scopes, "reject", "insecureAcceptAnything"))
    } else {
        None
    }
}

/// Whether the policy changes policy.json at all.
pub fn touches_policy_json(policy: &Policy) -> bool {
    requirements(policy).is_some()
}

/// policy.json for `policy` over the node's own file (`None`: the node has none). `Ok(None)`: no
/// file at all (the node had none and the policy sets neither list).
pub fn render(policy: &Policy, base: Option<&str>) -> Result<Option<String>, PolicyJsonError> {
    let Some((scopes, listed, default)) = requirements(policy) else {
        return Ok(base.map(str::to_string));
    };
    let mut doc: Value = serde_json::from_str(base.unwrap_or(DEFAULT_BASE)).map_err(|e| PolicyJsonError::Syntax {
        line: e.line(),
        column: e.column(),
        // serde_json's messages name the kind of problem, never the document's text.
        message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
    })?;
    let root = doc.as_object_mut().ok_or_else(|| PolicyJsonError::Shape("the top level must be an object".into()))?;
    root.insert("default".into(), json!([{ "type": default }]));
    let transports = root.entry("transports").or_insert_with(|| Value::Object(Map::new()));
    let transports =
        transports.as_object_mut().ok_or_else(|| PolicyJsonError::Shape("\"transports\" must be an object".into()))?;
    for (transport, keep) in [("docker", None), ("atomic", Some(3))] {
        let scopes: Vec<&String> =
            scopes.iter().filter(|s| keep.is_none_or(|limit| s.matches('/').count() < limit)).collect();
        if scopes.is_empty() {
            continue;
        }
        let entries = transports.entry(transport).or_insert_with(|| Value::Object(Map::new()));
        let entries = entries
            .as_object_mut()
            .ok_or_else(|| PolicyJsonError::Shape(format!("\"transports\".{transport:?} must be an object")))?;
        for scope in scopes {
            entries.insert(scope.clone(), json!([{ "type": listed }]));
        }
    }
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value always serialises");
    text.push('\n');
    Ok(Some(text))
}

/// What the signature policy decides for an image `reference` (`host[:port]/path`, no tag or
/// digest) under the rendered policy.json text: the docker transport scope that matched (the most
/// specific one, as containers/image chooses) and whether it accepts.
pub fn decide(policy_json: &str, reference: &str) -> Option<(String, bool)> {
    let doc: Value = serde_json::from_str(policy_json).ok()?;
    let accepts = |reqs: &Value| {
        reqs.as_array().is_some_and(|r| !r.is_empty() && r.iter().all(|q| q["type"] == "insecureAcceptAnything"))
    };
    let docker = doc.get("transports").and_then(|t| t.get("docker")).and_then(Value::as_object);
    // containers/image: the repository itself, then each parent namespace, then the host, then
    // wildcard host scopes from the most specific; then the transport's "" default; then "default".
    let mut candidates = Vec::new();
    let mut cut = reference;
    loop {
        candidates.push(cut.to_string());
        match cut.rfind('/') {
            Some(i) => cut = &cut[..i],
            None => break,
        }
    }
    let host = crate::policy::scope::host_part(reference);
    let mut rest = host;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        candidates.push(format!("*.{rest}"));
    }
    candidates.push(String::new());
    if let Some(docker) = docker {
        for c in candidates {
            if let Some(reqs) = docker.get(&c) {
                let scope = if c.is_empty() { "transports.docker[\"\"]".to_string() } else { c };
                return Some((scope, accepts(reqs)));
            }
        }
    }
    doc.get("default").map(|d| ("default".to_string(), accepts(d)))
}

/// Images a node needs whatever the policy says: the sandbox (pause) image by default.
pub const DEFAULT_MUST_ALLOW: &[&str] = &["registry.k8s.io/pause"];

/// What an admin should know before the allowed or blocked list reaches the nodes: images the node
/// cannot run without (`must_allow`: `host/repository`, e.g. the pause image and mirrorconf's own)
/// that the list would refuse, and mirrors of allowed sources that lie outside the allowed scopes.
pub fn warnings(policy: &Policy, must_allow: &[String]) -> Vec<String> {
    use crate::policy::scope::is_nested;
    let covered = |name: &str, scopes: &[String]| scopes.iter().any(|s| is_nested(name, s));
    let mut out = Vec::new();
    for name in must_allow {
        if !policy.allowed_scopes.is_empty() && !covered(name, &policy.allowed_scopes) {
            out.push(format!(
                "allowedRegistries refuses {name}, which every node needs: add a scope for it, or pods cannot start"
            ));
        }
        if covered(name, &policy.blocked_scopes) {
            out.push(format!("blockedRegistries refuses {name}, which every node needs: pods cannot start"));
        }
    }
    if !policy.allowed_scopes.is_empty() {
        let entries = policy.digest_entries.iter().chain(&policy.tag_entries);
        for e in entries.filter(|e| covered(&e.source, &policy.allowed_scopes)) {
            for m in e.mirrors.iter().filter(|m| !covered(m, &policy.allowed_scopes)) {
                out.push(format!(
                    "{}: mirror {m:?} of the allowed source {:?} lies outside allowedRegistries: pulls of {:?} still use it (the policy checks the image's name), but a direct pull of {m:?} is refused",
                    e.object, e.source, e.source
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
