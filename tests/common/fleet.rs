//! A fleet of real OpenSSH servers standing for Windows hosts, with the files `mirrorconf push`
//! needs (client key, known_hosts, inventory) in one temp folder, and the record of what each host
//! was last confirmed to hold kept there too (`XDG_STATE_HOME`), never in the user's home.

use super::render_text;
use super::sshd::{client_key, common_free_port, ClientKey, Sshd};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// IDMS entries for `registries` (one source registry each), so the tree has one folder per name.
pub fn policy(registries: &[&str], mirror: &str) -> String {
    let mut m = String::from(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: mirrors}\nspec:\n  imageDigestMirrors:\n",
    );
    for r in registries {
        let path = r.replace(':', "-");
        m.push_str(&format!("  - source: {r}/team/app\n    mirrors: [{mirror}/{path}/team/app]\n"));
    }
    m
}

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub key: ClientKey,
    pub hosts: Vec<Sshd>,
    pub port: u16,
}

impl Fleet {
    pub fn start(ips: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let key = client_key(dir.path());
        let port = common_free_port(ips);
        let hosts = ips.iter().map(|ip| Sshd::start(ip, port, &dir.path().join(ip), &key)).collect();
        let fleet = Fleet { dir, key, hosts, port };
        fleet.write_known_hosts(&fleet.hosts.iter().map(Sshd::known_hosts_line).collect::<String>());
        fleet.write_inventory(&ips.iter().map(|ip| (ip.to_string(), "username=root".to_string())).collect());
        fleet
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Where `push` keeps its record by default, given the `XDG_STATE_HOME` it runs with.
    pub fn record(&self) -> PathBuf {
        self.path("state/mirrorconf/push-record.json")
    }

    pub fn write_known_hosts(&self, text: &str) {
        fs::write(self.path("known_hosts"), text).unwrap();
    }

    pub fn write_inventory(&self, entries: &BTreeMap<String, String>) {
        let mut y = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: windows-instances, namespace: openshift-windows-machine-config-operator}\ndata:\n");
        for (k, v) in entries {
            y.push_str(&format!("  {k:?}: {v:?}\n"));
        }
        fs::write(self.path("inventory.yaml"), y).unwrap();
    }

    pub fn push_args(&self, manifests: &str, extra: &[&str]) -> Command {
        let m = self.path("policy.yaml");
        fs::write(&m, manifests).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
        cmd.args(["push", "--manifests"]).arg(&m);
        cmd.arg("--inventory").arg(self.path("inventory.yaml"));
        cmd.arg("--identity").arg(&self.key.private);
        cmd.arg("--known-hosts").arg(self.path("known_hosts"));
        cmd.args(["--ssh-port", &self.port.to_string(), "--remote-root", "registries"]);
        cmd.env("XDG_STATE_HOME", self.path("state"));
        // Quick test defaults, unless the test sets the flag itself.
        for (flag, value) in
            [("--retries", "1"), ("--retry-delay-ms", "100"), ("--connect-timeout", "3"), ("--timeout", "5")]
        {
            if !extra.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(extra);
        cmd
    }

    pub fn push(&self, manifests: &str, extra: &[&str]) -> Output {
        self.push_args(manifests, extra).output().unwrap()
    }

    pub fn remote(&self, i: usize) -> PathBuf {
        self.hosts[i].folder.join("registries")
    }

    /// Logins each server has accepted so far.
    pub fn logins(&self) -> Vec<usize> {
        self.hosts.iter().map(Sshd::logins).collect()
    }
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The Windows tree `render --target windows` gives, relative to the registries folder.
pub fn expected_tree(manifests: &str) -> BTreeMap<String, Vec<u8>> {
    let root = tempfile::tempdir().unwrap();
    render_text(manifests, root.path(), &["--target", "windows"]);
    files(&root.path().join("k/containerd/registries"))
}

/// Every file under `dir` with its bytes, leaving out mirrorconf's state file.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    super::contents(dir).into_iter().filter(|(p, _)| p != ".mirrorconf-state.json").collect()
}

pub fn line_for<'a>(out: &'a str, ip: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(&format!("root@{ip} "))).unwrap_or_else(|| panic!("no line for {ip} in:\n{out}"))
}
