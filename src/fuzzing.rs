//! The bodies of the fuzz targets (`fuzz/`), kept in the library so that every finding replays as
//! an ordinary test (`tests/fuzz_regressions.rs`) without libFuzzer. Each one panics only when an
//! invariant breaks; bad input must come back as an error, never a panic.

use crate::error::Error;
use crate::fileset::check_relative_path;
use crate::inspect::{containerd, disruption, linux, reference::ImageRef};
use crate::model::{load_text, Inputs};
use crate::node::{render_files, Base};
use crate::policy::Policy;
use crate::render::{hosts_toml::Layout, registries_conf, Target};
use std::path::Path;
use toml_edit::DocumentMut;

/// A small policy with digest and tag mirrors, a blocked and an insecure scope.
const POLICY: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/team\n    mirrors: [m.local/team]\n---\napiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {name: t}\nspec:\n  imageTagMirrors:\n  - source: quay.io/team/app\n    mirrors: [t.local/app]\n---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    blockedRegistries: [quay.io/team/blocked]\n    containerRuntimeSearchRegistries: [quay.io]\n";

fn base(text: &str) -> Base {
    Base::from_text(text, "fuzz-base.conf")
}

/// A policy `Policy::from_inputs` accepted renders for every target. Only the node's base
/// registries.conf can still be refused, and only by the target that reads it (Linux); any other
/// error is a bug: validation let through something the renderers cannot handle.
fn assert_sane(inputs: &Inputs, policy: &Policy, base_text: &str) {
    for target in [Target::Linux, Target::Windows, Target::Containerd] {
        let files = match render_files(inputs, policy, Some(&base(base_text)), &[target]) {
            Ok(files) => files,
            Err(Error::Base { .. }) if target == Target::Linux && !base_text.is_empty() => continue,
            Err(e) => panic!("a validated policy does not render for {target:?}: {e}"),
        };
        for (path, file) in files.iter() {
            assert!(check_relative_path(path).is_ok(), "rendered a path that leaves the root: {path:?}");
            if path.ends_with(".toml") || path.ends_with(".conf") {
                let text = std::str::from_utf8(&file.contents).expect("rendered TOML is UTF-8");
                assert!(text.parse::<DocumentMut>().is_ok(), "rendered {path} does not parse:\n{text}");
            }
        }
    }
}

/// Any bytes as a manifests file.
pub fn manifests(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(inputs) = load_text(Path::new("fuzz.yaml"), text) else { return };
    let Ok(policy) = Policy::from_inputs(&inputs) else { return };
    assert_sane(&inputs, &policy, "");
}

/// Any bytes as the node's base registries.conf.
pub fn base_registries_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let empty = Inputs::default();
    let no_policy = Policy::from_inputs(&empty).expect("no input is valid input");
    match render_files(&empty, &no_policy, Some(&base(text)), &[Target::Linux]) {
        Ok(files) => {
            let conf = files.get(registries_conf::PATH).map(|f| f.contents.as_slice()).unwrap_or_default();
            assert_eq!(conf, text.as_bytes(), "without a policy the base must come back byte for byte");
        }
        Err(Error::Base { .. }) => {}
        Err(e) => panic!("no policy, and an error that is not about the base: {e}"),
    }
    let inputs = load_text(Path::new("policy.yaml"), POLICY).expect("the fixed policy loads");
    let policy = Policy::from_inputs(&inputs).expect("the fixed policy is valid");
    assert_sane(&inputs, &policy, text);
    if let Ok(files) = render_files(&inputs, &policy, Some(&base(text)), &[Target::Linux]) {
        let conf = String::from_utf8_lossy(&files.get(registries_conf::PATH).expect("rendered").contents).into_owned();
        let _ = disruption::classify(text, &conf);
    }
}

/// Any bytes as `<image reference>\n<registries.conf or hosts.toml text>`.
pub fn resolve(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (reference, conf) = text.split_once('\n').unwrap_or((text, ""));
    let _ = disruption::classify(conf, reference);
    let Ok(r) = ImageRef::parse(reference) else { return };
    let _ = linux::resolve(&r, conf, &|_| None);
    for layout in [Layout::Windows, Layout::Linux] {
        let mut tree = crate::fileset::FileSet::new();
        if tree.insert(format!("{}/hosts.toml", layout.dir_name(&r.registry)), conf, 0o644).is_ok() {
            let _ = containerd::resolve(&r, &tree, layout);
        }
    }
}

/// Any bytes as the node's own policy.json.
pub fn base_policy_json(data: &[u8]) {
    use crate::render::policy_json;
    let Ok(text) = std::str::from_utf8(data) else { return };
    let none = Policy::default();
    assert_eq!(
        policy_json::render(&none, Some(text)).expect("no list never reads the base").as_deref(),
        Some(text),
        "without allowed or blocked registries the base must come back byte for byte"
    );
    let lists = [
        (vec!["quay.io/team".to_string(), "*.corp.example".to_string()], vec![]),
        (vec![], vec!["bad.io".to_string()]),
    ];
    for (allowed, blocked) in lists {
        let policy = Policy { allowed_scopes: allowed, blocked_scopes: blocked, ..Policy::default() };
        if let Ok(out) = policy_json::render(&policy, Some(text)) {
            let out = out.expect("a list always gives a file");
            let doc: serde_json::Value = serde_json::from_str(&out).expect("rendered policy.json parses");
            assert!(doc["default"].is_array() && doc["transports"]["docker"].is_object(), "{out}");
        }
    }
}
