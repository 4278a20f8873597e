//! Finding objects in files: folders (recursively `*.yaml`, `*.yml`, `*.json`), multi-document YAML,
//! and `kind: List` (or typed lists such as `ImageDigestMirrorSetList`). Kinds mirrorconf does not
//! read are skipped; the same object defined twice is an error, since the cluster could never hold both.
//!
//! Everything read here is untrusted, so a load is bounded before the YAML parser sees anything
//! ([`Limits`]): each file and the whole load have a size limit, checked from the file's metadata
//! and again while reading (a FIFO or a `/proc` file reports no size), and a linear pre-scan refuses
//! text that nests deeper than libyaml can parse in linear time.

use super::depth;
use super::{ConfigMap, Image, ImageContentSourcePolicy, ImageDigestMirrorSet, ImageTagMirrorSet, Inputs, Secret};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
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

enum ReadError {
    /// The file would take the load past its total limit.
    OverLoad,
    Refused(String),
}

fn read_bounded(path: &Path, file_limit: u64, load_left: u64) -> Result<String, ReadError> {
    let cap = file_limit.min(load_left);
    read_text_limited(path, cap).map_err(|e| match e {
        LimitedRead::TooBig { .. } if cap < file_limit => ReadError::OverLoad,
        LimitedRead::TooBig { size: Some(n) } => ReadError::Refused(format!(
            "{n} bytes, over {} (the limit for one file); refused before reading",
            size(file_limit)
        )),
        LimitedRead::TooBig { size: None } => ReadError::Refused(format!(
            "more than {} (the limit for one file) while reading; refused",
            size(file_limit)
        )),
        LimitedRead::NotUtf8 { offset } => {
            ReadError::Refused(format!("not UTF-8 text (invalid byte at offset {offset})"))
        }
        LimitedRead::Io(e) => ReadError::Refused(format!("cannot read: {e}")),
    })
}

/// Why [`read_text_limited`] gave no text.
#[derive(Debug)]
pub(crate) enum LimitedRead {
    /// Over the limit: `size` from the metadata when it said so, `None` when found while reading.
    TooBig {
        size: Option<u64>,
    },
    NotUtf8 {
        offset: usize,
    },
    Io(std::io::Error),
}

/// `4 MiB` for limits that are whole MiB, else the byte count (for messages).
pub(crate) fn describe_size(bytes: u64) -> String {
    size(bytes)
}

/// Reads a file as UTF-8 text of at most `limit` bytes. The size is checked from the metadata
/// first (nothing is read from a file that says it is too big) and enforced while reading, since
/// a FIFO, a device or a `/proc` file reports no size, and a file can grow meanwhile.
pub(crate) fn read_text_limited(path: &Path, limit: u64) -> Result<String, LimitedRead> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(LimitedRead::Io)?;
    let meta = file.metadata().map_err(LimitedRead::Io)?;
    if meta.is_file() && meta.len() > limit {
        return Err(LimitedRead::TooBig { size: Some(meta.len()) });
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() { meta.len() as usize + 1 } else { 8192 });
    file.take(limit + 1).read_to_end(&mut bytes).map_err(LimitedRead::Io)?;
    if bytes.len() as u64 > limit {
        return Err(LimitedRead::TooBig { size: None });
    }
    String::from_utf8(bytes).map_err(|e| LimitedRead::NotUtf8 { offset: e.utf8_error().valid_up_to() })
}

/// The files to read for one `--manifests` argument, sorted. A file named explicitly is read
/// whatever it is (a FIFO such as `<(oc get idms -o yaml)` included); in folders, only regular
/// `*.yaml`, `*.yml` and `*.json` files. Every folder is listed once, however many symlinks lead to
/// it, and a symlink back to a folder being walked is reported, not followed.
fn collect_files(path: &Path, loader: &mut Loader) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            loader.error(path, None, format!("cannot read: {e}"));
            return Vec::new();
        }
    };
    if !meta.is_dir() {
        return vec![path.to_path_buf()];
    }
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let mut out = Vec::new();
    // Every folder listed so far, and where.
    let mut listed: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    listed.insert(id(&meta), path.to_path_buf());
    // Folders still to list, each with the folders above it in this walk.
    let mut stack = vec![(path.to_path_buf(), vec![id(&meta)])];
    while let Some((dir, above)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                loader.error(path, None, format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => loader.error(path, None, format!("cannot list {}: {e}", dir.display())),
            }
        }
        // Sorted, so that which of two paths to one folder is used never depends on directory order.
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            // Hidden files include editors' swap files and Kubernetes ConfigMap mount internals
            // (`..data`), which would otherwise be read twice.
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = dir.join(&name);
            let wanted = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let here = id(&m);
                    if above.contains(&here) {
                        let message =
                            format!("symlink loop: {} leads back to {}", p.display(), listed[&here].display());
                        loader.error(path, None, message);
                    } else if let Some(first) = listed.get(&here) {
                        tracing::warn!(folder = %p.display(), same_as = %first.display(), "a folder reached twice through symlinks is read once");
                    } else {
                        listed.insert(here, p.clone());
                        let mut chain = above.clone();
                        chain.push(here);
                        subdirs.push((p, chain));
                    }
                }
                Ok(m) if wanted && !m.is_file() => {
                    loader.error(
                        &p,
                        None,
                        "not a regular file (a FIFO, socket or device); only regular files are read from folders",
                    );
                }
                // Unreadable entries are read anyway, so that the reason is reported.
                _ if wanted => out.push(p),
                _ => {}
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    // Sorted so that messages and duplicate detection do not depend on the walk.
    out.sort();
    out
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
        self.errors.push(LoadError { path: path.to_path_buf(), document, message: message.into() });
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
        assert_eq!(
            e[0].to_string(),
            "t.yaml: 21 bytes, over 10 bytes (the limit for one file); refused before parsing"
        );
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
        let e = load_paths_with(
            &[&dir.path().join("a.yaml"), &dir.path().join("b.yaml"), &dir.path().join("c.yaml")],
            &limits,
        );
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
                format!(
                    "{r}/z-broken.yaml (document 1): not valid YAML or JSON: {}",
                    messages[2].split_once("JSON: ").unwrap().1
                ),
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
}
