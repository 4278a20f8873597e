//! Debian's OpenSSH server on a loopback address: its own host key, key-only login as root, and
//! `internal-sftp -d <its own folder>`, so each server stands for one Windows host.

use super::{require_tool, wait_for_port, Server};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A client key pair for every server of a test.
pub struct ClientKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

pub fn keygen(path: &Path) {
    keygen_type(path, "ed25519");
}

/// A key pair of `kind` (`ssh-keygen -t`: ed25519, ecdsa, rsa) at `path` and `path.pub`.
pub fn keygen_type(path: &Path, kind: &str) {
    let out = Command::new(require_tool("ssh-keygen"))
        .args(["-q", "-t", kind, "-N", "", "-C", "mirrorconf-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn client_key(dir: &Path) -> ClientKey {
    let private = dir.join("id_ed25519");
    keygen(&private);
    ClientKey { public: private.with_extension("pub"), private }
}

pub struct Sshd {
    pub server: Option<Server>,
    pub ip: String,
    pub port: u16,
    /// The SFTP start folder: what a relative remote root is relative to.
    pub folder: PathBuf,
    pub dir: PathBuf,
}

impl Sshd {
    /// Starts sshd on `ip:port` in `dir` (host key made on first start, kept across restarts).
    pub fn start(ip: &str, port: u16, dir: &Path, client: &ClientKey) -> Sshd {
        Self::start_with(ip, port, dir, client, "")
    }

    /// Like [`Sshd::start`], with extra flags for the SFTP server (e.g. `-P posix-rename` to deny
    /// an extension, as a server without it would).
    pub fn start_with(ip: &str, port: u16, dir: &Path, client: &ClientKey, sftp_flags: &str) -> Sshd {
        Self::launch(ip, port, dir, client, sftp_flags, &[])
    }

    /// Like [`Sshd::start`], with one host key of each of `kinds` (`ssh-keygen -t` names, e.g.
    /// `["ecdsa", "ed25519", "rsa"]`, in `host_key_<kind>`) instead of the single ed25519 one, as a
    /// Windows host has. [`Sshd::known_hosts_line_of`] gives the line for one of them.
    pub fn start_with_host_keys(ip: &str, port: u16, dir: &Path, client: &ClientKey, kinds: &[&str]) -> Sshd {
        assert!(!kinds.is_empty());
        Self::launch(ip, port, dir, client, "", kinds)
    }

    fn launch(ip: &str, port: u16, dir: &Path, client: &ClientKey, sftp_flags: &str, kinds: &[&str]) -> Sshd {
        let sshd = require_tool("sshd");
        fs::create_dir_all(dir).unwrap();
        // sshd refuses to start without its privilege-separation folder: the one path outside the
        // test's temp dir that a test creates (sshd has it compiled in).
        fs::create_dir_all("/run/sshd").unwrap();
        let host_keys: Vec<PathBuf> = if kinds.is_empty() {
            vec![dir.join("host_key")]
        } else {
            kinds.iter().map(|k| dir.join(format!("host_key_{k}"))).collect()
        };
        for (i, key) in host_keys.iter().enumerate() {
            if !key.exists() {
                keygen_type(key, kinds.get(i).copied().unwrap_or("ed25519"));
            }
        }
        let host_key_lines: String = host_keys.iter().map(|k| format!("HostKey {}\n", k.display())).collect();
        let folder = dir.join("sftp");
        fs::create_dir_all(&folder).unwrap();
        let authorized = dir.join("authorized_keys");
        fs::copy(&client.public, &authorized).unwrap();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress {ip}:{port}\n{host_key_lines}PidFile none\nUsePAM no\nStrictModes no\n\
                 AuthorizedKeysFile {ak}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\n\
                 Subsystem sftp internal-sftp -e -l VERBOSE {sftp_flags} -d {folder}\n",
                ak = authorized.display(),
                folder = folder.display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("sshd-{}.log", std::process::id()));
        let mut cmd = Command::new(sshd);
        cmd.args(["-D", "-e", "-f"]).arg(&config);
        let mut server = Server::spawn(cmd, log.clone());
        wait_for_port(SocketAddr::new(ip.parse().unwrap(), port), &mut server.child, &log);
        Sshd { server: Some(server), ip: ip.to_string(), port, folder, dir: dir.to_path_buf() }
    }

    /// The known_hosts line for this server, as `ssh-keyscan` would give it.
    pub fn known_hosts_line(&self) -> String {
        self.known_hosts_line_for(&self.dir.join("host_key.pub"))
    }

    /// The known_hosts line for one host key of a server started by [`Sshd::start_with_host_keys`].
    pub fn known_hosts_line_of(&self, kind: &str) -> String {
        self.known_hosts_line_for(&self.dir.join(format!("host_key_{kind}.pub")))
    }

    /// The known_hosts line that pins this server's address to the public key in `public`.
    pub fn known_hosts_line_for(&self, public: &Path) -> String {
        let public = fs::read_to_string(public).unwrap_or_else(|e| panic!("{}: {e}", public.display()));
        let mut parts = public.split_whitespace();
        format!("[{}]:{} {} {}\n", self.ip, self.port, parts.next().unwrap(), parts.next().unwrap())
    }

    /// How many logins sshd has accepted so far (its `Accepted publickey` log lines).
    pub fn logins(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains("Accepted publickey for ")).count()
    }

    pub fn log_text(&self) -> String {
        self.server.as_ref().map(Server::log_text).unwrap_or_default()
    }

    /// Stops the listener and every session process it forked (found by parent pid; all started
    /// by this test), like a host that dies.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let pid = server.child.id() as i32;
            for child in descendants(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), nix::sys::signal::Signal::SIGKILL);
            }
            server.stop();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process below `pid`, from /proc's parent links.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // The field after the command name (which may hold spaces) is the state, then the ppid.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse::<i32>().ok()) {
            parent_of.push((p, ppid));
        }
    }
    let mut found = vec![];
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (c, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            found.push(*c);
            frontier.push(*c);
        }
    }
    found
}

/// A port free on every one of `ips` (each server of a test listens on the same port number, as
/// `push --ssh-port` is one port for all hosts).
pub fn common_free_port(ips: &[&str]) -> u16 {
    for _ in 0..100 {
        let port = super::free_port(ips[0]);
        if ips.iter().all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok()) {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// One sshd on 127.0.0.2 with a pinned known_hosts file and a one-entry inventory, for tests that
/// push to a single Windows host.
pub struct OneHost {
    pub sshd: Sshd,
    pub key: ClientKey,
    pub dir: PathBuf,
    pub port: u16,
}

impl OneHost {
    pub fn start(dir: &Path) -> OneHost {
        let key = client_key(dir);
        let port = common_free_port(&["127.0.0.2"]);
        let sshd = Sshd::start("127.0.0.2", port, &dir.join("host"), &key);
        fs::write(dir.join("known_hosts"), sshd.known_hosts_line()).unwrap();
        fs::write(
            dir.join("inv.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: windows-instances}\ndata:\n  127.0.0.2: username=root\n",
        )
        .unwrap();
        OneHost { sshd, key, dir: dir.to_path_buf(), port }
    }

    /// `mirrorconf push` of `manifests` to this host, into `<sftp folder>/registries`.
    pub fn push(&self, manifests: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
        cmd.arg("push").arg("--manifests").arg(manifests).arg("--inventory").arg(self.dir.join("inv.yaml"));
        cmd.arg("--identity").arg(&self.key.private).arg("--known-hosts").arg(self.dir.join("known_hosts"));
        cmd.args(["--ssh-port", &self.port.to_string(), "--remote-root", "registries"]);
        // The record of confirmed hosts stays in the test's folder.
        cmd.env("XDG_STATE_HOME", self.dir.join("state"));
        cmd
    }

    /// Where the pushed tree lands.
    pub fn remote(&self) -> PathBuf {
        self.sshd.folder.join("registries")
    }
}
