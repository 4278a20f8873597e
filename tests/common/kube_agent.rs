//! `mirrorconf run --kube --root` for one node as a child process of the test (stopped by its
//! pid), with a root and a log of its own.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct KubeAgent {
    child: Child,
    pub root: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl KubeAgent {
    /// Starts the agent of Node `node`; `write_kubeconfig` writes the cluster's kubeconfig to the
    /// path it is given, `extra` flags come last.
    pub fn start(write_kubeconfig: impl FnOnce(&Path), node: &str, extra: &[&str]) -> KubeAgent {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig);
        let log = fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(["run", "--kube", "--root"])
            .arg(root.path())
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("NODE_NAME", node)
            .env("RUST_LOG", "mirrorconf=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        KubeAgent { child, root, dir }
    }

    pub fn conf(&self) -> String {
        fs::read_to_string(self.root.path().join("etc/containers/registries.conf")).unwrap_or_default()
    }

    /// The agent's process is still the one started (it never restarted or exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for KubeAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
