//! The owned-files protocol at both sinks, with the state files treated as untrusted input: a local
//! root written by `render`, and a real sshd's SFTP folder written by `push`. Entries that would
//! leave the root never cause a removal; files mirrorconf did not write stay unless it is told to
//! take them over; a killed run's temp files go, nothing else does.

mod common;

use common::sshd::OneHost;
use common::{contents, mirrorconf};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn policy(mirror: &str) -> String {
    format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: d}}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/team/app\n    mirrors: [{mirror}/team/app]\n  - source: gone.example.com/app\n    mirrors: [{mirror}/gone/app]\n"
    )
}

fn write_manifests(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("m.yaml");
    fs::write(&p, text).unwrap();
    p
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Adds `files` entries to the JSON state file at `path`.
fn add_entries(path: &Path, files: &[(&str, &str)], dirs: &[&str]) {
    let mut state: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    for (k, v) in files {
        state["files"][*k] = json!(v);
    }
    for d in dirs {
        state["dirs"].as_array_mut().unwrap().push(json!(d));
    }
    fs::write(path, serde_json::to_vec(&state).unwrap()).unwrap();
}

#[test]
fn local_state_entries_outside_the_root_are_ignored_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(dir.path().join("outside")).unwrap();
    fs::write(dir.path().join("outside/victim"), "keep").unwrap();
    let m = write_manifests(dir.path(), &policy("m1.local"));
    let render = |m: &Path| {
        mirrorconf(&[
            "render",
            "--manifests",
            m.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--target",
            "containerd",
        ])
    };
    assert!(render(&m).status.success());
    let victim = dir.path().join("outside/victim");
    add_entries(
        &root.join("var/lib/mirrorconf/owned.json"),
        &[("../outside/victim", "00"), (victim.to_str().unwrap(), "00"), ("etc/../../outside/victim", "00")],
        &["../outside", "/"],
    );
    let m2 = write_manifests(dir.path(), &policy("m2.local"));
    let out = render(&m2);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("removed") || !t.contains("victim"), "{t}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    assert!(dir.path().join("outside").is_dir());
    // Said when found, then gone from the state file: the next run says nothing of it.
    let again = text(&render(&m2));
    assert!(!again.contains("ignoring entry"), "{again}");
    let state = fs::read_to_string(root.join("var/lib/mirrorconf/owned.json")).unwrap();
    assert!(!state.contains("victim") && !state.contains(".."), "{state}");
}

#[test]
fn remote_state_entries_outside_the_root_never_cause_a_removal_over_sftp() {
    let dir = tempfile::tempdir().unwrap();
    let host = OneHost::start(dir.path());
    // The remote root is <sftp folder>/registries; these lie beside it and above it.
    let beside = host.sshd.folder.join("victim");
    fs::write(&beside, "keep").unwrap();
    let m = write_manifests(dir.path(), &policy("m1.local"));
    assert!(host.push(&m).status().unwrap().success());
    let state_path = host.remote().join(".mirrorconf-state.json");
    add_entries(
        &state_path,
        &[
            ("../victim", "00"),
            ("../../../../victim", "00"),
            (beside.to_str().unwrap(), "00"),
            ("a/con", "00"),
            ("C:/k/x", "00"),
        ],
        &["..", "../.."],
    );
    let m2 = write_manifests(dir.path(), &policy("m2.local"));
    let out = host.push(&m2).args(["--retries", "0"]).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("ignoring entry \"../victim\""), "{t}");
    assert_eq!(fs::read_to_string(&beside).unwrap(), "keep");
    let state = fs::read_to_string(&state_path).unwrap();
    assert!(!state.contains("victim") && !state.contains("con"), "{state}");
    // The push did log in (sshd's own record), and still nothing outside the root went.
    let log = host.sshd.log_text();
    assert!(log.matches("Accepted publickey for root").count() >= 2, "{log}");
}

/// SFTP has no RESOLVE_IN_ROOT: a link planted under the remote root (a registry folder, the
/// state file) is refused, so no read or write follows it outside the remote root.
#[test]
fn links_under_the_remote_root_lead_nothing_outside_it_over_sftp() {
    let dir = tempfile::tempdir().unwrap();
    let host = OneHost::start(dir.path());
    let outside = host.sshd.folder.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = host.sshd.folder.join("secret.json");
    fs::write(&secret, "{\"version\": 1, \"files\": {}}\n").unwrap();
    let remote = host.remote();
    fs::create_dir_all(&remote).unwrap();
    // The registry folder quay.io, an absolute link out of the remote root.
    std::os::unix::fs::symlink(&outside, remote.join("quay.io")).unwrap();
    let m = write_manifests(dir.path(), &policy("m1.local"));
    let out = host.push(&m).args(["--retries", "0"]).output().unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("quay.io is a symbolic link"), "{t}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "written through the link: {t}");

    // The state file, a relative link out of the remote root: neither read nor replaced through.
    fs::remove_file(remote.join("quay.io")).unwrap();
    std::os::unix::fs::symlink("../secret.json", remote.join(".mirrorconf-state.json")).unwrap();
    let out = host.push(&m).args(["--retries", "0"]).output().unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains(".mirrorconf-state.json is a symbolic link"), "{t}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "{\"version\": 1, \"files\": {}}\n");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // Links gone: the push lands inside the remote root.
    fs::remove_file(remote.join(".mirrorconf-state.json")).unwrap();
    let out = host.push(&m).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(remote.join("quay.io/hosts.toml").is_file());
}

#[test]
fn a_file_someone_else_wrote_on_a_host_stays_unless_take_over_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let host = OneHost::start(dir.path());
    let remote = host.remote();
    // A host the Windows Machine Config Operator configured before.
    fs::create_dir_all(remote.join("quay.io")).unwrap();
    fs::write(remote.join("quay.io/hosts.toml"), "server = \"https://quay.io/v2\"\n").unwrap();
    fs::create_dir_all(remote.join("wmco-only.io")).unwrap();
    fs::write(remote.join("wmco-only.io/hosts.toml"), "server = \"https://wmco-only.io/v2\"\n").unwrap();
    let m = write_manifests(dir.path(), &policy("m1.local"));

    let out = host.push(&m).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("kept 1 file(s) mirrorconf did not write"), "{t}");
    assert_eq!(fs::read_to_string(remote.join("quay.io/hosts.toml")).unwrap(), "server = \"https://quay.io/v2\"\n");
    assert!(remote.join("gone.example.com/hosts.toml").exists());

    let out = host.push(&m).arg("--take-over").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(fs::read_to_string(remote.join("quay.io/hosts.toml")).unwrap().contains("m1.local"));
    // Taken over, it is owned now: a later policy without it removes it; the other file never moves.
    let out = host.push(&m).output().unwrap();
    assert!(text(&out).contains("current"), "{}", text(&out));
    let m2 = write_manifests(
        dir.path(),
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: other.io/app\n    mirrors: [m1.local/app]\n",
    );
    assert!(host.push(&m2).status().unwrap().success());
    assert!(!remote.join("quay.io/hosts.toml").exists());
    assert!(remote.join("quay.io").is_dir(), "a folder it did not create stays");
    assert_eq!(
        fs::read_to_string(remote.join("wmco-only.io/hosts.toml")).unwrap(),
        "server = \"https://wmco-only.io/v2\"\n"
    );
}

#[test]
fn a_cut_push_leaves_temp_files_that_the_next_push_sweeps_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let host = OneHost::start(dir.path());
    let remote = host.remote();
    let m = write_manifests(dir.path(), &policy("m1.local"));
    assert!(host.push(&m).status().unwrap().success());
    // What a push killed mid-way leaves: temp files of its own, a moved-aside file, its claim.
    let debris = [
        "quay.io/.hosts.toml.mirrorconf-tmp",
        "..mirrorconf-state.json.mirrorconf-tmp",
        "quay.io/hosts.toml.mirrorconf-old",
    ];
    let not_ours = ["quay.io/.hosts.toml.tmp", "quay.io/notes.txt", "elsewhere/.x.mirrorconf-tmp"];
    fs::create_dir_all(remote.join("elsewhere")).unwrap();
    for p in debris.iter().chain(&not_ours) {
        fs::write(remote.join(p), "partial").unwrap();
    }
    add_entries(&remote.join(".mirrorconf-state.json"), &[("quay.io/hosts.toml", "pending")], &[]);
    // A killed push leaves its host pending in the local record too; this debris was made by hand,
    // so the record still vouches for the host: contact it anyway.
    let out = host.push(&m).arg("--verify-all").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let now = contents(&remote);
    for p in debris {
        assert!(!now.contains_key(p), "{p} is still there");
    }
    for p in not_ours {
        assert!(now.contains_key(p), "{p} was not mirrorconf's to remove");
    }
}
