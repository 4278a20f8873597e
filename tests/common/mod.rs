//! Helpers shared by the integration tests: real servers on loopback (started here, stopped by pid),
//! a deterministic OCI image, and the "compare registries.conf by meaning" rule of the golden cases.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
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
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(ip);
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let tls_block = tls
            .map(|t| format!("  tls:\n    certificate: {}\n    key: {}\n", t.cert.display(), t.key.display()))
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_block}",
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
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    fs::create_dir(&content).unwrap();
    fs::write(content.join("hello.txt"), "served by a mirror\n").unwrap();
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

/// One mirror of a registries.conf entry, as the golden README compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorMeaning {
    pub location: String,
    pub insecure: bool,
    pub pull_from_mirror: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMeaning {
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<MirrorMeaning>,
}

/// registries.conf reduced to what it means: per scope (`prefix` if non-empty, else `location`) the
/// location, flags and ordered mirrors; absent booleans are false. Table order is not meaning.
pub fn registries_meaning(text: &str) -> BTreeMap<String, RegistryMeaning> {
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"));
    let mut out = BTreeMap::new();
    let Some(regs) = doc.get("registry").and_then(|r| r.as_array_of_tables()) else { return out };
    let s = |t: &toml_edit::Table, k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let b = |t: &toml_edit::Table, k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    for t in regs.iter() {
        let scope = if s(t, "prefix").is_empty() { s(t, "location") } else { s(t, "prefix") };
        let mirrors = t
            .get("mirror")
            .and_then(|m| m.as_array_of_tables())
            .map(|ms| {
                ms.iter()
                    .map(|m| MirrorMeaning {
                        location: s(m, "location"),
                        insecure: b(m, "insecure"),
                        pull_from_mirror: s(m, "pull-from-mirror"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let prev = out.insert(
            scope.clone(),
            RegistryMeaning {
                location: s(t, "location"),
                insecure: b(t, "insecure"),
                blocked: b(t, "blocked"),
                mirrors,
            },
        );
        assert!(prev.is_none(), "scope {scope} appears twice in\n{text}");
    }
    out
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

/// A CA and a server certificate for the given loopback IPs, made with the openssl command.
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub dir: tempfile::TempDir,
}

pub fn make_tls(ips: &[&str]) -> TlsFiles {
    let openssl = require_tool("openssl");
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = |args: &[&str]| {
        let out = Command::new(&openssl).args(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
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
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    TlsFiles { ca_cert: p("ca.crt"), server_cert: p("server.crt"), server_key: p("server.key"), dir }
}

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
pub mod sshd;
