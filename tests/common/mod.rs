//! Helpers shared by the integration tests: real servers on loopback (started here, stopped by pid),
//! a deterministic OCI image, and the "compare registries.conf by meaning" rule of the golden cases.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Panics (never skips) when a real client is missing: scripts/test.sh installs them all.
pub fn require_tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/sbin"]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is not installed; run scripts/test.sh, which installs every real client the tests use");
}

/// Runs `openssl ARGS` in `dir`; panics with its stderr unless it succeeds; returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(require_tool("openssl")).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Signs `csr` with `ca.crt`/`ca.key` of `dir` into `crt` (two days), with the extensions in the
/// file `extfile` (all relative to `dir`).
pub fn sign_with_test_ca(dir: &Path, csr: &str, extfile: &str, crt: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            extfile,
            "-out",
            crt,
        ],
    );
}

/// A free TCP port on `ip` (the kernel picks it; the listener is closed again at once).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).expect("bind a free port").local_addr().unwrap().port()
}

pub fn wait_for_port(addr: SocketAddr, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited with {status} before listening on {addr}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {addr} after 20 s:\n{}", fs::read_to_string(log).unwrap_or_default());
}

/// A process this test started; killed by its own pid when dropped.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
}

impl Server {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Server {
        let out = fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Server { child, log }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `manifests` to a temp file and runs `mirrorconf render` on it into `root`; panics on failure.
pub fn render_text(manifests: &str, root: &Path, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    fs::write(&file, manifests).unwrap();
    let mut args = vec!["render", "--manifests", file.to_str().unwrap(), "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = mirrorconf(&args);
    assert!(out.status.success(), "render failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs the mirrorconf binary.
pub fn mirrorconf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorconf")).args(args).output().expect("run mirrorconf")
}

/// Every file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` (relative path, sorted) with its bytes.
pub fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir).into_iter().map(|p| (p.clone(), fs::read(dir.join(&p)).unwrap())).collect()
}

/// Every file under `dir` with its modification time: equal before and after means nothing was written.
pub fn mtimes(dir: &Path) -> BTreeMap<String, std::time::SystemTime> {
    tree(dir).into_iter().map(|p| (p.clone(), fs::metadata(dir.join(&p)).unwrap().modified().unwrap())).collect()
}

/// A plain HTTP GET on loopback; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// The value of a metric line (`name value`) in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}
pub mod cluster;
pub mod containerd;
pub mod fleet;
pub mod kube_agent;
pub mod kustomize;
pub mod meaning;
pub mod mirrors;
pub mod pusher;
pub mod registry;
pub mod sshd;
pub mod token;

// Each test binary uses a part of these.
#[allow(unused_imports)]
pub use containerd::Containerd;
#[allow(unused_imports)]
pub use meaning::{registries_meaning, MirrorMeaning, RegistryMeaning};
#[allow(unused_imports)]
pub use registry::{make_tls, oci_image, oci_image_with, push_image, skopeo, OciImage, Registry, Tls, TlsFiles};

/// `mirrorconf status --kube ARGS` against the cluster `kubeconfig` points at.
pub fn status_kube(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["status", "--kube"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
