//! A real Kubernetes control plane, the way controller-runtime's envtest makes one: etcd and
//! kube-apiserver, built from the pinned Go module in `realparts/` by `scripts/realparts.sh`, on
//! free loopback ports, with a CA, serving and client certificates, service-account signing keys
//! and an audit log made here. Started for one test ([`ControlPlane::start`]) or once per test
//! binary ([`ControlPlane::shared`]); stopped by pid.
//!
//! - Identities: `admin` (client certificate, group `system:masters`), token users from
//!   [`TOKEN_USERS`], and service accounts by TokenRequest ([`ControlPlane::token`]), bound to a
//!   Pod on a Node as the kubelet's tokens are.
//! - Authorization is RBAC only; admission is the default set less `ServiceAccount` (no
//!   controller-manager runs, so no token controller; no garbage collection either, and a deleted
//!   namespace never finishes terminating).
//! - The audit log ([`ControlPlane::audit`]) is what the server saw: every request with its user,
//!   verb, object and answer, and the bodies of Node writes.
//! - A second API server on the same etcd ([`ControlPlane::second_apiserver`]) changes objects
//!   while the first is stopped ([`ControlPlane::stop_apiserver`], [`ControlPlane::start_apiserver`]);
//!   [`ControlPlane::compact`] compacts etcd's history as a real cluster's does every 5 minutes.
//!
//! This file holds the control plane's life (start, share, restart, stop) and who talks to it
//! (kubeconfigs, kubectl, tokens); `servers.rs` how its processes are made, `objects.rs` the objects
//! on it, `reads.rs` what it holds and saw (Events, the audit log).

use super::{free_port, require_tool, Server};
use kube::core::ApiResource;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

mod objects;
pub mod reads;
mod servers;

use servers::{apiserver, client, make_pki, part, spawn, stop_gracefully, write_kubeconfig, User};

/// Token users of `--token-auth-file`: (token, user, groups). `viewer` and `fleet` are bound to no
/// role here (a test binds what it needs); [`AGENT`] is a cluster admin by its group, a name of its
/// own so that the audit log tells the product's requests from the test's (tests of the shipped
/// RBAC use ServiceAccounts instead).
pub const TOKEN_USERS: &[(&str, &str, &str)] = &[
    ("viewer-token", "viewer", "viewers"),
    ("agent-token", AGENT, "system:masters"),
    ("fleet-token", "fleet", "fleet"),
];

/// The user [`ControlPlane::write_agent_kubeconfig`] authenticates as.
pub const AGENT: &str = "mirrorconf-agent";

/// The environment variable that points the tests at an existing cluster instead (its kubeconfig,
/// with cluster-admin rights). Use a throwaway cluster: the tests install the CRDs and create and
/// delete objects. What needs the harness's own servers (their audit log, a restart, etcd
/// compaction) panics there, saying so.
pub const EXISTING_CLUSTER: &str = "MIRRORCONF_TEST_KUBECONFIG";

pub struct ControlPlane {
    dir: tempfile::TempDir,
    /// The existing cluster's kubeconfig, when [`EXISTING_CLUSTER`] names one.
    existing: Option<PathBuf>,
    etcd: Mutex<Option<Server>>,
    apiserver: Mutex<Option<Server>>,
    pub port: u16,
    pub url: String,
    pub etcd_url: String,
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    kinds: Mutex<HashMap<(String, String), ApiResource>>,
}

impl ControlPlane {
    /// A control plane of this test's own (for tests that change cluster-scoped objects an agent
    /// reads, such as mirror sets).
    pub fn start() -> ControlPlane {
        let dir = tempfile::Builder::new().prefix("mirrorconf-cp").tempdir().unwrap();
        if let Some(existing) = std::env::var_os(EXISTING_CLUSTER).filter(|v| !v.is_empty()) {
            let existing = PathBuf::from(existing);
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let client = rt.block_on(client(&existing));
            return ControlPlane {
                dir,
                existing: Some(existing),
                etcd: Mutex::new(None),
                apiserver: Mutex::new(None),
                port: 0,
                url: String::new(),
                etcd_url: String::new(),
                rt,
                client,
                kinds: Mutex::new(HashMap::new()),
            };
        }
        make_pki(dir.path());
        let (client_port, peer_port) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(part("etcd"));
        cmd.args([
            "--name=test".to_string(),
            format!("--data-dir={}", dir.path().join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=test={peer}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ]);
        let etcd = spawn(cmd, dir.path().join("etcd.log"));
        let port = free_port("127.0.0.1");
        let url = format!("https://127.0.0.1:{port}");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let admin = dir.path().join("admin.kubeconfig");
        write_kubeconfig(&admin, &url, &dir.path().join("ca.crt"), User::Admin(dir.path()));
        let client = rt.block_on(client(&admin));
        let cp = ControlPlane {
            existing: None,
            apiserver: Mutex::new(None),
            etcd: Mutex::new(Some(etcd)),
            port,
            url,
            etcd_url,
            rt,
            client,
            kinds: Mutex::new(HashMap::new()),
            dir,
        };
        cp.start_apiserver();
        cp
    }

    /// One control plane for the whole test binary, stopped by pid when the process exits. Only
    /// for tests that keep to objects of their own (a namespace, names no other test uses).
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
        static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
        extern "C" fn stop_shared() {
            for pid in PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
                // SAFETY: a plain kill(2) of a pid this process spawned and has not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let mut status = 0;
                // SAFETY: reaps that child, so that its files are closed before they are removed.
                unsafe { libc::waitpid(pid as i32, &mut status, 0) };
            }
            // A static is never dropped: its TempDir would stay behind.
            if let Some(dir) = DIR.lock().ok().and_then(|d| d.clone()) {
                let _ = fs::remove_dir_all(dir);
            }
        }
        SHARED.get_or_init(|| {
            let cp = ControlPlane::start();
            cp.install_crds();
            *DIR.lock().unwrap() = Some(cp.dir.path().to_path_buf());
            let mut pids = PIDS.lock().unwrap();
            pids.extend(cp.etcd.lock().unwrap().as_ref().map(|s| s.child.id()));
            pids.extend(cp.apiserver.lock().unwrap().as_ref().map(|s| s.child.id()));
            // SAFETY: registers a function with no captured state.
            unsafe { libc::atexit(stop_shared) };
            cp
        })
    }

    /// The running API server's pid (for what it costs: /proc/PID/stat).
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.lock().unwrap().as_ref().map(|s| s.child.id())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Panics unless this is the harness's own control plane.
    fn own(&self, what: &str) {
        assert!(
            self.existing.is_none(),
            "{what} needs the test harness's own control plane; unset {EXISTING_CLUSTER} for this test"
        );
    }

    pub fn ca(&self) -> PathBuf {
        self.own("the cluster's CA file");
        self.dir.path().join("ca.crt")
    }

    /// The admin's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.existing.clone().unwrap_or_else(|| self.dir.path().join("admin.kubeconfig"))
    }

    /// Writes the admin's kubeconfig to `path` (the fake API server's signature, so that a test
    /// runs against either).
    pub fn write_kubeconfig(&self, path: &Path) {
        fs::copy(self.kubeconfig(), path).unwrap();
    }

    /// Writes a kubeconfig for the same cluster that authenticates with `token`.
    pub fn write_token_kubeconfig(&self, path: &Path, token: &str) {
        let mut kc: Value =
            serde_json::from_str(&self.kubectl_ok(&["config", "view", "--raw", "--minify", "--flatten", "-o", "json"]))
                .unwrap();
        kc["users"] = json!([{"name": "user", "user": {"token": token}}]);
        kc["contexts"][0]["context"]["user"] = json!("user");
        fs::write(path, serde_json::to_string_pretty(&kc).unwrap()).unwrap();
    }

    /// Writes a kubeconfig for the product under test: a cluster admin named [`AGENT`].
    pub fn write_agent_kubeconfig(&self, path: &Path) {
        let token = TOKEN_USERS.iter().find(|(_, u, _)| *u == AGENT).unwrap().0;
        self.write_token_kubeconfig(path, token);
    }

    /// (Re)starts the API server on its port and waits until `/readyz` answers 200.
    pub fn start_apiserver(&self) {
        self.own("starting the API server");
        let mut slot = self.apiserver.lock().unwrap();
        assert!(slot.is_none(), "the API server is running already");
        let n = fs::read_dir(self.dir.path()).unwrap().count();
        let server = apiserver(self.dir.path(), &self.etcd_url, self.port, &format!("main-{n}"));
        *slot = Some(server);
        drop(slot);
        self.wait_ready(&self.url.clone(), 90);
    }

    /// Stops the API server (SIGTERM by pid, then SIGKILL after 10 s); etcd keeps running. Does
    /// nothing on an existing cluster.
    pub fn stop_apiserver(&self) {
        if let Some(mut s) = self.apiserver.lock().unwrap().take() {
            stop_gracefully(&mut s);
        }
    }

    /// A second API server on the same etcd (as in an HA control plane), with a kubeconfig of
    /// its own for the admin. Stopped when dropped.
    pub fn second_apiserver(&self) -> (Server, PathBuf) {
        self.own("a second API server");
        let port = free_port("127.0.0.1");
        let url = format!("https://127.0.0.1:{port}");
        let server = apiserver(self.dir.path(), &self.etcd_url, port, &format!("second-{port}"));
        let kubeconfig = self.dir.path().join(format!("admin-{port}.kubeconfig"));
        write_kubeconfig(&kubeconfig, &url, &self.ca(), User::Admin(self.dir.path()));
        self.wait_ready(&url, 90);
        (server, kubeconfig)
    }

    fn wait_ready(&self, url: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let curl = require_tool("curl");
        let d = self.dir.path();
        loop {
            let out = Command::new(&curl)
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "--cacert"])
                .arg(d.join("ca.crt"))
                .arg("--cert")
                .arg(d.join("admin.crt"))
                .arg("--key")
                .arg(d.join("admin.key"))
                .arg(format!("{url}/readyz"))
                .output()
                .unwrap();
            if out.stdout == b"200" {
                return;
            }
            if Instant::now() > deadline {
                panic!("kube-apiserver at {url} not ready after {secs} s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The tails of every server log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for e in fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".log") && !name.starts_with("audit") {
                let text = fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out += &format!("--- {name} (last 40 lines)\n");
                for l in tail.into_iter().rev() {
                    out += l;
                    out.push('\n');
                }
            }
        }
        out
    }

    /// kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.kubeconfig(), args, None)
    }

    /// kubectl with `kubeconfig`, `stdin` fed to it.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new(part("kubectl"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("kubectl-cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// kubectl as the admin; panics with its output unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The CRDs under deploy/api, applied and Established.
    pub fn install_crds(&self) {
        let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/api");
        self.kubectl_ok(&["apply", "--server-side", "-k", api.to_str().unwrap()]);
        self.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    }

    /// A service-account token by the TokenRequest API, bound to `pod` when given (its node's
    /// name then travels in the token, as in the kubelet's projected tokens).
    pub fn token(&self, namespace: &str, service_account: &str, pod: Option<&str>) -> String {
        let mut args = vec!["create", "token", service_account, "-n", namespace, "--duration=1h"];
        let bound;
        if let Some(p) = pod {
            let uid = self.get("v1", "Pod", namespace, p).expect("the bound pod exists")["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_string();
            bound = [format!("--bound-object-name={p}"), format!("--bound-object-uid={uid}")];
            args.extend(["--bound-object-kind=Pod", &bound[0], &bound[1]]);
        }
        self.kubectl_ok(&args).trim().to_string()
    }

    /// etcd's current revision.
    pub fn etcd_revision(&self) -> u64 {
        self.own("etcd");
        let out = Command::new(part("etcdctl"))
            .args(["--endpoints", &self.etcd_url, "endpoint", "status", "-w", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdctl endpoint status: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["Status"]["header"]["revision"].as_u64().unwrap()
    }

    /// Compacts etcd's history up to its current revision: every older resourceVersion is gone.
    pub fn compact(&self) -> u64 {
        let rev = self.etcd_revision();
        let out = Command::new(part("etcdctl"))
            .args(["--endpoints", &self.etcd_url, "compact", &rev.to_string(), "--physical"])
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdctl compact: {}", String::from_utf8_lossy(&out.stderr));
        rev
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_apiserver();
        if let Some(mut etcd) = self.etcd.lock().unwrap().take() {
            etcd.stop();
        }
    }
}

/// Now, as the audit log writes times (RFC 3339, UTC, microseconds), for comparing with them.
pub fn now_rfc3339() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
