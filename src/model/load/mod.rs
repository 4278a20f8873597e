//! Finding objects in files: folders (recursively `*.yaml`, `*.yml`, `*.json`), multi-document YAML,
//! and `kind: List` (or typed lists such as `ImageDigestMirrorSetList`). Kinds mirrorconf does not
//! read are skipped; the same object defined twice is an error, since the cluster could never hold both.
//!
//! Everything read here is untrusted, so a load is bounded before the YAML parser sees anything
//! ([`Limits`]): each file and the whole load have a size limit, checked from the file's metadata
//! and again while reading (a FIFO or a `/proc` file reports no size), and a linear pre-scan refuses
//! text that nests deeper than libyaml can parse in linear time.

mod files;
mod lines;

pub(crate) use lines::value_line;
mod strict;

use super::depth;
use super::{ConfigMap, Image, ImageContentSourcePolicy, ImageDigestMirrorSet, ImageTagMirrorSet, Inputs, Secret};
use super::{Diagnostic, Origin};
use files::{collect_files, read_bounded, ReadError};
pub(crate) use files::{describe_size, read_text_from, read_text_limited, LimitedRead};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Nesting depth refused before parsing. Kubernetes objects nest fewer than 15 levels (a `List` of
/// objects with `managedFields` included); libyaml's scanner does work per token in proportion to
/// the depth, which is what makes 100,000 nested `[` take minutes.
pub const MAX_DEPTH: usize = 64;

/// YAML tokens allowed in one file, as libyaml counts them (scalars, brackets, indicators, and the
/// start and end of every block collection): one per two bytes of the file size limit.
/// serde_yaml_ng holds every event of a document in memory (about 500 bytes per collection), so
/// 4 MiB of `[[]]` or of `- - - x` took a gigabyte; this halves the worst case or better. A
/// Kubernetes object in YAML has about one token per 8 bytes (a 4 MiB one about 500,000), compact
/// JSON with short names about one per 4.
pub const MAX_TOKENS: usize = 2_000_000;

/// Bounds on what one load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one file (or one text given to [`load_text`]).
    pub file_bytes: u64,
    /// Bytes over all files of one [`load_paths`] call.
    pub load_bytes: u64,
    /// Nesting depth (collections inside collections) of any document.
    pub depth: usize,
    /// YAML tokens in one file (or one text).
    pub tokens: usize,
}

impl Limits {
    /// 4 MiB per file: the API server refuses requests over 3 MiB, so any object a cluster can hold
    /// fits in a file, YAML indentation included. 16 MiB over all files of one load: room for a
    /// whole cluster's mirror policy (100,000 IDMS entries are about 15 MiB of YAML) while a hostile
    /// folder cannot make one load take more than a few hundred MiB of memory.
    pub const DEFAULT: Limits =
        Limits { file_bytes: 4 << 20, load_bytes: 16 << 20, depth: MAX_DEPTH, tokens: MAX_TOKENS };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// `4 MiB` for limits that are whole MiB, else the byte count.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// A problem with one file or one document in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub path: PathBuf,
    /// 1-based document number inside a multi-document file, when the problem is in one document.
    pub document: Option<usize>,
    /// 1-based line: the field's, the object's first, or where the parser stopped.
    pub line: Option<usize>,
    /// `Kind/name`, when the problem is in one object.
    pub object: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
    pub fix: Option<String>,
}

impl LoadError {
    /// A problem with a whole file or document, with no object or field to name.
    pub fn new(path: &Path, document: Option<usize>, message: impl Into<String>) -> LoadError {
        LoadError {
            path: path.to_path_buf(),
            document,
            line: None,
            object: None,
            field: None,
            value: None,
            message: message.into(),
            fix: None,
        }
    }

    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic {
            file: Some(self.path.clone()),
            line: self.line,
            object: self.object.clone(),
            field: self.field.clone(),
            value: self.value.clone(),
            message: self.message.clone(),
            fix: self.fix.clone(),
            document: self.document,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic().fmt(f)
    }
}

/// Loads every object from the given files and folders within [`Limits::DEFAULT`]. All problems
/// are collected and returned together so that one run shows everything that needs fixing.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Inputs, Vec<LoadError>> {
    load_paths_with(paths, &Limits::DEFAULT)
}

/// [`load_paths`] with other limits.
pub fn load_paths_with<P: AsRef<Path>>(paths: &[P], limits: &Limits) -> Result<Inputs, Vec<LoadError>> {
    let mut loader = Loader::new(limits);
    let mut used: u64 = 0;
    'paths: for path in paths {
        let path = path.as_ref();
        for file in collect_files(path, &mut loader) {
            match read_bounded(&file, limits.file_bytes, limits.load_bytes.saturating_sub(used)) {
                Ok(text) => {
                    used += text.len() as u64;
                    loader.load_text(&file, &text);
                }
                Err(ReadError::OverLoad) => {
                    let message = format!(
                        "would take this load over {} (the limit for all files of one load); refused, and the files after it were not read",
                        size(limits.load_bytes)
                    );
                    loader.error(&file, None, message);
                    break 'paths;
                }
                Err(ReadError::Refused(message)) => loader.error(&file, None, message),
            }
        }
    }
    loader.finish()
}

/// Parses the objects of one YAML/JSON text as if it were the file `origin` (no I/O), within
/// [`Limits::DEFAULT`] (the per-file size and the depth).
pub fn load_text(origin: &Path, text: &str) -> Result<Inputs, Vec<LoadError>> {
    load_text_with(origin, text, &Limits::DEFAULT)
}

/// [`load_text`] with other limits.
pub fn load_text_with(origin: &Path, text: &str, limits: &Limits) -> Result<Inputs, Vec<LoadError>> {
    let mut loader = Loader::new(limits);
    if text.len() as u64 > limits.file_bytes {
        let message = format!(
            "{} bytes, over {} (the limit for one file); refused before parsing",
            text.len(),
            size(limits.file_bytes)
        );
        loader.error(origin, None, message);
    } else {
        loader.load_text(origin, text);
    }
    loader.finish()
}

struct Loader {
    depth_limit: usize,
    token_limit: usize,
    inputs: Inputs,
    errors: Vec<LoadError>,
    /// (kind, namespace, name) -> where it was first seen, to refuse duplicates.
    seen: BTreeMap<(String, String, String), String>,
}

impl Loader {
    fn new(limits: &Limits) -> Loader {
        Loader {
            depth_limit: limits.depth,
            token_limit: limits.tokens,
            inputs: Inputs::default(),
            errors: Vec::new(),
            seen: BTreeMap::new(),
        }
    }

    fn error(&mut self, path: &Path, document: Option<usize>, message: impl Into<String>) {
        self.errors.push(LoadError::new(path, document, message));
    }

    /// A problem with a whole document, at its first line.
    fn doc_error(&mut self, doc: &Doc, message: impl Into<String>) {
        let mut error = LoadError::new(doc.path, Some(doc.number), message);
        error.line = doc.line();
        self.errors.push(error);
    }

    /// A problem in one object (or its kind) of `doc`.
    fn object_error(&mut self, doc: &Doc, object: String, line: Option<usize>, problem: ObjectProblem) {
        let named = !problem.field.is_empty();
        self.errors.push(LoadError {
            path: doc.path.to_path_buf(),
            document: Some(doc.number),
            line: line.or(doc.line()),
            object: Some(object),
            field: Some(problem.field).filter(|_| named),
            value: Some(problem.value).filter(|_| named),
            message: problem.message,
            fix: problem.fix,
        });
    }

    fn load_text(&mut self, path: &Path, text: &str) {
        if let Err(excess) = depth::check(text, self.depth_limit, self.token_limit) {
            let message = match excess {
                depth::Excess::Depth(at) => format!(
                    "nested deeper than {} levels (the limit) at line {}, column {}; refused before parsing",
                    self.depth_limit, at.line, at.column
                ),
                depth::Excess::Tokens(at) => format!(
                    "more than {} YAML tokens (scalars, brackets and indicators; the limit for one file) by line {}, column {}; refused before parsing",
                    self.token_limit, at.line, at.column
                ),
            };
            self.error(path, None, message);
            return;
        }
        let mut values = Vec::new();
        let mut broken = false;
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            match Value::deserialize(doc) {
                Ok(value) => values.push(value),
                Err(e) => {
                    let mut error = LoadError::new(path, Some(i + 1), format!("not valid YAML or JSON: {e}"));
                    error.line = e.location().map(|l| l.line());
                    self.errors.push(error);
                    // The parser cannot resynchronise after a syntax error.
                    broken = true;
                    break;
                }
            }
        }
        let spans = if broken { None } else { lines::document_starts(text, values.len()) };
        for (i, value) in values.into_iter().enumerate() {
            if value.is_null() {
                continue;
            }
            let span = spans.as_ref().map(|s| s[i]);
            let own_text = span.map(|s| Arc::from(s.text(text)));
            let doc = Doc { path, number: i + 1, span, text, own_text };
            self.accept(&doc, value, None);
        }
    }

    /// `list_type` is `(apiVersion, kind)` of a typed list's items, which the API server omits.
    fn accept(&mut self, doc: &Doc, mut value: Value, list_type: Option<(&str, &str)>) {
        let path = doc.path;
        if !matches!(value, Value::Mapping(_)) {
            self.doc_error(doc, "a document must be a Kubernetes object (a mapping)");
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
            self.doc_error(doc, "object has no kind");
            return;
        }
        if kind == "List" || kind.ends_with("List") {
            let item_type = kind.strip_suffix("List").filter(|k| !k.is_empty());
            let items = match value.get_mut("items").map(std::mem::take) {
                Some(Value::Sequence(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(_) => {
                    self.doc_error(doc, format!("{kind}: items must be a list"));
                    return;
                }
            };
            for item in items {
                self.accept(doc, item, item_type.map(|k| (api_version.as_str(), k)));
            }
            return;
        }
        let object = format!("{kind}/{}", printable_name(&value));
        let Some(known) = strict::KNOWN_KINDS.iter().find(|k| k.kind == kind) else {
            if let Some(meant) = strict::near_miss_kind(&kind) {
                let problem = ObjectProblem {
                    field: "kind".into(),
                    value: kind.clone(),
                    message: format!("not a kind mirrorconf reads; did you mean {meant}?"),
                    fix: Some(format!("write `kind: {meant}`")),
                };
                let line = doc.key_line("kind");
                self.object_error(doc, object, line, problem);
            } else {
                tracing::debug!(file = %path.display(), %api_version, %kind, "skipping a kind mirrorconf does not read");
            }
            return;
        };
        if api_version != known.api_version {
            let group = |v: &str| v.rsplit_once('/').map(|(g, _)| g.to_string()).unwrap_or_default();
            let (group, known_group) = (group(&api_version), group(known.api_version));
            // `Image` and the core kinds' names are used by other groups for other kinds (OpenShift's
            // image.openshift.io/v1 Image is one): only the groups mirrorconf reads are its own.
            let ours = strict::TYPO_PRONE.contains(&known.kind) || strict::GROUPS_READ.contains(&group.as_str());
            if !ours {
                tracing::debug!(file = %path.display(), %api_version, %kind, "skipping a kind of another API group");
                return;
            }
            let message = if group == known_group {
                format!("not a version of {kind} that mirrorconf reads (it reads {})", known.api_version)
            } else {
                format!("{kind} is not in this API group (it is {})", known.api_version)
            };
            let problem = ObjectProblem {
                field: "apiVersion".into(),
                value: api_version.clone(),
                message,
                fix: Some(format!("write `apiVersion: {}`", known.api_version)),
            };
            let line = doc.key_line("apiVersion");
            self.object_error(doc, object, line, problem);
            return;
        }
        let problems = strict::check(known.kind, &value);
        if !problems.is_empty() {
            for p in problems {
                let line = p.key.as_deref().and_then(|k| doc.key_line(k));
                let problem = ObjectProblem { field: p.field, value: p.value, message: p.message, fix: p.fix };
                self.object_error(doc, object.clone(), line, problem);
            }
            return;
        }
        match known.kind {
            "ImageDigestMirrorSet" => {
                if let Some(o) = self.decode::<ImageDigestMirrorSet>(doc, &kind, value) {
                    self.inputs.digest_sets.push(o);
                }
            }
            "ImageTagMirrorSet" => {
                if let Some(o) = self.decode::<ImageTagMirrorSet>(doc, &kind, value) {
                    self.inputs.tag_sets.push(o);
                }
            }
            "ImageContentSourcePolicy" => {
                if let Some(o) = self.decode::<ImageContentSourcePolicy>(doc, &kind, value) {
                    self.inputs.content_source_policies.push(o);
                }
            }
            "Image" => {
                let named_cluster =
                    value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) == Some("cluster");
                if !named_cluster {
                    tracing::warn!(file = %path.display(), "ignoring an Image object not named \"cluster\"");
                    return;
                }
                if let Some(o) = self.decode::<Image>(doc, &kind, value) {
                    self.inputs.image = Some(o);
                }
            }
            "ConfigMap" => {
                if let Some(o) = self.decode::<ConfigMap>(doc, &kind, value) {
                    self.inputs.config_maps.push(o);
                }
            }
            "Secret" => {
                if let Some(o) = self.decode::<Secret>(doc, &kind, value) {
                    self.inputs.secrets.push(o);
                }
            }
            other => unreachable!("KNOWN_KINDS lists {other} without a decoder"),
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, doc: &Doc, kind: &str, value: Value) -> Option<T> {
        let path = doc.path;
        let meta = value.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
        let namespace = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            let mut error = LoadError::new(path, Some(doc.number), format!("{kind} has no metadata.name"));
            error.line = doc.line();
            self.errors.push(error);
            return None;
        }
        let object_name = format!("{kind}/{name}");
        let object = match serde_yaml_ng::from_value::<T>(value) {
            Ok(o) => o,
            // A Secret's decode error could quote the credentials it holds: say where, not what.
            Err(_) if kind == "Secret" => {
                let problem = ObjectProblem {
                    field: String::new(),
                    value: String::new(),
                    message: "not a valid Secret; details withheld, it holds credentials".into(),
                    fix: None,
                };
                self.object_error(doc, object_name, None, problem);
                return None;
            }
            Err(e) => {
                let problem =
                    ObjectProblem { field: String::new(), value: String::new(), message: e.to_string(), fix: None };
                self.object_error(doc, object_name, None, problem);
                return None;
            }
        };
        let here = match doc.line() {
            Some(line) => format!("{}:{line}", path.display()),
            None => format!("{} (document {})", path.display(), doc.number),
        };
        let key = (kind.to_string(), namespace, name.clone());
        if let Some(first) = self.seen.get(&key) {
            let message = format!("{kind}/{name} is defined twice; first in {first}");
            let mut error = LoadError::new(path, Some(doc.number), message);
            error.line = doc.line();
            self.errors.push(error);
            return None;
        }
        self.seen.insert(key, here);
        self.inputs
            .origins
            .insert(object_name, Origin { file: path.to_path_buf(), line: doc.line(), text: doc.own_text.clone() });
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

/// Where the document being read sits in its file.
struct Doc<'t> {
    path: &'t Path,
    /// 1-based, as the parser yields documents.
    number: usize,
    span: Option<lines::Span>,
    /// The whole file.
    text: &'t str,
    /// This document's text from its first line, shared by the objects in it.
    own_text: Option<Arc<str>>,
}

impl Doc<'_> {
    /// The object's first line.
    fn line(&self) -> Option<usize> {
        self.span.map(|s| s.line)
    }

    /// The line of `key` in this document, when it is written there once.
    fn key_line(&self, key: &str) -> Option<usize> {
        self.span.and_then(|s| s.key_line(self.text, key))
    }
}

/// What is wrong with one field of an object.
struct ObjectProblem {
    field: String,
    value: String,
    message: String,
    fix: Option<String>,
}

/// `metadata.name` as a message may show it.
fn printable_name(object: &Value) -> String {
    match object.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.chars().take(253).flat_map(char::escape_debug).collect(),
        _ => "<unnamed>".to_string(),
    }
}

#[cfg(test)]
mod tests;
