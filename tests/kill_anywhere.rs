//! SIGKILL at random points, hundreds of times: the DaemonSet's pod is killed on every rollout and
//! eviction, a push on every replica restart. After each kill every file is one of the two complete
//! versions; the next run converges exactly and leaves no temp file (each sink sweeps its own).
//! Real parts throughout: the release binary's `render` on a folder, `push` to a real sshd.

mod common;

use common::sshd::OneHost;
use common::{contents, tree};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*): the same kill points on every run.
struct Points(u64);

impl Points {
    /// A duration spread evenly over `0..=limit`.
    fn next(&mut self, limit: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        limit.mul_f64((x >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// `n` sources with digest and tag mirrors on `mirror`, and a CA, so that registries.conf, every
/// hosts.toml and every CA file differ between two mirrors.
fn manifests(dir: &Path, name: &str, n: usize, mirror: &str) -> PathBuf {
    let mut digest = String::new();
    let mut tag = String::new();
    for i in 0..n {
        digest.push_str(&format!("  - source: reg{i}.example.org/app\n    mirrors: [{mirror}/d{i}/app]\n"));
        tag.push_str(&format!("  - source: reg{i}.example.org/app\n    mirrors: [{mirror}/t{i}/app]\n"));
    }
    let text = format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: d}}\nspec:\n  imageDigestMirrors:\n{digest}---\n\
         apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {{name: t}}\nspec:\n  imageTagMirrors:\n{tag}"
    );
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// mirrorconf's temp files, by the names its two sinks use.
fn is_temp(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.starts_with(".mirrorconf-") && name.ends_with(".tmp"))
        || name.ends_with(".mirrorconf-tmp")
        || name.ends_with(".mirrorconf-old")
}

/// The files a runtime reads: everything but mirrorconf's own state.
fn node_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    contents(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("var/lib/mirrorconf/") && p != ".mirrorconf-state.json" && !is_temp(p))
        .collect()
}

/// Kills `cmd` after `delay`; true when the kill landed before it finished.
fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    !child.wait().unwrap().success()
}

/// Every file is one of the two versions, and none that both versions have is missing.
fn assert_old_or_new(
    now: &BTreeMap<String, Vec<u8>>,
    a: &BTreeMap<String, Vec<u8>>,
    b: &BTreeMap<String, Vec<u8>>,
    at: &str,
) {
    for (path, bytes) in now {
        assert!(a.get(path) == Some(bytes) || b.get(path) == Some(bytes), "{at}: {path} is neither version");
    }
    for path in a.keys().filter(|p| b.contains_key(*p)) {
        assert!(now.contains_key(path), "{at}: {path} is gone");
    }
}

fn assert_no_temp_files(root: &Path, at: &str) {
    let debris: Vec<String> = tree(root).into_iter().filter(|p| is_temp(p)).collect();
    assert!(debris.is_empty(), "{at}: temp files left after a successful run: {debris:?}");
}

#[test]
fn renders_killed_at_random_points_never_leave_a_partial_file_or_debris() {
    let dir = tempfile::tempdir().unwrap();
    let (a_m, b_m) = (
        manifests(dir.path(), "a.yaml", 150, "mirror-a.local"),
        manifests(dir.path(), "b.yaml", 150, "mirror-b.local"),
    );
    let render = |m: &Path, root: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
        cmd.arg("render").arg("--manifests").arg(m).arg("--root").arg(root);
        cmd.args(["--target", "linux", "--target", "containerd"]);
        cmd
    };
    let expected = |m: &Path| {
        let root = tempfile::tempdir().unwrap();
        assert!(render(m, root.path()).status().unwrap().success());
        node_files(root.path())
    };
    let (a, b) = (expected(&a_m), expected(&b_m));
    assert_ne!(a, b);

    let root = dir.path().join("node");
    assert!(render(&a_m, &root).status().unwrap().success());
    let start = Instant::now();
    assert!(render(&b_m, &root).status().unwrap().success());
    assert!(render(&a_m, &root).status().unwrap().success());
    let full = start.elapsed() / 2;

    let mut points = Points(0x9e37_79b9_7f4a_7c15);
    let mut landed = 0;
    let kills = 200;
    for i in 0..kills {
        let (m, want) = if i % 2 == 0 { (&b_m, &b) } else { (&a_m, &a) };
        let delay = points.next(full.mul_f64(1.1));
        let at = format!("kill {i} after {delay:?} of a {full:?} render");
        landed += usize::from(kill_after(render(m, &root), delay));
        assert_old_or_new(&node_files(&root), &a, &b, &at);
        let out = render(m, &root).output().unwrap();
        assert!(out.status.success(), "{at}: the next render failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(&node_files(&root), want, "{at}: the next render did not converge");
        assert_no_temp_files(&root, &at);
    }
    // Most kill points fall inside a render; the rest are the "killed after it finished" case.
    assert!(landed > kills / 2, "only {landed} of {kills} kills landed inside a render of {full:?}");
}

#[test]
fn pushes_killed_at_random_points_never_leave_a_partial_file_or_debris() {
    let dir = tempfile::tempdir().unwrap();
    let host = OneHost::start(dir.path());
    let (a_m, b_m) =
        (manifests(dir.path(), "a.yaml", 60, "mirror-a.local"), manifests(dir.path(), "b.yaml", 60, "mirror-b.local"));
    let expected = |m: &Path| {
        let root = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
        cmd.arg("render").arg("--manifests").arg(m).arg("--root").arg(root.path()).args(["--target", "windows"]);
        assert!(cmd.status().unwrap().success());
        node_files(&root.path().join("k/containerd/registries"))
    };
    let (a, b) = (expected(&a_m), expected(&b_m));
    let push = |m: &Path| {
        let mut cmd = host.push(m);
        cmd.args(["--retries", "0", "--timeout", "5"]);
        cmd
    };
    let remote = host.remote();
    assert!(push(&a_m).status().unwrap().success());
    let start = Instant::now();
    assert!(push(&b_m).status().unwrap().success());
    assert!(push(&a_m).status().unwrap().success());
    let full = start.elapsed() / 2;

    let mut points = Points(0xd1b5_4a32_d192_ed03);
    let mut landed = 0;
    let kills = 100;
    for i in 0..kills {
        let (m, want) = if i % 2 == 0 { (&b_m, &b) } else { (&a_m, &a) };
        let delay = points.next(full.mul_f64(1.1));
        let at = format!("kill {i} after {delay:?} of a {full:?} push");
        landed += usize::from(kill_after(push(m), delay));
        // Let the server finish whatever the dead client had sent.
        std::thread::sleep(Duration::from_millis(100));
        assert_old_or_new(&node_files(&remote), &a, &b, &at);
        let out = push(m).output().unwrap();
        assert!(out.status.success(), "{at}: the next push failed: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(&node_files(&remote), want, "{at}: the next push did not converge");
        assert_no_temp_files(&remote, &at);
    }
    assert!(landed > kills / 2, "only {landed} of {kills} kills landed inside a push of {full:?}");
}
