//! `check` through the Bearer token dance, as real registries authenticate: docker-registry with
//! `auth: token` on 127.0.0.7, trusting tokens signed by the in-test token service (TLS, same CA),
//! which hands a token only for the right Basic credentials. Asserted on what the token service
//! and the registry saw, and that no credential or token is ever printed.

mod common;

use common::mirrors::{basic, mirror_set, pull_secret, PASSWORD, USER};
use common::token::{TokenServer, ISSUER, SERVICE};
use common::{make_tls, mirrorconf, oci_image, push_image, Registry, Tls};
use serde_json::Value;
use std::fs;

const SOURCE: &str = "127.0.0.5:1/team/app";

fn check(manifests: &str, image: &str) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("m.yaml"), manifests).unwrap();
    let m = dir.path().join("m.yaml");
    let out = mirrorconf(&["check", "--manifests", m.to_str().unwrap(), "--output", "json", "--image", image]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {all}"));
    (out.status.code().unwrap(), json, all)
}

#[test]
fn the_token_dance_with_the_pull_secrets_credentials() {
    let tls = make_tls(&["127.0.0.7"]);
    let tokens = TokenServer::start("127.0.0.7", &tls, &basic(USER, PASSWORD), USER, &["b/app"]);
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        tokens.realm(),
        tokens.signing_cert.display()
    );
    let registry = Registry::start_with("127.0.0.7", Some(Tls { cert: &tls.server_cert, key: &tls.server_key }), &auth);
    let image = oci_image();
    push_image(&image, &format!("{}/b/app:v1", registry.host()), &[&format!("--dest-creds={USER}:{PASSWORD}")]);
    let pem = fs::read_to_string(&tls.ca_cert).unwrap();
    let ca = format!(
        "---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: cas}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cas, namespace: openshift-config}}\ndata:\n  127.0.0.7..{}: |\n{}",
        registry.addr.port(),
        pem.lines().map(|l| format!("    {l}\n")).collect::<String>()
    );
    let policy = format!("{}{ca}", mirror_set("app", SOURCE, &[format!("{}/b/app", registry.host())], false));
    let reference = format!("{SOURCE}@{}", image.manifest_digest);
    let secrets = [PASSWORD, &basic(USER, PASSWORD), &tokens.token, "wrong-password", &basic(USER, "wrong-password")];
    let no_secret = |all: &str| {
        for s in secrets {
            assert!(!all.contains(s), "a credential or the token was printed:\n{all}");
        }
    };

    let before = tokens.seen().len();
    let (code, report, all) = check(&format!("{policy}{}", pull_secret(&registry.host(), USER, PASSWORD)), &reference);
    assert_eq!(code, 0, "{all}");
    let row = &report["endpoints"][0];
    assert_eq!(
        (row["ok"].as_bool(), row["stage"].as_str(), row["found"].as_bool()),
        (Some(true), Some("manifest"), Some(true)),
        "{row:#}"
    );
    assert!(row["notes"].to_string().contains(&format!("Bearer token from {}", tokens.realm())), "{row:#}");
    no_secret(&all);
    // The token service got the registry's service, the repository's pull scope and the right
    // credentials; the registry then served the manifest to the token.
    let asked = &tokens.seen()[before..];
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].path, format!("/token?service={SERVICE}&scope=repository%3Ab%2Fapp%3Apull"));
    assert_eq!(asked[0].credentials, Some(true));
    let log = registry.server.log_text();
    assert!(log.contains(&format!("\"HEAD /v2/b/app/manifests/{} HTTP/1.1\" 200", image.manifest_digest)), "{log}");

    // Wrong credentials: the token service refuses them, and the message says whose entry to fix.
    let (code, report, all) =
        check(&format!("{policy}{}", pull_secret(&registry.host(), USER, "wrong-password")), &reference);
    let row = &report["endpoints"][0];
    assert_eq!((code, row["stage"].as_str()), (1, Some("auth")), "{row:#}");
    let e = row["error"].as_str().unwrap();
    assert!(
        e.contains("the token service of 127.0.0.7:") && e.contains("refused the credentials the pull secret"),
        "{e}"
    );
    assert_eq!(tokens.seen().last().unwrap().credentials, Some(false));
    no_secret(&all);

    // No entry at all: asked anonymously, refused, and told which entry to add.
    let (code, report, all) = check(&policy, &reference);
    let e = report["endpoints"][0]["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(code, 1);
    assert!(
        e.contains("gives no anonymous token") && e.contains(&format!("add an entry for {}", registry.host())),
        "{e}"
    );
    assert_eq!(tokens.seen().last().unwrap().credentials, None);
    no_secret(&all);
}
