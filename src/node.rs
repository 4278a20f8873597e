//! The edge between the pure core and a node's disk: read manifests and the base file, validate,
//! render, apply. `render` (one shot) and, later, the agent loop both go through here.

use crate::error::Error;
use crate::fileset::FileSet;
use crate::model::{load_paths, Inputs};
use crate::policy::Policy;
use crate::render::{self, NodeInputs, Target};
use crate::sink::local::{write_atomic, LocalSink};
use crate::sink::ApplyReport;
use std::io;
use std::path::{Path, PathBuf};

/// Where the node's original registries.conf is kept once adopted, relative to the root.
pub const ADOPTED_BASE_PATH: &str = "var/lib/mirrorconf/base/registries.conf";
/// Where the node's original policy.json is kept once adopted, relative to the root.
pub const ADOPTED_POLICY_JSON_PATH: &str = "var/lib/mirrorconf/base/policy.json";
/// The largest policy.json read from a node.
const MAX_POLICY_JSON_BYTES: u64 = 1 << 20;

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
fn resolve_policy_json(root: &Path, owned: &crate::sink::Manifest) -> Result<Option<OwnFile>, Error> {
    let read = |path: &Path| {
        let bytes = crate::sink::local::read_bounded(path, MAX_POLICY_JSON_BYTES)?;
        bytes
            .map(|b| String::from_utf8(b).map_err(|_| Error::Usage(format!("{}: not UTF-8 text", path.display()))))
            .transpose()
    };
    let adopted = root.join(ADOPTED_POLICY_JSON_PATH);
    if let Some(text) = read(&adopted)? {
        return Ok(Some(OwnFile { text, origin: adopted, adopt: false }));
    }
    if owned.files.contains_key(render::policy_json::PATH) {
        return Ok(None);
    }
    let current = root.join(render::policy_json::PATH);
    Ok(read(&current)?.map(|text| OwnFile { text, origin: current, adopt: true }))
}

/// Reads the file `--base` names.
pub fn read_base(path: &Path) -> Result<Base, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Base::from_text(text, path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(Error::Usage(format!("--base {}: no such file", path.display())))
        }
        Err(source) => Err(Error::Read { path: path.to_path_buf(), source }),
    }
}

/// Chooses the base: `--base` when given; else the copy adopted earlier; else the node's current
/// registries.conf if mirrorconf did not write it (adopted now); else an empty file.
pub fn resolve_base(root: &Path, explicit: Option<&Path>, sink: &LocalSink) -> Result<Base, Error> {
    let read = |path: &Path| -> Result<Option<String>, Error> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path: path.to_path_buf(), source }),
        }
    };
    let owned = sink.manifest()?.0;
    let policy_json = resolve_policy_json(root, &owned)?;
    if let Some(path) = explicit {
        return Ok(Base { policy_json, ..read_base(path)? });
    }
    let adopted = root.join(ADOPTED_BASE_PATH);
    if let Some(text) = read(&adopted)? {
        return Ok(Base { text, origin: adopted, adopt: false, policy_json });
    }
    let current = root.join(render::registries_conf::PATH);
    if !owned.files.contains_key(render::registries_conf::PATH) {
        if let Some(text) = read(&current)? {
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
            let path = root.join(rel);
            let text = text.expect("an adopted file has text");
            std::fs::create_dir_all(path.parent().expect("has a parent"))
                .and_then(|()| write_atomic(&path, text.as_bytes(), 0o644))
                .map_err(|source| Error::Write { path, source })?;
        }
    }
    let report = sink.apply(&files)?;
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
    let base = if targets.contains(&Target::Linux) { Some(resolve_base(root, base, &sink)?) } else { None };
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
