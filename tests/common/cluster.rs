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

use super::{free_port, require_tool, Server};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod reads;

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

/// Which programs the harness runs; each a panic, never a skip, when missing.
fn part(name: &str) -> PathBuf {
    let p = require_tool(name);
    assert!(
        std::env::var("PATH").unwrap_or_default().contains("target/realparts/bin"),
        "{name} must come from scripts/realparts.sh (target/realparts/bin on PATH, as scripts/test.sh sets it); found {}",
        p.display()
    );
    p
}

/// Spawns every server from one thread that lives as long as the test process, so that
/// `PR_SET_PDEATHSIG` (which fires when the spawning *thread* ends) kills them only when the test
/// process itself dies, even by SIGKILL. Normal ends stop them by pid first.
fn spawn(cmd: Command, log: PathBuf) -> Server {
    type Job = (Command, PathBuf, mpsc::Sender<Server>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, log, back) in rx {
                // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = back.send(Server::spawn(cmd, log));
            }
        });
        Mutex::new(tx)
    });
    let (back, rx) = mpsc::channel();
    tx.lock().unwrap().send((cmd, log, back)).unwrap();
    rx.recv().unwrap()
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new(require_tool("openssl")).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, the API server's serving certificate (127.0.0.1, localhost), the admin's client
/// certificate and the service-account signing key pair, all under `dir`.
fn make_pki(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=mirrorconf-test-ca"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&ca, dir);
    let leaf = |name: &str, subject: &str, ext: &str| {
        fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut req = vec!["req", "-new"];
        req.extend(ec);
        let (key, csr, crt, extfile) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(&req, dir);
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &extfile,
            ],
            dir,
        );
    };
    leaf("serving", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    leaf("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\n");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"], dir);
    openssl(&["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
    let tokens: String = TOKEN_USERS.iter().map(|(t, u, g)| format!("{t},{u},{u},\"{g}\"\n")).collect();
    fs::write(dir.join("tokens.csv"), tokens).unwrap();
    // Metadata for every request; the bodies of Node writes, to see what an agent patched.
    fs::write(
        dir.join("audit-policy.yaml"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
         - level: Request\n  verbs: [patch, update, create]\n  resources: [{group: \"\", resources: [nodes]}]\n\
         - level: Metadata\n",
    )
    .unwrap();
}

/// One kube-apiserver on `port` in front of `etcd`, its log and audit log named by `tag`.
fn apiserver(dir: &Path, etcd: &str, port: u16, tag: &str) -> Server {
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let mut cmd = Command::new(part("kube-apiserver"));
    cmd.args([
        format!("--etcd-servers={etcd}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", d(&format!("cert-{tag}"))),
        format!("--tls-cert-file={}", d("serving.crt")),
        format!("--tls-private-key-file={}", d("serving.key")),
        format!("--client-ca-file={}", d("ca.crt")),
        format!("--token-auth-file={}", d("tokens.csv")),
        "--authorization-mode=RBAC".into(),
        // A setting only: nothing here routes to it.
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", d("sa.pub")),
        format!("--service-account-signing-key-file={}", d("sa.key")),
        "--disable-admission-plugins=ServiceAccount".into(),
        // The DaemonSets under deploy/ are privileged, as a node agent that writes /etc must be.
        "--allow-privileged=true".into(),
        format!("--audit-policy-file={}", d("audit-policy.yaml")),
        format!("--audit-log-path={}", d(&format!("audit-{tag}.log"))),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
        "--v=1".into(),
    ]);
    spawn(cmd, dir.join(format!("apiserver-{tag}.log")))
}

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

    fn resource(&self, api_version: &str, kind: &str) -> ApiResource {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.kinds.lock().unwrap().get(&key) {
            return r.clone();
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        // Just after a CRD is Established, discovery can lag for a moment.
        let deadline = Instant::now() + Duration::from_secs(20);
        let found = loop {
            match self.rt.block_on(kube::discovery::pinned_kind(&self.client, &gvk)) {
                Ok((r, _)) => break r,
                Err(e) if Instant::now() > deadline => panic!("no API resource for {api_version} {kind}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.kinds.lock().unwrap().insert(key, found.clone());
        found
    }

    fn api(&self, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
        let r = self.resource(api_version, kind);
        if namespace.is_empty() {
            Api::all_with(self.client.clone(), &r)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &r)
        }
    }

    fn parts(object: &Value) -> (String, String, String, String) {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        (
            s(&object["apiVersion"]),
            s(&object["kind"]),
            s(&object["metadata"]["namespace"]),
            s(&object["metadata"]["name"]),
        )
    }

    /// Creates or updates `object` by server-side apply (field manager `test`), with strict field
    /// validation; the server's refusal as its message.
    pub fn try_apply(&self, object: Value) -> Result<Value, String> {
        let (api_version, kind, ns, name) = Self::parts(&object);
        let api = self.api(&api_version, &kind, &ns);
        let params =
            PatchParams { field_manager: Some("test".into()), force: true, ..Default::default() }.validation_strict();
        self.rt
            .block_on(api.patch(&name, &params, &Patch::Apply(&object)))
            .map(|o| serde_json::to_value(o).unwrap())
            .map_err(|e| match e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            })
    }

    /// As [`Self::try_apply`]; panics on refusal.
    pub fn apply(&self, object: Value) -> Value {
        let what = format!("{} {}", object["kind"], object["metadata"]["name"]);
        self.try_apply(object).unwrap_or_else(|e| panic!("the server refused {what}: {e}"))
    }

    /// Creates `object` (POST); the server's refusal as its message.
    pub fn try_create(&self, object: Value) -> Result<Value, String> {
        let (api_version, kind, ns, _) = Self::parts(&object);
        let api = self.api(&api_version, &kind, &ns);
        let o: DynamicObject = serde_json::from_value(object).unwrap();
        self.rt.block_on(api.create(&PostParams::default(), &o)).map(|o| serde_json::to_value(o).unwrap()).map_err(
            |e| match e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            },
        )
    }

    /// Replaces `object` (PUT), conditional on the resourceVersion it carries; the server's
    /// refusal (409 Conflict when another writer got in first) as its message.
    pub fn try_replace(&self, object: Value) -> Result<Value, String> {
        let (api_version, kind, ns, name) = Self::parts(&object);
        let api = self.api(&api_version, &kind, &ns);
        let o: DynamicObject = serde_json::from_value(object).unwrap();
        self.rt
            .block_on(api.replace(&name, &PostParams::default(), &o))
            .map(|o| serde_json::to_value(o).unwrap())
            .map_err(|e| e.to_string())
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let api = self.api(api_version, kind, namespace);
        self.rt.block_on(api.get_opt(name)).unwrap().map(|o| serde_json::to_value(o).unwrap())
    }

    /// Every object of a kind (in `namespace`, or all of them with "").
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        let api = self.api(api_version, kind, namespace);
        let list = self.rt.block_on(api.list(&Default::default())).unwrap();
        list.items.into_iter().map(|o| serde_json::to_value(o).unwrap()).collect()
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let api = self.api(api_version, kind, namespace);
        match self.rt.block_on(api.delete(name, &DeleteParams::default())) {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {kind} {name}: {e}"),
        }
    }

    /// A JSON merge patch as the admin (another writer, for races).
    pub fn merge_patch(&self, api_version: &str, kind: &str, namespace: &str, name: &str, patch: Value) -> Value {
        let api = self.api(api_version, kind, namespace);
        let o = self.rt.block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
        serde_json::to_value(o).unwrap()
    }

    /// A JSON merge patch of the status subresource (what a kubelet writes: a Node's addresses).
    pub fn merge_patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Value {
        let api = self.api(api_version, kind, namespace);
        let o = self.rt.block_on(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
        serde_json::to_value(o).unwrap()
    }

    /// A Node object named `name` (no kubelet runs: it is only the object).
    pub fn node(&self, name: &str, extra: Value) -> Value {
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        merge(&mut node, &extra);
        self.apply(node)
    }

    /// A Node named `name` (as [`Self::node`]) whose InternalIP is `ip`, written to the status
    /// subresource as a kubelet writes it (the server ignores status in a write of the Node itself).
    pub fn node_at(&self, name: &str, ip: &str, extra: Value) -> Value {
        self.node(name, extra);
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        self.merge_patch_status("v1", "Node", "", name, status)
    }

    /// A namespace of this name (idempotent).
    pub fn namespace(&self, name: &str) {
        self.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
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

    /// What the API server saw, from its audit logs (every instance's), oldest first:
    /// `ResponseComplete` and `ResponseStarted` events.
    pub fn audit(&self) -> Vec<Value> {
        self.own("the API server's audit log");
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("audit-"))
            .collect();
        files.sort();
        let mut events = Vec::new();
        for f in files {
            for line in fs::read_to_string(f).unwrap_or_default().lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    events.push(v);
                }
            }
        }
        events
    }

    /// The requests `user` made (a service account as `system:serviceaccount:NS:NAME`), one audit
    /// event each: the last the server wrote for it (a watch still open has only `ResponseStarted`).
    pub fn requests_by(&self, user: &str) -> Vec<Value> {
        let mut order = Vec::new();
        let mut last: HashMap<String, Value> = HashMap::new();
        for e in self.audit().into_iter().filter(|e| e["user"]["username"] == user) {
            let id = e["auditID"].as_str().unwrap_or_default().to_string();
            if !last.contains_key(&id) {
                order.push(id.clone());
            }
            last.insert(id, e);
        }
        order.into_iter().filter_map(|id| last.remove(&id)).collect()
    }

    /// The requests `user` made at or after `since` (RFC 3339 as the audit log writes it; "" for
    /// all) that the server refused with 403, one line each.
    pub fn forbidden(&self, user: &str, since: &str) -> Vec<String> {
        self.requests_by(user)
            .into_iter()
            .filter(|e| {
                e["responseStatus"]["code"] == 403 && e["requestReceivedTimestamp"].as_str().unwrap_or("") >= since
            })
            .map(|e| format!("{} {} {}", e["verb"], e["requestURI"], e["responseStatus"]["message"]))
            .collect()
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

fn stop_gracefully(s: &mut Server) {
    // SAFETY: kill(2) of a child this process spawned and has not reaped yet.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = s.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}

enum User<'a> {
    /// The admin's client certificate, in this folder.
    Admin(&'a Path),
}

fn write_kubeconfig(path: &Path, url: &str, ca: &Path, user: User) {
    let user = match user {
        User::Admin(dir) => json!({"client-certificate": dir.join("admin.crt"), "client-key": dir.join("admin.key")}),
    };
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": ca}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
        "current-context": "test",
    });
    fs::write(path, serde_json::to_string_pretty(&kc).unwrap()).unwrap();
}

/// Now, as the audit log writes times (RFC 3339, UTC, microseconds), for comparing with them.
pub fn now_rfc3339() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
