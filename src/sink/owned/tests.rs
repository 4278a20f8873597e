//! The protocol's rules, over an in-memory store that logs every operation in order. The real
//! sinks are tested against a real file system (sink::local) and a real sshd (tests/push_ssh.rs).

use super::*;
use crate::fileset::MODE_PUBLIC;
use std::cell::RefCell;
use std::convert::Infallible;

#[derive(Default)]
struct Memory {
    files: RefCell<BTreeMap<String, Vec<u8>>>,
    dirs: RefCell<BTreeSet<String>>,
    temps: RefCell<BTreeSet<String>>,
    state: RefCell<Option<Manifest>>,
    log: RefCell<Vec<String>>,
}

impl Memory {
    fn ops(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }
}

impl Store for Memory {
    type Error = Infallible;
    fn compare(&self, rel: &str, wanted: &File, owned_hash: Option<&str>) -> Result<Current, Infallible> {
        // Trusts the state like the SSH sink: a matching hash is taken as current without a read.
        if owned_hash == Some(sha256_hex(&wanted.contents).as_str()) {
            return Ok(Current::Same);
        }
        Ok(match self.files.borrow().get(rel) {
            None => Current::Absent,
            Some(b) if *b == wanted.contents => Current::Same,
            Some(_) => Current::Differs,
        })
    }
    fn dir_exists(&self, rel: &str) -> Result<bool, Infallible> {
        Ok(self.dirs.borrow().contains(rel))
    }
    fn create_dir(&self, rel: &str) -> Result<(), Infallible> {
        self.log.borrow_mut().push(format!("mkdir {rel}"));
        self.dirs.borrow_mut().insert(rel.to_string());
        Ok(())
    }
    fn write(&self, rel: &str, file: &File) -> Result<(), Infallible> {
        self.log.borrow_mut().push(format!("write {rel}"));
        self.files.borrow_mut().insert(rel.to_string(), file.contents.clone());
        Ok(())
    }
    fn remove_file(&self, rel: &str) -> Result<Removal, Infallible> {
        self.log.borrow_mut().push(format!("rm {rel}"));
        Ok(if self.files.borrow_mut().remove(rel).is_some() { Removal::Removed } else { Removal::Absent })
    }
    fn remove_dir(&self, rel: &str) -> Result<Removal, Infallible> {
        self.log.borrow_mut().push(format!("rmdir {rel}"));
        let prefix = format!("{rel}/");
        if self.files.borrow().keys().any(|f| f.starts_with(&prefix)) {
            return Ok(Removal::NotEmpty);
        }
        Ok(if self.dirs.borrow_mut().remove(rel) { Removal::Removed } else { Removal::Absent })
    }
    fn write_state(&self, state: &Manifest) -> Result<(), Infallible> {
        let pending = state.files.values().filter(|h| *h == PENDING).count();
        self.log.borrow_mut().push(format!("state ({pending} pending)"));
        *self.state.borrow_mut() = Some(state.clone());
        Ok(())
    }
    fn sweep(&self, rel: &str) -> Result<Vec<String>, Infallible> {
        let prefix = if rel.is_empty() { String::new() } else { format!("{rel}/") };
        let mine: Vec<String> = self
            .temps
            .borrow()
            .iter()
            .filter(|t| t.starts_with(&prefix) && !t[prefix.len()..].contains('/'))
            .cloned()
            .collect();
        for t in &mine {
            self.temps.borrow_mut().remove(t);
        }
        Ok(mine)
    }
}

fn set(files: &[(&str, &str)]) -> FileSet {
    let mut s = FileSet::new();
    for (p, c) in files {
        s.insert(*p, c.as_bytes(), MODE_PUBLIC).unwrap();
    }
    s
}

fn run(store: &Memory, wanted: &FileSet) -> ApplyReport {
    let owned = store.state.borrow().clone().unwrap_or_default();
    match apply(store, wanted, owned, false, false) {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

const LOCAL: KeyRules = KeyRules { windows: false, reserved: "var/lib/mirrorconf" };
const REMOTE: KeyRules = KeyRules { windows: true, reserved: ".mirrorconf-state.json" };

#[test]
fn a_fresh_store_claims_everything_before_writing_it() {
    let m = Memory::default();
    let wanted = set(&[("quay.io/hosts.toml", "a"), ("quay.io/ca.crt", "b"), ("r_5000_/hosts.toml", "c")]);
    let r = run(&m, &wanted);
    assert_eq!(r.written.len(), 3);
    assert_eq!(
        m.ops(),
        [
            "state (3 pending)",
            "mkdir quay.io",
            "mkdir r_5000_",
            "write quay.io/ca.crt",
            "write quay.io/hosts.toml",
            "write r_5000_/hosts.toml",
            "state (0 pending)"
        ]
    );
    let state = m.state.borrow().clone().unwrap();
    assert_eq!(state.files["quay.io/hosts.toml"], sha256_hex(b"a"));
    assert_eq!(state.dirs.iter().collect::<Vec<_>>(), ["quay.io", "r_5000_"]);
}

#[test]
fn a_current_store_is_not_written_at_all() {
    let m = Memory::default();
    let wanted = set(&[("quay.io/hosts.toml", "a")]);
    run(&m, &wanted);
    m.ops();
    let r = run(&m, &wanted);
    assert!(!r.changed());
    assert_eq!(r.unchanged, ["quay.io/hosts.toml"]);
    assert_eq!(m.ops(), Vec::<String>::new());
}

#[test]
fn a_changed_file_is_rewritten_and_a_dropped_registry_removed_deepest_first() {
    let m = Memory::default();
    run(&m, &set(&[("quay.io/hosts.toml", "a"), ("gone.io/hosts.toml", "x"), ("gone.io/sub/f", "y")]));
    m.ops();
    let r = run(&m, &set(&[("quay.io/hosts.toml", "b")]));
    assert_eq!(r.written, ["quay.io/hosts.toml"]);
    assert_eq!(r.removed, ["gone.io/hosts.toml", "gone.io/sub/f"]);
    assert_eq!(
        m.ops(),
        [
            "state (1 pending)",
            "write quay.io/hosts.toml",
            "rm gone.io/hosts.toml",
            "rm gone.io/sub/f",
            "rmdir gone.io/sub",
            "rmdir gone.io",
            "state (0 pending)"
        ]
    );
    assert_eq!(m.state.borrow().as_ref().unwrap().dirs.iter().collect::<Vec<_>>(), ["quay.io"]);
}

#[test]
fn a_folder_someone_else_filled_stays_owned_to_be_tried_again() {
    let m = Memory::default();
    run(&m, &set(&[("gone.io/hosts.toml", "x")]));
    m.files.borrow_mut().insert("gone.io/theirs".into(), b"t".to_vec());
    let r = run(&m, &FileSet::new());
    assert_eq!(r.kept_dirs, ["gone.io"]);
    assert!(m.state.borrow().as_ref().unwrap().dirs.contains("gone.io"));
}

#[test]
fn a_file_being_replaced_is_pending_until_the_run_finishes() {
    let m = Memory::default();
    run(&m, &set(&[("quay.io/hosts.toml", "a")]));
    // A run to "b" cut short after its claim: the state says pending, the file may hold either.
    let mut claimed = m.state.borrow().clone().unwrap();
    claimed.files.insert("quay.io/hosts.toml".into(), PENDING.into());
    *m.state.borrow_mut() = Some(claimed);
    m.files.borrow_mut().insert("quay.io/hosts.toml".into(), b"b".to_vec());
    m.ops();
    let r = run(&m, &set(&[("quay.io/hosts.toml", "a")]));
    assert_eq!(r.written, ["quay.io/hosts.toml"], "a pending hash never counts as current");
}

#[test]
fn what_is_already_gone_is_not_an_error() {
    let m = Memory::default();
    run(&m, &set(&[("r11.example/hosts.toml", "x"), ("r12.example/hosts.toml", "y")]));
    // Both folders vanished behind mirrorconf's back (or a killed run removed them already).
    m.files.borrow_mut().clear();
    m.dirs.borrow_mut().clear();
    let r = run(&m, &FileSet::new());
    assert!(r.removed.is_empty());
    let state = m.state.borrow().clone().unwrap();
    assert!(state.files.is_empty() && state.dirs.is_empty(), "{state:?}");
}

#[test]
fn someone_elses_file_is_kept_unless_taking_over() {
    let m = Memory::default();
    m.dirs.borrow_mut().insert("quay.io".into());
    m.files.borrow_mut().insert("quay.io/hosts.toml".into(), b"wmco".to_vec());
    let wanted = set(&[("quay.io/hosts.toml", "ours")]);
    let r = run(&m, &wanted);
    assert_eq!(r.kept_foreign, ["quay.io/hosts.toml"]);
    assert_eq!(m.files.borrow()["quay.io/hosts.toml"], b"wmco");
    let owned = m.state.borrow().clone().unwrap_or_default();
    let r = apply(&m, &wanted, owned, false, true).unwrap();
    assert_eq!(r.written, ["quay.io/hosts.toml"]);
    assert_eq!(m.state.borrow().as_ref().unwrap().files["quay.io/hosts.toml"], sha256_hex(b"ours"));
    assert!(!m.state.borrow().as_ref().unwrap().dirs.contains("quay.io"), "a folder it did not create is not owned");
}

#[test]
fn a_killed_runs_temp_files_are_swept_only_where_it_writes() {
    let m = Memory::default();
    run(&m, &set(&[("quay.io/hosts.toml", "a")]));
    for t in ["quay.io/.hosts.toml.tmp", ".state.tmp", "elsewhere/.x.tmp"] {
        m.temps.borrow_mut().insert(t.into());
    }
    let mut state = m.state.borrow().clone().unwrap();
    state.files.insert("quay.io/hosts.toml".into(), PENDING.into());
    *m.state.borrow_mut() = Some(state);
    let r = run(&m, &set(&[("quay.io/hosts.toml", "a")]));
    assert_eq!(r.swept, [".state.tmp", "quay.io/.hosts.toml.tmp"]);
    assert_eq!(m.temps.borrow().iter().collect::<Vec<_>>(), ["elsewhere/.x.tmp"]);
    assert_eq!(m.state.borrow().as_ref().unwrap().files["quay.io/hosts.toml"], sha256_hex(b"a"));
}

#[test]
fn state_entries_that_leave_the_root_are_dropped() {
    let json = serde_json::json!({
        "version": 1,
        "files": {
            "../outside/victim": "00", "/etc/shadow": "00", "a//b": "00", "./a": "00", "a/./b": "00",
            "a/\u{0}b": "00", "C:/Windows/x": "00", "a\\..\\..\\b": "00", "var/lib/mirrorconf/owned.json": "00",
            "../../../../victim": "00", "ok/hosts.toml": "zz", "": "00"
        },
        "dirs": ["..", "var", "var/lib", "ok", "/"]
    });
    let (m, dropped) = Manifest::parse(json.to_string().as_bytes(), &LOCAL).unwrap();
    assert_eq!(m.files.keys().collect::<Vec<_>>(), ["C:/Windows/x", "ok/hosts.toml"]);
    assert_eq!(m.files["ok/hosts.toml"], PENDING, "a hash that is not a SHA-256 counts as pending");
    assert_eq!(m.dirs.iter().collect::<Vec<_>>(), ["ok"]);
    assert_eq!(dropped.len(), 10 + 4, "{dropped:?}");
    let (m, _) = Manifest::parse(json.to_string().as_bytes(), &REMOTE).unwrap();
    assert_eq!(m.files.keys().collect::<Vec<_>>(), ["ok/hosts.toml", "var/lib/mirrorconf/owned.json"]);
    let state = serde_json::json!({"version": 1, "files": {".mirrorconf-state.json": "00", "con/hosts.toml": "00"}});
    assert!(Manifest::parse(state.to_string().as_bytes(), &REMOTE).unwrap().0.files.is_empty());
}

#[test]
fn dropped_entries_make_the_state_be_rewritten_without_them() {
    let m = Memory::default();
    let wanted = set(&[("quay.io/hosts.toml", "a")]);
    run(&m, &wanted);
    m.ops();
    let owned = m.state.borrow().clone().unwrap();
    let r = apply(&m, &wanted, owned, true, false).unwrap();
    assert!(!r.changed());
    assert_eq!(m.ops(), ["state (0 pending)", "state (0 pending)"]);
}
