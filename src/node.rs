//! The edge between the pure core and a node's disk: read manifests and the base file, validate,
//! render, apply. `render` (one shot) and, later, the agent loop both go through here.

use crate::error::Error;
use crate::fileset::FileSet;
use crate::model::{describe_size, load_paths, read_text_from, read_text_limited, Inputs, LimitedRead, LoadError};
use crate::policy::Policy;
use crate::render::{self, NodeInputs, Target};
use crate::sink::local::LocalSink;
use crate::sink::root::Root;
use crate::sink::ApplyReport;
use std::io;
use std::path::{Path, PathBuf};

/// Where the node's original registries.conf is kept once adopted, relative to the root.
pub const ADOPTED_BASE_PATH: &str = "var/lib/mirrorconf/base/registries.conf";
/// Where the node's original policy.json is kept once adopted, relative to the root.
pub const ADOPTED_POLICY_JSON_PATH: &str = "var/lib/mirrorconf/base/policy.json";
/// The largest base registries.conf or policy.json read. A hand-written one is a few KiB; the limit
/// keeps a hostile or runaway file (it is read as root on every render) from costing more than a
/// moment.
pub const MAX_BASE_BYTES: u64 = 1 << 20;

/// Reads a node's own file (`what`: "registries.conf", "policy.json") within [`MAX_BASE_BYTES`];
/// `Ok(None)` when there is no such file. Too big or not UTF-8 is bad input (exit 2), naming the
/// file and the limit.
fn read_base_text(path: &Path, what: &str) -> Result<Option<String>, Error> {
    base_text(path, what, read_text_limited(path, MAX_BASE_BYTES))
}

/// [`read_base_text`] for `rel` beneath `root`: a link there resolves inside the root.
fn read_root_text(root: &Root, rel: &str, what: &str) -> Result<Option<String>, Error> {
    let read = root.open_file(rel).map_err(LimitedRead::Io).and_then(|f| read_text_from(f, MAX_BASE_BYTES));
    base_text(&root.shown(rel), what, read)
}

fn base_text(path: &Path, what: &str, read: Result<String, LimitedRead>) -> Result<Option<String>, Error> {
    let refuse = |message: String| Error::Load(vec![LoadError::new(path, None, message)]);
    let limit = describe_size(MAX_BASE_BYTES);
    match read {
        Ok(text) => Ok(Some(text)),
        Err(LimitedRead::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(LimitedRead::Io(source)) => Err(Error::Read { path: path.to_path_buf(), source }),
        Err(LimitedRead::TooBig { size: Some(n) }) => {
            Err(refuse(format!("{n} bytes, over {limit} (the limit for a base {what}); refused before reading")))
        }
        Err(LimitedRead::TooBig { size: None }) => {
            Err(refuse(format!("more than {limit} (the limit for a base {what}) while reading; refused")))
        }
        Err(LimitedRead::NotUtf8 { offset }) => {
            Err(refuse(format!("not UTF-8 text (invalid byte at offset {offset}); a {what} is text")))
        }
    }
}

/// Loads and validates every manifest under `paths`.
pub fn load_policy<P: AsRef<Path>>(paths: &[P]) -> Result<(Inputs, Policy), Error> {
    let inputs = load_paths(paths).map_err(Error::Load)?;
    let policy = Policy::from_inputs(&inputs)?;
    Ok((inputs, policy))
}

/// The base registries.conf for a node and, when it has to be adopted now, the bytes to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub text: String,
    pub origin: PathBuf,
    /// Set when this run adopts the node's file: it must be saved under [`ADOPTED_BASE_PATH`].
    pub adopt: bool,
    /// The node's own policy.json, kept the same way (`None`: the node has none).
    pub policy_json: Option<OwnFile>,
}

/// A node file mirrorconf edits, as the node had it before mirrorconf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnFile {
    pub text: String,
    pub origin: PathBuf,
    /// Set when this run adopts it (saves it under var/lib/mirrorconf/base/).
    pub adopt: bool,
}

impl Base {
    /// A registries.conf base given as text (no policy.json).
    pub fn from_text(text: impl Into<String>, origin: impl Into<PathBuf>) -> Base {
        Base { text: text.into(), origin: origin.into(), adopt: false, policy_json: None }
    }
}

/// The node's policy.json as the base: the copy adopted earlier; else the node's current file if
/// mirrorconf did not write it (adopted now); else none (the node had none before mirrorconf).
fn resolve_policy_json(root: &Root, owned: &crate::sink::Manifest) -> Result<Option<OwnFile>, Error> {
    let read = |rel: &str| read_root_text(root, rel, "policy.json");
    if let Some(text) = read(ADOPTED_POLICY_JSON_PATH)? {
        return Ok(Some(OwnFile { text, origin: root.shown(ADOPTED_POLICY_JSON_PATH), adopt: false }));
    }
    if owned.files.contains_key(render::policy_json::PATH) {
        return Ok(None);
    }
    let current = root.shown(render::policy_json::PATH);
    Ok(read(render::policy_json::PATH)?.map(|text| OwnFile { text, origin: current, adopt: true }))
}

/// Reads the file `--base` names.
pub fn read_base(path: &Path) -> Result<Base, Error> {
    match read_base_text(path, "registries.conf")? {
        Some(text) => Ok(Base::from_text(text, path)),
        None => Err(Error::Usage(format!("--base {}: no such file", path.display()))),
    }
}

/// Chooses the base: `--base` when given; else the copy adopted earlier; else the node's current
/// registries.conf if mirrorconf did not write it (adopted now); else an empty file.
pub fn resolve_base(explicit: Option<&Path>, sink: &LocalSink) -> Result<Base, Error> {
    let root = sink.root();
    let read = |rel: &str| read_root_text(root, rel, "registries.conf");
    let owned = sink.manifest()?.0;
    let policy_json = resolve_policy_json(root, &owned)?;
    if let Some(path) = explicit {
        return Ok(Base { policy_json, ..read_base(path)? });
    }
    let adopted = root.shown(ADOPTED_BASE_PATH);
    if let Some(text) = read(ADOPTED_BASE_PATH)? {
        return Ok(Base { text, origin: adopted, adopt: false, policy_json });
    }
    let current = root.shown(render::registries_conf::PATH);
    if !owned.files.contains_key(render::registries_conf::PATH) {
        if let Some(text) = read(render::registries_conf::PATH)? {
            return Ok(Base { text, origin: current, adopt: true, policy_json });
        }
    }
    Ok(Base { text: String::new(), origin: adopted, adopt: true, policy_json })
}

/// Everything `render` does: load, validate, render, and only then write. On invalid input nothing
/// under `root` is touched.
pub fn render_to_root<P: AsRef<Path>>(
    manifests: &[P],
    root: &Path,
    base: Option<&Path>,
    targets: &[Target],
) -> Result<Rendered, Error> {
    let inputs = load_paths(manifests).map_err(Error::Load)?;
    apply_inputs(&inputs, root, base, targets)
}

/// Validates `inputs`, renders the node files and applies them under `root` (the agent calls this
/// with whatever its source currently holds).
pub fn apply_inputs(inputs: &Inputs, root: &Path, base: Option<&Path>, targets: &[Target]) -> Result<Rendered, Error> {
    let Prepared { policy, sink, base, files } = prepare(inputs, root, base, targets)?;
    // Under the root's lock: the adopted bases are written where the sink sweeps temp files.
    let lock = sink.lock()?;
    if let Some(base) = &base {
        let adopt = [
            (base.adopt, ADOPTED_BASE_PATH, Some(&base.text)),
            (
                base.policy_json.as_ref().is_some_and(|p| p.adopt),
                ADOPTED_POLICY_JSON_PATH,
                base.policy_json.as_ref().map(|p| &p.text),
            ),
        ];
        for (_, rel, text) in adopt.into_iter().filter(|(adopt, _, _)| *adopt) {
            let text = text.expect("an adopted file has text");
            let dir = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
            sink.root()
                .create_dir_all(dir)
                .and_then(|()| sink.root().write_atomic(rel, text.as_bytes(), 0o644))
                .map_err(|source| Error::Write { path: sink.root().shown(rel), source })?;
        }
    }
    let report = sink.apply_locked(&files, &lock)?;
    Ok(Rendered { policy, report, files })
}

/// Everything `render` has worked out for a root before it touches it.
struct Prepared {
    policy: Policy,
    sink: LocalSink,
    /// The base registries.conf, when the Linux target is rendered.
    base: Option<Base>,
    files: FileSet,
}

/// Validates `inputs`, chooses the base and renders the files for `root`, writing nothing.
fn prepare(inputs: &Inputs, root: &Path, base: Option<&Path>, targets: &[Target]) -> Result<Prepared, Error> {
    let policy = Policy::from_inputs(inputs)?;
    let sink = LocalSink::new(root);
    let base = if targets.contains(&Target::Linux) { Some(resolve_base(base, &sink)?) } else { None };
    let files = render_files(inputs, &policy, base.as_ref(), targets)?;
    Ok(Prepared { policy, sink, base, files })
}

/// What a render did, and the policy it applied.
#[derive(Debug)]
pub struct Rendered {
    pub policy: Policy,
    pub report: ApplyReport,
    /// Everything the node should now hold.
    pub files: FileSet,
}

/// The pure part: the files for `targets`.
pub fn render_files(
    inputs: &Inputs,
    policy: &Policy,
    base: Option<&Base>,
    targets: &[Target],
) -> Result<FileSet, Error> {
    let node = NodeInputs {
        inputs,
        policy,
        base_registries_conf: base.map_or("", |b| b.text.as_str()),
        base_policy_json: base.and_then(|b| b.policy_json.as_ref()).map(|p| p.text.as_str()),
    };
    render::render(targets, &node).map_err(|e| match (e, base) {
        (render::RenderError::RegistriesConf(inner), Some(b)) => {
            Error::Base { path: b.origin.clone(), source: render::RenderError::RegistriesConf(inner) }
        }
        (render::RenderError::PolicyJson(inner), Some(Base { policy_json: Some(p), .. })) => {
            Error::Base { path: p.origin.clone(), source: render::RenderError::PolicyJson(inner) }
        }
        (e, _) => Error::Render(e),
    })
}

/// What `render` would change under `root`, without writing anything (the base is resolved the
/// same way, but not adopted).
pub fn preview<P: AsRef<Path>>(
    manifests: &[P],
    root: &Path,
    base: Option<&Path>,
    targets: &[Target],
) -> Result<crate::inspect::diff::Report, Error> {
    let inputs = load_paths(manifests).map_err(Error::Load)?;
    let Prepared { sink, files, .. } = prepare(&inputs, root, base, targets)?;
    let preview = sink.preview(&files)?;
    crate::inspect::diff::report(&preview.changes, preview.kept_foreign).map_err(Error::Usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(e: Error) -> String {
        assert!(e.is_invalid_input(), "{e}");
        e.to_string()
    }

    #[test]
    fn the_base_file_is_bounded_before_and_while_reading() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("registries.conf");
        std::fs::File::create(&big).unwrap().set_len(MAX_BASE_BYTES + 1).unwrap();
        assert_eq!(
            refusal(read_base(&big).unwrap_err()),
            format!(
                "{}: 1048577 bytes, over 1 MiB (the limit for a base registries.conf); refused before reading",
                big.display()
            )
        );
        assert_eq!(
            refusal(read_base(Path::new("/dev/zero")).unwrap_err()),
            "/dev/zero: more than 1 MiB (the limit for a base registries.conf) while reading; refused"
        );
        std::fs::write(&big, b"a = \"\xff\"\n").unwrap();
        assert!(refusal(read_base(&big).unwrap_err())
            .ends_with("not UTF-8 text (invalid byte at offset 5); a registries.conf is text"));
        std::fs::write(&big, "a = 1\n").unwrap();
        assert_eq!(read_base(&big).unwrap().text, "a = 1\n");
        assert!(matches!(read_base(&dir.path().join("missing")), Err(Error::Usage(_))));
    }

    #[test]
    fn the_nodes_own_file_is_bounded_too() {
        let root = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(root.path());
        assert_eq!(resolve_base(None, &sink).unwrap().text, "");
        let live = root.path().join(render::registries_conf::PATH);
        std::fs::create_dir_all(live.parent().unwrap()).unwrap();
        std::fs::File::create(&live).unwrap().set_len(5 << 20).unwrap();
        let e = refusal(resolve_base(None, &sink).unwrap_err());
        assert!(e.contains("registries.conf: 5242880 bytes, over 1 MiB"), "{e}");
        let adopted = root.path().join(ADOPTED_BASE_PATH);
        std::fs::create_dir_all(adopted.parent().unwrap()).unwrap();
        std::fs::File::create(&adopted).unwrap().set_len(MAX_BASE_BYTES + 1).unwrap();
        let e = refusal(resolve_base(None, &sink).unwrap_err());
        assert!(e.contains("base/registries.conf: 1048577 bytes"), "{e}");
    }
}
