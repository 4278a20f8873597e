//! How the harness's servers are made, started and stopped: the PKI, etcd's and kube-apiserver's
//! command lines, the one spawning thread, kubeconfigs.

use super::super::{openssl, require_tool, sign_with_test_ca, Server};
use super::TOKEN_USERS;
use serde_json::json;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Which programs the harness runs; each a panic, never a skip, when missing.
pub(super) fn part(name: &str) -> PathBuf {
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
pub(super) fn spawn(cmd: Command, log: PathBuf) -> Server {
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

/// A CA, the API server's serving certificate (127.0.0.1, localhost), the admin's client
/// certificate and the service-account signing key pair, all under `dir`.
pub(super) fn make_pki(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=mirrorconf-test-ca"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    let leaf = |name: &str, subject: &str, ext: &str| {
        fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut req = vec!["req", "-new"];
        req.extend(ec);
        let (key, csr, crt, extfile) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(dir, &req);
        sign_with_test_ca(dir, &csr, &extfile, &crt);
    };
    leaf("serving", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    leaf("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\n");
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"]);
    openssl(dir, &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
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
pub(super) fn apiserver(dir: &Path, etcd: &str, port: u16, tag: &str) -> Server {
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

pub(super) fn stop_gracefully(s: &mut Server) {
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

pub(super) async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}

pub(super) enum User<'a> {
    /// The admin's client certificate, in this folder.
    Admin(&'a Path),
}

pub(super) fn write_kubeconfig(path: &Path, url: &str, ca: &Path, user: User) {
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
