//! `mirrorconf run --kube --windows-push` as a child process of the test (stopped by its pid),
//! pointed at an API server through a kubeconfig, with its log in the test's folder.

use super::sshd::ClientKey;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Pusher {
    child: Child,
    log: PathBuf,
    pub name: String,
}

impl Pusher {
    /// Starts replica `name` (its POD_NAME); `extra` flags come last.
    pub fn start(dir: &Path, kubeconfig: &Path, key: &ClientKey, port: u16, name: &str, extra: &[&str]) -> Pusher {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(["run", "--kube", "--windows-push", "--windows-user", "root", "--lease-namespace", "mirrorconf"])
            .arg("--identity")
            .arg(&key.private)
            .arg("--known-hosts")
            .arg(dir.join("known_hosts"))
            .args(["--ssh-port", &port.to_string(), "--remote-root", "registries"])
            .args(["--retries", "0", "--connect-timeout", "2", "--timeout", "5"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "mirrorconf=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Pusher { child, log, name: name.to_string() }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and a clean exit expected.
    pub fn terminate(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}:\n{}", self.name, self.log_text());
    }

    /// SIGKILL: the replica dies without releasing anything, as a node that vanishes.
    pub fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A failed request (as [`super::cluster::ControlPlane::failed_requests`] lists them) that is the
/// pusher finding an object it makes itself (its Leases, its host reports) not made yet.
pub fn finds_its_own_object_missing(failed: &str) -> bool {
    failed.starts_with("404 \"get\"")
        && (failed.contains("/leases/mirrorconf-windows-push")
            || failed.contains("/configmaps/mirrorconf-windows-push-hosts-"))
}
