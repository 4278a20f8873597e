//! Crash consistency: `render` and `push` killed (SIGKILL) at points spread over a whole run, and a
//! real full disk (a small tmpfs, which must mount when running as root; only without root, a
//! file-size limit that makes the kernel fail the write the same way, said on stderr). Every target
//! file must be the old or the new version, never partial, and the next run must converge and still
//! own what it wrote.

mod common;

use common::sshd::OneHost;
use common::{contents, mirrorconf};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `n` registries, each with a digest mirror on `mirror` and a tag mirror, so that every target
/// (registries.conf, both hosts.toml trees) changes completely when `mirror` changes.
fn policy(n: usize, mirror: &str) -> String {
    let mut m = String::from("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n");
    for i in 0..n {
        m.push_str(&format!("  - source: r{i}.example.com/team/app\n    mirrors: [{mirror}/r{i}/team/app]\n"));
    }
    m
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// Every regular file under `root` except mirrorconf's own state, with its bytes.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    contents(root).into_iter().filter(|(p, _)| !p.starts_with("var/lib/mirrorconf/")).collect()
}

fn is_temp(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|n| n.starts_with(".mirrorconf-") || n.ends_with(".mirrorconf-tmp"))
}

fn render_args(manifests: &Path, root: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["render", "--manifests"].iter().map(|s| s.to_string()).collect();
    a.push(manifests.display().to_string());
    a.extend(["--root".to_string(), root.display().to_string()]);
    for t in ["linux", "windows", "containerd"] {
        a.extend(["--target".to_string(), t.to_string()]);
    }
    a
}

fn render(manifests: &Path, root: &Path) -> std::process::Output {
    let args = render_args(manifests, root);
    mirrorconf(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn render_killed_anywhere_leaves_every_file_old_or_new_and_the_next_run_converges() {
    let dir = tempfile::tempdir().unwrap();
    let old_m = write(dir.path(), "old.yaml", &policy(400, "old-mirror.local"));
    let new_m = write(dir.path(), "new.yaml", &policy(400, "new-mirror.local"));
    // The two end states, rendered undisturbed.
    let (old_root, new_root) = (dir.path().join("old"), dir.path().join("new"));
    assert!(render(&old_m, &old_root).status.success());
    assert!(render(&new_m, &new_root).status.success());
    let (old, new) = (snapshot(&old_root), snapshot(&new_root));
    assert_ne!(old, new);

    let root = dir.path().join("node");
    assert!(render(&old_m, &root).status.success());
    let start = Instant::now();
    assert!(render(&new_m, &root).status.success());
    let full = start.elapsed();
    assert!(render(&old_m, &root).status.success());
    let mut interrupted = 0;
    for fraction in [0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(render_args(&new_m, &root))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        for (path, bytes) in snapshot(&root) {
            if is_temp(&path) {
                continue; // a temp file no runtime reads
            }
            assert!(
                old.get(&path) == Some(&bytes) || new.get(&path) == Some(&bytes),
                "killed at {fraction} of a run: {path} is neither the old nor the new file"
            );
        }
        for path in old.keys() {
            assert!(root.join(path).exists(), "killed at {fraction} of a run: {path} is gone");
        }
        // The next run converges, and never calls a file it wrote before the kill someone else's.
        let out = render(&old_m, &root);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !stderr.contains("kept"), "after a kill at {fraction}: {stderr}");
        let now: BTreeMap<_, _> = snapshot(&root).into_iter().filter(|(p, _)| !is_temp(p)).collect();
        assert_eq!(now, old, "after a kill at {fraction} and a new run");
    }
    assert!(interrupted > 0, "no kill landed inside a run (a whole run took {full:?})");
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop. As root (CI runs as root) mounting must
/// work, and a failure fails the test; only without root is `None` returned, and a line says so.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        if !running_as_root() {
            // Straight to stderr, past the test harness's capture, so a passing run shows it too.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "crash_consistency: not root, so no tmpfs: a full disk is simulated with RLIMIT_FSIZE (EFBIG) instead"
            );
            return None;
        }
        let out = Command::new(common::require_tool("mount"))
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "running as root, yet mounting a {size} tmpfs on {} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Tmpfs(dir.to_path_buf()))
    }
}

/// Whether the effective user id is 0 (the second field of `Uid:` in /proc/self/status).
fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).expect("a Uid: line in /proc/self/status");
    uid.split_whitespace().nth(1) == Some("0")
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_the_old_files_and_says_which_write_failed() {
    let dir = tempfile::tempdir().unwrap();
    let small = write(dir.path(), "small.yaml", &policy(3, "old-mirror.local"));
    let big = write(dir.path(), "big.yaml", &policy(2000, "new-mirror.local"));
    let root = dir.path().join("node");
    let tmpfs = Tmpfs::mount(&root, "512k");
    let limit = if tmpfs.is_some() { None } else { Some(64 * 1024u64) };
    let run = |m: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
        cmd.args(render_args(m, &root));
        if let Some(bytes) = limit {
            // No mount allowed here: the kernel's file-size limit fails the write instead (EFBIG),
            // with SIGXFSZ ignored so the write returns an error as ENOSPC would.
            use std::os::unix::process::CommandExt;
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::signal::signal(nix::sys::signal::Signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn)
                        .map_err(std::io::Error::from)?;
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE, bytes, bytes)
                        .map_err(std::io::Error::from)
                });
            }
        }
        cmd.output().unwrap()
    };
    assert!(run(&small).status.success());
    let before = snapshot(&root);
    if tmpfs.is_some() {
        // Leave a little room: the small files fit, the big registries.conf does not.
        let free = nix::sys::statvfs::statvfs(&root).unwrap();
        let avail = free.blocks_available() as u64 * free.fragment_size() as u64;
        fs::write(root.join("filler"), vec![0u8; avail.saturating_sub(48 * 1024) as usize]).unwrap();
    }
    let out = run(&big);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains(&root.display().to_string()),
        "the error names the file: {stderr}"
    );
    let after: BTreeMap<_, _> = snapshot(&root).into_iter().filter(|(p, _)| p != "filler").collect();
    assert_eq!(after, before, "a failed write changed or left files: {stderr}");
    assert!(after.keys().all(|p| !is_temp(p)));
    // With room again, the same render goes through.
    let _ = fs::remove_file(root.join("filler"));
    drop(tmpfs);
}

#[test]
fn push_killed_anywhere_leaves_every_remote_file_old_or_new() {
    let dir = tempfile::tempdir().unwrap();
    let host = OneHost::start(dir.path());
    let old_m = write(dir.path(), "old.yaml", &policy(150, "old-mirror.local"));
    let new_m = write(dir.path(), "new.yaml", &policy(150, "new-mirror.local"));
    let expected = |m: &Path| {
        let root = tempfile::tempdir().unwrap();
        assert!(mirrorconf(&[
            "render",
            "--manifests",
            m.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
            "--target",
            "windows"
        ])
        .status
        .success());
        snapshot(&root.path().join("k/containerd/registries"))
    };
    let (old, new) = (expected(&old_m), expected(&new_m));
    let push = |m: &Path| {
        let mut cmd = host.push(m);
        cmd.args(["--retries", "0"]).stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    let remote = host.remote();
    let files = || -> BTreeMap<String, Vec<u8>> {
        snapshot(&remote).into_iter().filter(|(p, _)| p != ".mirrorconf-state.json" && !is_temp(p)).collect()
    };
    assert!(push(&old_m).status().unwrap().success());
    let start = Instant::now();
    assert!(push(&new_m).status().unwrap().success());
    let full = start.elapsed();
    assert!(push(&old_m).status().unwrap().success());
    let mut interrupted = 0;
    for fraction in [0.1, 0.3, 0.5, 0.7, 0.9] {
        let mut child = push(&new_m).spawn().unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        // Let the server finish whatever the dead client had sent.
        std::thread::sleep(Duration::from_millis(100));
        for (path, bytes) in files() {
            assert!(
                old.get(&path) == Some(&bytes) || new.get(&path) == Some(&bytes),
                "killed at {fraction}: {path} is partial"
            );
        }
        assert!(old.keys().all(|p| remote.join(p).exists()), "killed at {fraction}: a file is gone");
        assert!(push(&old_m).status().unwrap().success());
        assert_eq!(files(), old, "after a kill at {fraction} and a new push");
    }
    assert!(interrupted > 0, "no kill landed inside a push (a whole push took {full:?})");
    assert!(push(&new_m).status().unwrap().success());
    assert_eq!(files(), new);
}
