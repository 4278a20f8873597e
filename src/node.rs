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
}

/// Reads the file `--base` names.
pub fn read_base(path: &Path) -> Result<Base, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Base { text, origin: path.to_path_buf(), adopt: false }),
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
    if let Some(path) = explicit {
        return read_base(path);
    }
    let adopted = root.join(ADOPTED_BASE_PATH);
    if let Some(text) = read(&adopted)? {
        return Ok(Base { text, origin: adopted, adopt: false });
    }
    let current = root.join(render::registries_conf::PATH);
    let ours = sink.manifest()?.0.files.contains_key(render::registries_conf::PATH);
    if !ours {
        if let Some(text) = read(&current)? {
            return Ok(Base { text, origin: current, adopt: true });
        }
    }
    Ok(Base { text: String::new(), origin: adopted, adopt: true })
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
    if let Some(base) = base.as_ref().filter(|b| b.adopt) {
        let path = root.join(ADOPTED_BASE_PATH);
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .and_then(|()| write_atomic(&path, base.text.as_bytes(), 0o644))
            .map_err(|source| Error::Write { path, source })?;
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
    let node = NodeInputs { inputs, policy, base_registries_conf: base.map_or("", |b| b.text.as_str()) };
    render::render(targets, &node).map_err(|e| match (e, base) {
        (render::RenderError::RegistriesConf(inner), Some(b)) => {
            Error::Base { path: b.origin.clone(), source: render::RenderError::RegistriesConf(inner) }
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
