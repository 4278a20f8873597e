//! Finding objects in files: folders (recursively `*.yaml`, `*.yml`, `*.json`), multi-document YAML,
//! and `kind: List` (or typed lists such as `ImageDigestMirrorSetList`). Kinds mirrorconf does not
//! read are skipped; the same object defined twice is an error, since the cluster could never hold both.

use super::{ConfigMap, Image, ImageContentSourcePolicy, ImageDigestMirrorSet, ImageTagMirrorSet, Inputs, Secret};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with one file or one document in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub path: PathBuf,
    /// 1-based document number inside a multi-document file, when the problem is in one document.
    pub document: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(n) => write!(f, "{} (document {n}): {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Loads every object from the given files and folders. All problems are collected and returned
/// together so that one run shows everything that needs fixing.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Inputs, Vec<LoadError>> {
    let mut loader = Loader::default();
    for path in paths {
        let path = path.as_ref();
        match collect_files(path) {
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => loader.load_text(&file, &text),
                        Err(e) => loader.error(&file, None, format!("cannot read: {e}")),
                    }
                }
            }
            Err(e) => loader.error(path, None, e),
        }
    }
    loader.finish()
}

/// Parses the objects of one YAML/JSON text as if it were the file `origin` (no I/O).
pub fn load_text(origin: &Path, text: &str) -> Result<Inputs, Vec<LoadError>> {
    let mut loader = Loader::default();
    loader.load_text(origin, text);
    loader.finish()
}

fn collect_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        // A file named explicitly is read whatever its extension.
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let p = entry.path();
            let name = entry.file_name();
            // Hidden files include editors' swap files and Kubernetes ConfigMap mount internals
            // (`..data`), which would otherwise be read twice.
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
                out.push(p);
            }
        }
    }
    // Sorted so that messages and duplicate detection do not depend on directory order.
    out.sort();
    Ok(out)
}

#[derive(Default)]
struct Loader {
    inputs: Inputs,
    errors: Vec<LoadError>,
    /// (kind, namespace, name) -> where it was first seen, to refuse duplicates.
    seen: BTreeMap<(String, String, String), String>,
}

impl Loader {
    fn error(&mut self, path: &Path, document: Option<usize>, message: impl Into<String>) {
        self.errors.push(LoadError { path: path.to_path_buf(), document, message: message.into() });
    }

    fn load_text(&mut self, path: &Path, text: &str) {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            match Value::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(value) => self.accept(path, i + 1, value, None),
                Err(e) => {
                    self.error(path, Some(i + 1), format!("not valid YAML or JSON: {e}"));
                    // The parser cannot resynchronise after a syntax error.
                    break;
                }
            }
        }
    }

    /// `list_type` is `(apiVersion, kind)` of a typed list's items, which the API server omits.
    fn accept(&mut self, path: &Path, doc: usize, mut value: Value, list_type: Option<(&str, &str)>) {
        if !matches!(value, Value::Mapping(_)) {
            self.error(path, Some(doc), "a document must be a Kubernetes object (a mapping)");
            return;
        }
        if let Some((api_version, kind)) = list_type {
            let map = value.as_mapping_mut().expect("checked above");
            map.entry("apiVersion".into()).or_insert_with(|| api_version.into());
            map.entry("kind".into()).or_insert_with(|| kind.into());
        }
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
        if kind.is_empty() {
            self.error(path, Some(doc), "object has no kind");
            return;
        }
        if kind == "List" || kind.ends_with("List") {
            let item_type = kind.strip_suffix("List").filter(|k| !k.is_empty());
            let items = match value.get_mut("items").map(std::mem::take) {
                Some(Value::Sequence(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(_) => {
                    self.error(path, Some(doc), format!("{kind}: items must be a list"));
                    return;
                }
            };
            for item in items {
                self.accept(path, doc, item, item_type.map(|k| (api_version.as_str(), k)));
            }
            return;
        }
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        match (group, kind.as_str()) {
            ("config.openshift.io", "ImageDigestMirrorSet") => {
                if let Some(o) = self.decode::<ImageDigestMirrorSet>(path, doc, &kind, value) {
                    self.inputs.digest_sets.push(o);
                }
            }
            ("config.openshift.io", "ImageTagMirrorSet") => {
                if let Some(o) = self.decode::<ImageTagMirrorSet>(path, doc, &kind, value) {
                    self.inputs.tag_sets.push(o);
                }
            }
            ("operator.openshift.io", "ImageContentSourcePolicy") => {
                if let Some(o) = self.decode::<ImageContentSourcePolicy>(path, doc, &kind, value) {
                    self.inputs.content_source_policies.push(o);
                }
            }
            ("config.openshift.io", "Image") => {
                let named_cluster =
                    value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) == Some("cluster");
                if !named_cluster {
                    tracing::warn!(file = %path.display(), "ignoring an Image object not named \"cluster\"");
                    return;
                }
                if let Some(o) = self.decode::<Image>(path, doc, &kind, value) {
                    self.inputs.image = Some(o);
                }
            }
            ("", "ConfigMap") if api_version == "v1" => {
                if let Some(o) = self.decode::<ConfigMap>(path, doc, &kind, value) {
                    self.inputs.config_maps.push(o);
                }
            }
            ("", "Secret") if api_version == "v1" => {
                if let Some(o) = self.decode::<Secret>(path, doc, &kind, value) {
                    self.inputs.secrets.push(o);
                }
            }
            _ => {
                tracing::debug!(file = %path.display(), %api_version, %kind, "skipping a kind mirrorconf does not read")
            }
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, path: &Path, doc: usize, kind: &str, value: Value) -> Option<T> {
        let meta = value.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
        let namespace = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            self.error(path, Some(doc), format!("{kind} has no metadata.name"));
            return None;
        }
        let object = match serde_yaml_ng::from_value::<T>(value) {
            Ok(o) => o,
            // A Secret's decode error could quote the credentials it holds: say where, not what.
            Err(e) if kind == "Secret" => {
                let location =
                    e.location().map(|l| format!(" (line {}, column {})", l.line(), l.column())).unwrap_or_default();
                self.error(
                    path,
                    Some(doc),
                    format!("{kind}/{name}: not a valid Secret{location}; details withheld, it holds credentials"),
                );
                return None;
            }
            Err(e) => {
                self.error(path, Some(doc), format!("{kind}/{name}: {e}"));
                return None;
            }
        };
        let here = format!("{} (document {doc})", path.display());
        let key = (kind.to_string(), namespace, name.clone());
        if let Some(first) = self.seen.get(&key) {
            let message = format!("{kind}/{name} is defined twice; first in {first}");
            self.error(path, Some(doc), message);
            return None;
        }
        self.seen.insert(key, here);
        Some(object)
    }

    fn finish(self) -> Result<Inputs, Vec<LoadError>> {
        if self.errors.is_empty() {
            Ok(self.inputs)
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(errors[0].message.starts_with("ImageDigestMirrorSet/a: "), "{}", errors[0]);
        assert!(errors[1].message.contains("no metadata.name"), "{}", errors[1]);
        assert!(errors[2].to_string().starts_with("test.yaml (document 3): "), "{}", errors[2]);
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
}
