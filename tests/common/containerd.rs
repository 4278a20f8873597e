//! Debian's containerd on a socket of its own, and `ctr` to fetch through a hosts.toml tree.

use super::{require_tool, Server};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian's containerd, run as root with its own root, state and socket in a temp dir and the CRI
/// plugin disabled.
pub struct Containerd {
    pub server: Server,
    pub socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let bin = require_tool("containerd");
        require_tool("ctr");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let socket = d.join("c.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  level = \"debug\"\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            opt = d.join("opt").display()
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(d.join("config.toml"));
        let mut server = Server::spawn(cmd, d.join("containerd.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("containerd exited with {status}:\n{}", server.log_text());
            }
            assert!(Instant::now() < deadline, "containerd did not create its socket:\n{}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        Containerd { server, socket, dir }
    }

    /// `ctr content fetch --hosts-dir DIR REF` in namespace `ns`, bounded in time.
    pub fn fetch(&self, ns: &str, hosts_dir: &Path, reference: &str) -> std::process::Output {
        Command::new("timeout")
            .arg("60")
            .arg(require_tool("ctr"))
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", ns, "content", "fetch", "--hosts-dir"])
            .arg(hosts_dir)
            .arg(reference)
            .output()
            .unwrap()
    }
}
