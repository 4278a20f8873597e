//! The CNCF distribution registry on loopback (HTTP or TLS, with a CA made by openssl), a
//! deterministic OCI image, and skopeo to push it.

use super::{free_port, openssl, require_tool, sign_with_test_ca, wait_for_port, Server};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The CNCF distribution registry (`docker-registry`) on a loopback address, HTTP or TLS.
pub struct Registry {
    pub server: Server,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

pub struct Tls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl Registry {
    pub fn start(ip: &str, tls: Option<Tls<'_>>) -> Registry {
        Self::start_with(ip, tls, "")
    }

    /// Like [`Registry::start`], with more top-level configuration (e.g. an `auth:` section).
    pub fn start_with(ip: &str, tls: Option<Tls<'_>>, extra_config: &str) -> Registry {
        Self::start_on(ip, free_port(ip), tls, extra_config)
    }

    /// On a given port (an endpoint that was down comes up).
    pub fn start_on(ip: &str, port: u16, tls: Option<Tls<'_>>, extra_config: &str) -> Registry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let tls_block = tls
            .map(|t| format!("  tls:\n    certificate: {}\n    key: {}\n", t.cert.display(), t.key.display()))
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_block}{extra_config}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config_path);
        let mut server = Server::spawn(cmd, dir.path().join("registry.log"));
        wait_for_port(addr, &mut server.child, &server.log);
        Registry { server, addr, _dir: dir }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Request lines (`GET /v2/... HTTP/1.1`) from the access log.
    pub fn requests(&self) -> Vec<String> {
        self.server
            .log_text()
            .lines()
            .filter_map(|l| {
                let start = l.find("\"GET ").or_else(|| l.find("\"HEAD "))?;
                let rest = &l[start + 1..];
                Some(rest[..rest.find('"')?].to_string())
            })
            .collect()
    }

    /// Whether some GET/HEAD request went to `path_prefix` (e.g. `/v2/mirror/app/manifests/`).
    pub fn saw(&self, path_prefix: &str) -> bool {
        self.requests().iter().any(|r| r.split(' ').nth(1).is_some_and(|p| p.starts_with(path_prefix)))
    }
}

/// A one-layer OCI image layout built from fixed bytes; its manifest digest never changes.
pub struct OciImage {
    pub layout: PathBuf,
    pub manifest_digest: String,
    _dir: tempfile::TempDir,
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

pub fn oci_image() -> OciImage {
    oci_image_with("served by a mirror\n")
}

/// A one-layer image whose only file holds `text`: another text, another digest.
pub fn oci_image_with(text: &str) -> OciImage {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    fs::create_dir(&content).unwrap();
    fs::write(content.join("hello.txt"), text).unwrap();
    let tar = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--format=gnu",
            "-cf",
            "-",
            "-C",
        ])
        .arg(&content)
        .arg("hello.txt")
        .output()
        .expect("tar");
    assert!(tar.status.success());
    let mut gz = Command::new("gzip").args(["-n", "-c"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    gz.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let layer = gz.wait_with_output().unwrap().stdout;

    let layout = dir.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let h = sha256_hex(bytes);
        fs::write(blobs.join(&h), bytes).unwrap();
        (format!("sha256:{h}"), bytes.len())
    };
    let (layer_digest, layer_size) = put(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        sha256_hex(&tar.stdout)
    );
    let (config_digest, config_size) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    )
    .unwrap();
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    OciImage { layout, manifest_digest, _dir: dir }
}

/// skopeo with everything it keeps under `home` (a temp dir). Run as root, containers/image keeps
/// its blob-info cache in /var/lib/containers/cache, outside any test's temp dir; told it runs
/// rootless (`_CONTAINERS_ROOTLESS_UID`, what podman sets for itself), it keeps it under
/// `$HOME/.local/share/containers/cache` and looks for its per-user configuration under `$HOME`.
pub fn skopeo(home: &Path) -> Command {
    let mut cmd = Command::new(require_tool("skopeo"));
    cmd.env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env("_CONTAINERS_ROOTLESS_UID", "1");
    cmd
}

/// Pushes the image to `dest` (`host:port/repo:tag`) on a plain-HTTP registry with skopeo.
pub fn push_image(image: &OciImage, dest: &str, extra: &[&str]) {
    let home = tempfile::tempdir().unwrap();
    let out = skopeo(home.path())
        .args(["copy", "--preserve-digests", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:v1", image.layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for the given loopback IPs, made with the openssl command.
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub dir: tempfile::TempDir,
}

pub fn make_tls(ips: &[&str]) -> TlsFiles {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = |args: &[&str]| openssl(dir.path(), args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mirrorconf test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
    fs::write(p("ext.cnf"), format!("subjectAltName={}\nbasicConstraints=CA:FALSE\n", san.join(","))).unwrap();
    sign_with_test_ca(dir.path(), "server.csr", "ext.cnf", "server.crt");
    TlsFiles { ca_cert: p("ca.crt"), server_cert: p("server.crt"), server_key: p("server.key"), dir }
}
