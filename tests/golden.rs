//! Golden cases. `tests/fixtures/golden/` holds the shared reference cases (mco-* compared by meaning,
//! as their README says; win-* byte for byte). `tests/fixtures/cases/` holds mirrorconf's own cases,
//! compared byte for byte. Each case: `manifests.yaml`, optional `base.conf`, optional `policy.json`
//! (the node's own, put in place before the render), optional `targets`
//! (one per line; default linux, or windows for win-*), and `expected/` or `expected-error.txt`.
//! `MIRRORCONF_BLESS=1 cargo test --test golden` rewrites the expected files of mirrorconf's own cases.

mod common;

use common::{mirrorconf, registries_meaning, tree};
use std::fs;
use std::path::Path;

fn cases(dir: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut out: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", root.display());
    out
}

fn targets(case: &Path) -> Vec<String> {
    match fs::read_to_string(case.join("targets")) {
        Ok(t) => t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(_) if case.file_name().unwrap().to_string_lossy().starts_with("win-") => vec!["windows".into()],
        Err(_) => vec!["linux".into()],
    }
}

/// Renders a case into a fresh root with the real binary; returns (exit code, stderr, root).
fn run_case(case: &Path) -> (i32, String, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    if case.join("policy.json").exists() {
        fs::create_dir_all(root.path().join("etc/containers")).unwrap();
        fs::copy(case.join("policy.json"), root.path().join("etc/containers/policy.json")).unwrap();
    }
    let manifests = case.join("manifests.yaml");
    let mut args: Vec<String> = vec![
        "render".into(),
        "--manifests".into(),
        manifests.display().to_string(),
        "--root".into(),
        root.path().display().to_string(),
    ];
    if case.join("base.conf").exists() {
        args.extend(["--base".into(), case.join("base.conf").display().to_string()]);
    }
    for t in targets(case) {
        args.extend(["--target".into(), t]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = mirrorconf(&args);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), root)
}

/// The node files of a rendered root, leaving out mirrorconf's own bookkeeping.
fn node_files(root: &Path) -> Vec<String> {
    tree(root).into_iter().filter(|p| !p.starts_with("var/lib/mirrorconf/")).collect()
}

fn check_error_case(case: &Path) -> bool {
    let Ok(expected) = fs::read_to_string(case.join("expected-error.txt")) else { return false };
    let (code, stderr, root) = run_case(case);
    assert_eq!(code, 2, "{}: expected exit 2, stderr:\n{stderr}", case.display());
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let want = line.trim().trim_start_matches("INVALID: ");
        assert!(stderr.contains(want), "{}: stderr lacks {want:?}:\n{stderr}", case.display());
    }
    assert!(tree(root.path()).is_empty(), "{}: refused input must write nothing", case.display());
    true
}

/// How a case's files are compared with its expected ones.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// The shared MCO cases: by meaning, as their README says.
    Meaning,
    Bytes,
}

/// Runs every case under `dir`; with `bless`, rewrites the expected files instead of comparing.
fn check_cases(dir: &str, compare: impl Fn(&str) -> Compare, bless: bool) {
    for case in cases(dir) {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if check_error_case(&case) {
            continue;
        }
        let (code, stderr, root) = run_case(&case);
        assert_eq!(code, 0, "{name}: {stderr}");
        let expected_root = case.join("expected");
        if bless {
            let _ = fs::remove_dir_all(&expected_root);
            for f in node_files(root.path()) {
                let dest = expected_root.join(&f);
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                fs::copy(root.path().join(&f), dest).unwrap();
            }
            continue;
        }
        let expected_files = tree(&expected_root);
        assert!(!expected_files.is_empty(), "{name}: no expected files (bless it first)");
        let mut got_files = node_files(root.path());
        if compare(&name) == Compare::Meaning && !expected_files.iter().any(|f| f.ends_with("policy.json")) {
            // The shared MCO cases predate policy.json: they speak for registries.conf only.
            got_files.retain(|f| !f.ends_with("policy.json"));
        }
        assert_eq!(got_files, expected_files, "{name}: set of files");
        for f in expected_files {
            let want = fs::read_to_string(expected_root.join(&f)).unwrap();
            let got = fs::read_to_string(root.path().join(&f)).unwrap();
            if compare(&name) == Compare::Meaning {
                assert_eq!(registries_meaning(&got), registries_meaning(&want), "{name}: {f} by meaning:\n{got}");
                let search = |t: &str| {
                    let d: toml_edit::DocumentMut = t.parse().unwrap();
                    d.get("unqualified-search-registries").map(|v| v.to_string().replace('\'', "\"").replace(' ', ""))
                };
                assert_eq!(search(&got), search(&want), "{name}: search registries kept from the base");
            } else {
                assert_eq!(got, want, "{name}: {f} byte for byte");
            }
        }
    }
}

#[test]
fn shared_golden_cases() {
    check_cases("golden", |name| if name.starts_with("mco-") { Compare::Meaning } else { Compare::Bytes }, false);
}

#[test]
fn own_cases_byte_for_byte() {
    check_cases("cases", |_| Compare::Bytes, std::env::var_os("MIRRORCONF_BLESS").is_some());
}
