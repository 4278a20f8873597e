use super::*;
use crate::fileset::MODE_PUBLIC;
use crate::sink::PENDING;
use crate::text::sha256_hex;
use std::os::unix::fs::MetadataExt;

fn set(files: &[(&str, &str)]) -> FileSet {
    let mut s = FileSet::new();
    for (p, c) in files {
        s.insert(*p, *c, MODE_PUBLIC).unwrap();
    }
    s
}

#[test]
fn writes_then_skips_unchanged_files() {
    let root = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(root.path());
    let r = sink.apply(&set(&[("etc/a.conf", "one")])).unwrap();
    assert_eq!(r.written, ["etc/a.conf"]);
    let ino = fs::metadata(root.path().join("etc/a.conf")).unwrap().ino();
    let r = sink.apply(&set(&[("etc/a.conf", "one")])).unwrap();
    assert!(!r.changed());
    assert_eq!(r.unchanged, ["etc/a.conf"]);
    // Not rewritten: a rename would have given a new inode.
    assert_eq!(fs::metadata(root.path().join("etc/a.conf")).unwrap().ino(), ino);
    sink.apply(&set(&[("etc/a.conf", "two")])).unwrap();
    assert_eq!(fs::read_to_string(root.path().join("etc/a.conf")).unwrap(), "two");
    let leftovers: Vec<_> = fs::read_dir(root.path().join("etc")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
}

#[test]
fn removes_only_what_it_created() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc/certs.d/foreign")).unwrap();
    fs::write(root.path().join("etc/certs.d/foreign/ca.crt"), "theirs").unwrap();
    fs::write(root.path().join("etc/certs.d/mine-looking.crt"), "theirs too").unwrap();
    let sink = LocalSink::new(root.path());
    sink.apply(&set(&[("etc/certs.d/ours/ca.crt", "x"), ("etc/keep.conf", "k")])).unwrap();
    let r = sink.apply(&set(&[("etc/keep.conf", "k")])).unwrap();
    assert_eq!(r.removed, ["etc/certs.d/ours/ca.crt"]);
    assert!(!root.path().join("etc/certs.d/ours").exists(), "its own empty folder goes");
    assert!(root.path().join("etc/certs.d/foreign/ca.crt").exists());
    assert!(root.path().join("etc/certs.d/mine-looking.crt").exists());
    assert!(root.path().join("etc/keep.conf").exists());
}

#[test]
fn a_folder_someone_else_filled_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(root.path());
    sink.apply(&set(&[("d/ours/f", "x")])).unwrap();
    fs::write(root.path().join("d/ours/theirs"), "y").unwrap();
    sink.apply(&FileSet::new()).unwrap();
    assert!(!root.path().join("d/ours/f").exists());
    assert!(root.path().join("d/ours/theirs").exists());
}

#[test]
fn never_overwrites_someone_elses_file_unless_it_takes_over() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc/certs.d/reg.io")).unwrap();
    fs::write(root.path().join("etc/certs.d/reg.io/ca.crt"), "admin's").unwrap();
    fs::write(root.path().join("etc/main.conf"), "original").unwrap();
    let sink = LocalSink::new(root.path());
    let mut s = set(&[("etc/certs.d/reg.io/ca.crt", "ours")]);
    s.insert_taking_over("etc/main.conf", "rendered", MODE_PUBLIC).unwrap();
    let r = sink.apply(&s).unwrap();
    assert_eq!(r.kept_foreign, ["etc/certs.d/reg.io/ca.crt"]);
    assert_eq!(r.written, ["etc/main.conf"]);
    assert_eq!(fs::read_to_string(root.path().join("etc/certs.d/reg.io/ca.crt")).unwrap(), "admin's");
    // Once the admin removes theirs, mirrorconf manages the path; and never removes the kept one.
    sink.apply(&FileSet::new()).unwrap();
    assert!(root.path().join("etc/certs.d/reg.io/ca.crt").exists());
    fs::remove_file(root.path().join("etc/certs.d/reg.io/ca.crt")).unwrap();
    let r = sink.apply(&s).unwrap();
    assert_eq!(r.written, ["etc/certs.d/reg.io/ca.crt", "etc/main.conf"]);
}

#[test]
fn fixes_the_mode_without_rewriting() {
    let root = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(root.path());
    sink.apply(&set(&[("f", "x")])).unwrap();
    fs::set_permissions(root.path().join("f"), fs::Permissions::from_mode(0o666)).unwrap();
    let mut s = FileSet::new();
    s.insert("f", "x", 0o600).unwrap();
    let r = sink.apply(&s).unwrap();
    assert!(!r.changed());
    assert_eq!(fs::metadata(root.path().join("f")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn state_entries_outside_the_root_never_cause_a_removal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(dir.path().join("outside")).unwrap();
    fs::write(dir.path().join("outside/victim"), "keep me").unwrap();
    let sink = LocalSink::new(&root);
    sink.apply(&set(&[("etc/a.conf", "x")])).unwrap();
    let victim = dir.path().join("outside/victim").display().to_string();
    let hostile = serde_json::json!({"version": 1, "files": {
        "../outside/victim": "00", victim.clone(): "00", "etc/a.conf": sha256_hex(b"x")
    }, "dirs": ["../outside"]});
    fs::write(root.join(MANIFEST_PATH), hostile.to_string()).unwrap();
    let r = sink.apply(&FileSet::new()).unwrap();
    assert_eq!(r.removed, ["etc/a.conf"]);
    assert_eq!(fs::read_to_string(dir.path().join("outside/victim")).unwrap(), "keep me");
    let (m, dirty) = sink.manifest().unwrap();
    assert!(!dirty, "the bad entries are gone from the state file once it is rewritten");
    assert!(m.files.is_empty());
}

#[test]
fn nothing_is_removed_through_a_symbolic_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let sink = LocalSink::new(&root);
    sink.apply(&set(&[("etc/certs.d/r.io/ca.crt", "x")])).unwrap();
    // Someone swaps the owned folder for a link to a folder elsewhere holding the same name.
    fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    fs::write(dir.path().join("elsewhere/ca.crt"), "theirs").unwrap();
    fs::remove_dir_all(root.join("etc/certs.d/r.io")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("etc/certs.d/r.io")).unwrap();
    sink.apply(&FileSet::new()).unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("elsewhere/ca.crt")).unwrap(), "theirs");
    assert!(sink.manifest().unwrap().0.files.is_empty(), "what lies behind a link is no longer owned");
}

#[test]
fn a_killed_runs_temp_files_are_swept_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(root.path());
    sink.apply(&set(&[("etc/a/x.conf", "1"), ("etc/b/y.conf", "1")])).unwrap();
    let debris =
        ["etc/a/.mirrorconf-Ab3dE9.tmp", "etc/b/.mirrorconf-000000.tmp", "var/lib/mirrorconf/.mirrorconf-zzzzzz.tmp"];
    let not_ours = ["etc/a/.mirrorconf-toolong1.tmp", "etc/a/mirrorconf-abcdef.tmp", "other/.mirrorconf-abcdef.tmp"];
    fs::create_dir(root.path().join("other")).unwrap();
    for p in debris.iter().chain(&not_ours) {
        fs::write(root.path().join(p), "partial").unwrap();
    }
    // A killed run leaves its claim behind.
    let (mut m, _) = sink.manifest().unwrap();
    m.files.insert("etc/a/x.conf".into(), PENDING.into());
    fs::write(root.path().join(MANIFEST_PATH), m.to_bytes()).unwrap();
    let mut r = sink.apply(&set(&[("etc/a/x.conf", "1"), ("etc/b/y.conf", "1")])).unwrap();
    r.swept.sort();
    let mut want: Vec<&str> = debris.to_vec();
    want.sort();
    assert_eq!(r.swept, want);
    for p in debris {
        assert!(!root.path().join(p).exists(), "{p}");
    }
    for p in not_ours {
        assert!(root.path().join(p).exists(), "{p} is not a name mirrorconf writes, or not in a folder it writes");
    }
}

#[test]
fn an_owned_file_whose_folder_is_gone_is_not_an_error() {
    let root = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(root.path());
    sink.apply(&set(&[("certs.d/r11.a.example/hosts.toml", "1"), ("certs.d/r12.a.example/hosts.toml", "1")])).unwrap();
    fs::remove_dir_all(root.path().join("certs.d")).unwrap();
    let r = sink.apply(&set(&[("etc/other", "2")])).unwrap();
    assert_eq!(r.written, ["etc/other"]);
    assert!(r.removed.is_empty());
    let (m, _) = sink.manifest().unwrap();
    assert_eq!(m.files.keys().collect::<Vec<_>>(), ["etc/other"]);
    assert!(m.dirs.iter().all(|d| !d.starts_with("certs.d")), "{:?}", m.dirs);
}

#[test]
fn someone_elses_identical_file_keeps_its_mode() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    fs::write(root.path().join("etc/ca.crt"), "x").unwrap();
    fs::set_permissions(root.path().join("etc/ca.crt"), fs::Permissions::from_mode(0o600)).unwrap();
    let sink = LocalSink::new(root.path());
    let r = sink.apply(&set(&[("etc/ca.crt", "x")])).unwrap();
    assert_eq!(r.unchanged, ["etc/ca.crt"]);
    assert_eq!(fs::metadata(root.path().join("etc/ca.crt")).unwrap().permissions().mode() & 0o777, 0o600);
}
