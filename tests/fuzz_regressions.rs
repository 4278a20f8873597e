//! Every fuzz seed and every committed fuzz finding (`fuzz/seeds/<target>`, `fuzz/regressions/<target>`)
//! replayed through the fuzz targets' bodies, so a fixed crash stays fixed without libFuzzer.

use std::fs;
use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{} panics", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "no seeds for fuzz target {target}");
}

#[test]
fn manifests() {
    replay("manifests", mirrorconf::fuzzing::manifests);
}

#[test]
fn base_registries_conf() {
    replay("base_registries_conf", mirrorconf::fuzzing::base_registries_conf);
}

#[test]
fn base_policy_json() {
    replay("base_policy_json", mirrorconf::fuzzing::base_policy_json);
}

#[test]
fn resolve() {
    replay("resolve", mirrorconf::fuzzing::resolve);
}
