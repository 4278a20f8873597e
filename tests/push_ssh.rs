//! Real OpenSSH servers (Debian `openssh-server`) on 127.0.0.2, 127.0.0.3, 127.0.0.4, each with its
//! own host key and SFTP folder, stand for three Windows hosts. `mirrorconf push` must land the
//! same tree `render --target windows` gives, write nothing when current, survive a dead, hung or
//! impostor host, and never leave half a file.

mod common;

use common::fleet::{expected_tree, files, line_for, policy, text, Fleet};
use common::sshd::{client_key, common_free_port, Sshd};
use common::{mtimes, tree};
use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

/// Every event the watcher reports until it has been quiet for a second: the kernel queued them all
/// before the push returned, but the watcher's thread may still be reading them.
fn drain(
    watcher: notify::RecommendedWatcher,
    rx: &std::sync::mpsc::Receiver<notify::Result<notify::Event>>,
) -> Vec<notify::Event> {
    let mut events = Vec::new();
    while let Ok(e) = rx.recv_timeout(Duration::from_secs(1)) {
        events.push(e.unwrap());
    }
    drop(watcher);
    events
}

#[test]
fn first_push_lands_everywhere_and_an_unchanged_push_writes_nothing() {
    let fleet = Fleet::start(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let m = policy(&["quay.io", "registry.example.com:5000"], "mirror.local");
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let want = expected_tree(&m);
    assert_eq!(want.keys().collect::<Vec<_>>(), vec!["quay.io/hosts.toml", "registry.example.com_5000_/hosts.toml"]);
    for (i, h) in fleet.hosts.iter().enumerate() {
        assert!(line_for(&t, &h.ip).contains("updated"), "{t}");
        assert_eq!(files(&fleet.remote(i)), want, "host {}", h.ip);
    }
    let before: Vec<_> = (0..3).map(|i| mtimes(&fleet.remote(i))).collect();
    std::thread::sleep(Duration::from_millis(1100));
    // Every host contacted and its files read (the record would otherwise spare the contact, see
    // push_record.rs): nothing is written.
    let out = fleet.push(&m, &["--verify-all"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for (i, h) in fleet.hosts.iter().enumerate() {
        assert!(line_for(&t, &h.ip).contains("current") && line_for(&t, &h.ip).contains("files verified"), "{t}");
        assert_eq!(mtimes(&fleet.remote(i)), before[i], "host {} was written to", h.ip);
    }
    assert!(t.contains("3 host(s): 3 current, 0 updated, 0 failed;"), "{t}");

    // A changed policy with --parallel reaches every host too. On host 0, inotify sees how the
    // files change: each hosts.toml is renamed into place over the old one, never deleted first.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).unwrap();
    notify::Watcher::watch(&mut watcher, &fleet.remote(0), notify::RecursiveMode::Recursive).unwrap();
    let m2 = policy(&["quay.io", "registry.example.com:5000", "docker.io"], "other-mirror.local");
    let out = fleet.push(&m2, &["--parallel", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    for i in 0..3 {
        assert_eq!(files(&fleet.remote(i)), expected_tree(&m2));
    }
    let events = drain(watcher, &rx);
    let about = |name: &str| -> Vec<EventKind> {
        events.iter().filter(|e| e.paths.iter().any(|p| p.ends_with(name))).map(|e| e.kind).collect()
    };
    use notify::event::{EventKind, ModifyKind, RenameMode};
    for name in ["quay.io/hosts.toml", "registry.example.com_5000_/hosts.toml"] {
        let kinds = about(name);
        assert!(kinds.contains(&EventKind::Modify(ModifyKind::Name(RenameMode::To))), "{name}: {kinds:?}");
        assert!(!kinds.iter().any(|k| matches!(k, EventKind::Remove(_))), "{name} was deleted: {kinds:?}");
        assert!(
            !kinds.contains(&EventKind::Modify(ModifyKind::Name(RenameMode::From))),
            "{name} was moved aside: {kinds:?}"
        );
    }
}

#[test]
fn a_stopped_host_is_reported_and_the_others_are_updated() {
    let mut fleet = Fleet::start(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    fleet.hosts[1].kill();
    let m = policy(&["quay.io"], "mirror.local");
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let failed = line_for(&t, "127.0.0.3");
    assert!(
        failed.contains("FAILED") && failed.contains("after 2 attempt(s)") && failed.contains("cannot connect"),
        "{t}"
    );
    for i in [0, 2] {
        assert!(line_for(&t, &fleet.hosts[i].ip).contains("updated"), "{t}");
        assert_eq!(files(&fleet.remote(i)), expected_tree(&m));
    }
    assert!(t.contains("1 failed"), "{t}");
}

#[test]
fn a_wrong_or_unknown_host_key_is_refused_and_nothing_is_written_there() {
    let fleet = Fleet::start(&["127.0.0.2", "127.0.0.3"]);
    // 127.0.0.3's entry carries another server's key; 127.0.0.2 is not listed at all.
    let other = fs::read_to_string(fleet.hosts[0].dir.join("host_key.pub")).unwrap();
    let mut parts = other.split_whitespace();
    let (kt, key) = (parts.next().unwrap(), parts.next().unwrap());
    fleet.write_known_hosts(&format!("[127.0.0.3]:{} {kt} {key}\n", fleet.port));
    let m = policy(&["quay.io"], "mirror.local");
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let mismatch = line_for(&t, "127.0.0.3");
    assert!(mismatch.contains("does NOT match") && mismatch.contains("after 1 attempt(s)"), "{t}");
    let unknown = line_for(&t, "127.0.0.2");
    assert!(unknown.contains("is not in") && unknown.contains("--trust-on-first-use"), "{t}");
    for i in 0..2 {
        assert!(!fleet.remote(i).exists(), "something was written on {}", fleet.hosts[i].ip);
    }

    // Trust on first use records the unknown key, still refuses the changed one.
    let out = fleet.push(&m, &["--trust-on-first-use"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(line_for(&t, "127.0.0.2").contains("updated"), "{t}");
    assert!(line_for(&t, "127.0.0.3").contains("does NOT match"), "{t}");
    assert!(!fleet.remote(1).exists());
    let known = fs::read_to_string(fleet.path("known_hosts")).unwrap();
    assert!(known.contains(&fleet.hosts[0].known_hosts_line()), "{known}");
    // The recorded key is now pinned: a plain push to that host works.
    let out = fleet.push(&m, &["--verify-all"]);
    assert!(line_for(&text(&out), "127.0.0.2").contains("current"), "{}", text(&out));
}

#[test]
fn a_stale_registry_folder_is_removed_and_other_peoples_files_stay() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    let both = policy(&["quay.io", "gone.example.com"], "mirror.local");
    assert!(fleet.push(&both, &[]).status.success());
    let remote = fleet.remote(0);
    fs::write(remote.join("admin-notes.txt"), "mine").unwrap();
    fs::create_dir_all(remote.join("manual.io")).unwrap();
    fs::write(remote.join("manual.io/hosts.toml"), "server = \"https://manual.io\"\n").unwrap();

    let one = policy(&["quay.io"], "mirror.local");
    let out = fleet.push(&one, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(line_for(&text(&out), "127.0.0.2").contains("0 written, 1 removed"), "{}", text(&out));
    assert!(!remote.join("gone.example.com").exists(), "stale folder still there");
    let mut want = expected_tree(&one);
    want.insert("admin-notes.txt".into(), b"mine".to_vec());
    want.insert("manual.io/hosts.toml".into(), b"server = \"https://manual.io\"\n".to_vec());
    assert_eq!(files(&remote), want);
}

#[test]
fn a_bad_inventory_entry_is_reported_and_the_others_still_get_their_update() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    let mut inv = BTreeMap::new();
    inv.insert("127.0.0.2".to_string(), "username=root".to_string());
    inv.insert("not a host".to_string(), "username=root".to_string());
    inv.insert("127.0.0.9".to_string(), "user=root".to_string());
    fleet.write_inventory(&inv);
    let out = fleet.push(&policy(&["quay.io"], "m.local"), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            r#"ConfigMap/windows-instances: data["127.0.0.9"] = "user=root": the value must be username=<user>"#
        ),
        "{t}"
    );
    assert!(t.contains(r#"data["not a host"]"#), "{t}");
    assert!(line_for(&t, "127.0.0.2").contains("updated"), "{t}");
}

#[test]
fn a_host_that_accepts_but_never_answers_times_out_and_the_round_goes_on() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    // 127.0.0.5 takes connections and never says a word.
    let silent = std::net::TcpListener::bind(("127.0.0.5", fleet.port)).unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = vec![];
        while let Ok((c, _)) = silent.accept() {
            conns.push(c);
            if conns.len() == 2 {
                std::thread::sleep(Duration::from_secs(30));
                break;
            }
        }
    });
    let mut inv = BTreeMap::new();
    inv.insert("127.0.0.5".to_string(), "username=root".to_string());
    inv.insert("127.0.0.2".to_string(), "username=root".to_string());
    fleet.write_inventory(&inv);
    let out = fleet.push(&policy(&["quay.io"], "m.local"), &["--timeout", "1"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let hung = line_for(&t, "127.0.0.5");
    assert!(hung.contains("FAILED") && hung.to_lowercase().contains("timed out"), "{t}");
    assert!(line_for(&t, "127.0.0.2").contains("updated"), "{t}");
    drop(held);
}

#[test]
fn killing_the_server_mid_push_leaves_every_file_old_or_new() {
    let dir = tempfile::tempdir().unwrap();
    let names_old: Vec<String> = (0..150).map(|i| format!("r{i}.example.com")).collect();
    let old = policy(&names_old.iter().map(String::as_str).collect::<Vec<_>>(), "old-mirror.local");
    let new = policy(&names_old.iter().map(String::as_str).collect::<Vec<_>>(), "new-mirror.local");
    let (old_tree, new_tree) = (expected_tree(&old), expected_tree(&new));
    let mut fleet = Fleet::start(&["127.0.0.2"]);
    assert!(fleet.push(&old, &[]).status.success());
    // How long a whole changed push takes here, so the kills land inside one on any machine.
    let start = std::time::Instant::now();
    assert!(fleet.push(&new, &[]).status.success());
    let full = start.elapsed();
    assert!(fleet.push(&old, &[]).status.success());
    let mut interrupted = 0;
    for fraction in [0.1, 0.3, 0.5, 0.7, 0.9] {
        let delay = full.mul_f64(fraction);
        let mut child = fleet
            .push_args(&new, &["--retries", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        fleet.hosts[0].kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        let remote = fleet.remote(0);
        for (path, bytes) in files(&remote) {
            if path.ends_with(".mirrorconf-tmp") {
                continue; // a temp file containerd never reads (it only opens hosts.toml)
            }
            assert!(
                old_tree.get(&path) == Some(&bytes) || new_tree.get(&path) == Some(&bytes),
                "after a kill at {delay:?}, {path} is neither the old nor the new file"
            );
        }
        for path in old_tree.keys() {
            assert!(remote.join(path).exists(), "after a kill at {delay:?}, {path} is missing");
        }
        fleet.hosts[0] = Sshd::start("127.0.0.2", fleet.port, &fleet.dir.path().join("127.0.0.2"), &fleet.key);
        // Back to the old policy, so the next round has something to change again: files the cut
        // push had already replaced must be rewritten even though the state names them.
        assert!(fleet.push(&old, &[]).status.success());
        let back: BTreeMap<_, _> =
            files(&fleet.remote(0)).into_iter().filter(|(p, _)| !p.ends_with(".mirrorconf-tmp")).collect();
        assert_eq!(back, old_tree, "after a kill at {delay:?} and a new push");
    }
    assert!(interrupted > 0, "no kill landed inside a push (a full push took {full:?})");
    // And a push that is not interrupted converges, leaving no temp file behind.
    assert!(fleet.push(&new, &[]).status.success());
    assert_eq!(files(&fleet.remote(0)), new_tree);
    drop(dir);
}

#[test]
fn a_server_without_posix_rename_still_gets_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    let port = common_free_port(&["127.0.0.2"]);
    // The server refuses posix-rename@openssh.com, as one without the extension would.
    let host = Sshd::start_with("127.0.0.2", port, &dir.path().join("h"), &key, "-P posix-rename");
    let fleet = Fleet { dir, key, hosts: vec![host], port };
    fleet.write_known_hosts(&fleet.hosts[0].known_hosts_line());
    fleet.write_inventory(&[("127.0.0.2".to_string(), "username=root".to_string())].into_iter().collect());
    let one = policy(&["quay.io", "docker.io"], "one.local");
    let two = policy(&["quay.io", "docker.io"], "two.local");
    assert!(fleet.push(&one, &[]).status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).unwrap();
    notify::Watcher::watch(&mut watcher, &fleet.remote(0), notify::RecursiveMode::Recursive).unwrap();
    let out = fleet.push(&two, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&fleet.remote(0)), expected_tree(&two));
    let events = drain(watcher, &rx);
    // The fallback ran: the old file was moved aside first (OpenSSH's server does a plain rename
    // as link + unlink, so the aside name appears as a new file).
    let moved_aside = events.iter().any(|e| {
        matches!(e.kind, notify::EventKind::Create(_))
            && e.paths.iter().any(|p| p.ends_with("quay.io/hosts.toml.mirrorconf-old"))
    });
    assert!(moved_aside, "no move aside: posix-rename was used although the server refused it");
    assert!(tree(&fleet.remote(0)).iter().all(|p| !p.contains("mirrorconf-old") && !p.contains("mirrorconf-tmp")));
}

/// One sshd with ECDSA, ed25519 and RSA host keys (as a Windows host has), and a known_hosts file
/// that pins it by the given lines only.
fn host_with_three_host_keys() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key(dir.path());
    let port = common_free_port(&["127.0.0.2"]);
    let host = Sshd::start_with_host_keys("127.0.0.2", port, &dir.path().join("h"), &key, &["ecdsa", "ed25519", "rsa"]);
    let fleet = Fleet { dir, key, hosts: vec![host], port };
    fleet.write_inventory(&[("127.0.0.2".to_string(), "username=root".to_string())].into_iter().collect());
    fleet
}

/// A push to a host that offers several host key types lands when known_hosts pins it by any one of
/// them, and sshd logs the login.
fn assert_pinned_by_one_key_type_lands(kind: &str) {
    let fleet = host_with_three_host_keys();
    fleet.write_known_hosts(&fleet.hosts[0].known_hosts_line_of(kind));
    let m = policy(&["quay.io"], "mirror.local");
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert!(out.status.success(), "pinned by {kind} only: {t}");
    assert!(line_for(&t, "127.0.0.2").contains("updated"), "{t}");
    assert_eq!(fleet.hosts[0].logins(), 1, "sshd log:\n{}", fleet.hosts[0].log_text());
    assert_eq!(files(&fleet.remote(0)), expected_tree(&m));
}

#[test]
fn a_host_pinned_by_its_ed25519_key_only_is_reached_though_it_offers_ecdsa_too() {
    assert_pinned_by_one_key_type_lands("ed25519");
}

#[test]
fn a_host_pinned_by_its_ecdsa_key_only_is_reached_though_it_offers_ed25519_too() {
    assert_pinned_by_one_key_type_lands("ecdsa");
}

#[test]
fn a_host_pinned_by_its_rsa_key_only_is_reached() {
    assert_pinned_by_one_key_type_lands("rsa");
}

#[test]
fn a_host_whose_pinned_key_type_carries_another_key_is_refused() {
    let fleet = host_with_three_host_keys();
    // The host offers ed25519, but not this ed25519 key: a changed host or a man in the middle.
    let impostor = fleet.path("other_ed25519");
    common::sshd::keygen(&impostor);
    fleet.write_known_hosts(&fleet.hosts[0].known_hosts_line_for(&impostor.with_extension("pub")));
    let out = fleet.push(&policy(&["quay.io"], "mirror.local"), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(line_for(&t, "127.0.0.2").contains("does NOT match"), "{t}");
    assert_eq!(fleet.hosts[0].logins(), 0, "logged in anyway:\n{}", fleet.hosts[0].log_text());
    assert!(!fleet.remote(0).exists(), "something was written");
}

#[test]
fn a_hashed_known_hosts_entry_pins_the_host_too() {
    let fleet = host_with_three_host_keys();
    // RSA, which libssh2 asks for after ed25519 and ECDSA (1.10 and 1.11 alike): the push asks for it
    // first if it recognises the hashed entry as this host's.
    fleet.write_known_hosts(&fleet.hosts[0].known_hosts_line_of("rsa"));
    let out = Command::new(common::require_tool("ssh-keygen"))
        .arg("-H")
        .arg("-f")
        .arg(fleet.path("known_hosts"))
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -H: {}", String::from_utf8_lossy(&out.stderr));
    let known = fs::read_to_string(fleet.path("known_hosts")).unwrap();
    assert!(known.starts_with("|1|") && !known.contains("127.0.0.2"), "not hashed: {known}");
    let m = policy(&["quay.io"], "mirror.local");
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(fleet.hosts[0].logins(), 1, "sshd log:\n{}", fleet.hosts[0].log_text());
    assert_eq!(files(&fleet.remote(0)), expected_tree(&m));
}
