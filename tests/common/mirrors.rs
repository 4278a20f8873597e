//! Mirrors for `check`: real docker-registry servers on loopback, each broken (or not) in one way.
//! `good` has a certificate from the CA the policy distributes; `untrusted` one from a CA the node
//! never gets; `down` is an address nothing listens on; `private` asks for htpasswd (bcrypt)
//! credentials and is signed by the distributed CA.

use super::{free_port, make_tls, require_tool, Registry, Tls, TlsFiles};
use std::fs;
use std::process::Command;

pub const USER: &str = "puller";
pub const PASSWORD: &str = "hunter2-Zq9x";

pub struct Mirrors {
    pub good: Registry,
    pub untrusted: Registry,
    pub private: Registry,
    /// `127.0.0.3:<port>` with nothing listening.
    pub down: String,
    pub ca: TlsFiles,
    _other_ca: TlsFiles,
    _auth_dir: tempfile::TempDir,
}

/// `user:password` as a config.json `auth` value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

impl Mirrors {
    pub fn start() -> Mirrors {
        let ca = make_tls(&["127.0.0.1", "127.0.0.4"]);
        let other_ca = make_tls(&["127.0.0.2"]);
        let tls = || Some(Tls { cert: &ca.server_cert, key: &ca.server_key });
        let auth_dir = tempfile::tempdir().unwrap();
        let htpasswd = auth_dir.path().join("htpasswd");
        let out = Command::new(require_tool("htpasswd")).args(["-Bbn", USER, PASSWORD]).output().unwrap();
        assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
        fs::write(&htpasswd, &out.stdout).unwrap();
        let auth = format!("auth:\n  htpasswd:\n    realm: mirrorconf-test\n    path: {}\n", htpasswd.display());
        Mirrors {
            good: Registry::start("127.0.0.1", tls()),
            untrusted: Registry::start(
                "127.0.0.2",
                Some(Tls { cert: &other_ca.server_cert, key: &other_ca.server_key }),
            ),
            private: Registry::start_with("127.0.0.4", tls(), &auth),
            down: format!("127.0.0.3:{}", free_port("127.0.0.3")),
            ca,
            _other_ca: other_ca,
            _auth_dir: auth_dir,
        }
    }

    /// The additionalTrustedCA ConfigMap: the distributed CA for `good` and `private`.
    pub fn ca_config_map(&self) -> String {
        let pem = fs::read_to_string(&self.ca.ca_cert).unwrap();
        let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
        let mut m = "---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  additionalTrustedCA: {name: registry-cas}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: registry-cas, namespace: openshift-config}\ndata:\n".to_string();
        for r in [&self.good, &self.private] {
            m.push_str(&format!("  {}..{}: |\n{indented}", r.addr.ip(), r.addr.port()));
        }
        m
    }
}

/// The pull secret with one entry.
pub fn pull_secret(host: &str, user: &str, password: &str) -> String {
    let json = format!(r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#, basic(user, password));
    format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: pull-secret, namespace: openshift-config}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{json}'\n")
}

/// An ImageDigestMirrorSet (`tags`: an ImageTagMirrorSet) for `source`, never contacting it.
pub fn mirror_set(name: &str, source: &str, mirrors: &[String], tags: bool) -> String {
    let (kind, field) =
        if tags { ("ImageTagMirrorSet", "imageTagMirrors") } else { ("ImageDigestMirrorSet", "imageDigestMirrors") };
    format!(
        "---\napiVersion: config.openshift.io/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n  {field}:\n  - source: {source}\n    mirrors: [{}]\n    mirrorSourcePolicy: NeverContactSource\n",
        mirrors.join(", ")
    )
}
