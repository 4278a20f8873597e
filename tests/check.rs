//! `mirrorconf check` against real docker-registry servers on loopback: a mirror signed by the CA
//! the policy distributes (usable), one signed by a CA the node never gets (TLS), one that is down
//! (connect), one behind htpasswd reached with the pull secret's credentials (usable) and with wrong
//! ones (auth), and with `--image` an image only one mirror has. Assertions are on the JSON and on
//! what each registry's access log saw.

mod common;

use common::mirrors::{basic, mirror_set, pull_secret, Mirrors, PASSWORD, USER};
use common::{mirrorconf, oci_image, oci_image_with, push_image, render_text};
use serde_json::Value;
use std::fs;

const SOURCE: &str = "127.0.0.5:1/team/app";

fn check(manifests: &str, extra: &[&str]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    fs::write(&file, manifests).unwrap();
    let mut args = vec!["check", "--manifests", file.to_str().unwrap(), "--output", "json", "--timeout", "20"];
    args.extend_from_slice(extra);
    run(&args)
}

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = mirrorconf(args);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {all}"));
    (out.status.code().unwrap(), json, all)
}

/// The report's row for the endpoint that starts with `host`.
fn row<'a>(report: &'a Value, host: &str) -> &'a Value {
    report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"].as_str().unwrap().starts_with(host))
        .unwrap_or_else(|| panic!("no row for {host}: {report:#}"))
}

/// No byte of the credentials in anything mirrorconf printed.
fn assert_no_secret(all: &str) {
    for secret in [PASSWORD, &basic(USER, PASSWORD), "wrong-password", &basic(USER, "wrong-password")] {
        assert!(!all.contains(secret), "the output holds a credential ({secret:?}):\n{all}");
    }
}

#[test]
fn each_mirror_is_reported_at_the_stage_where_it_fails() {
    let m = Mirrors::start();
    let mirrors =
        [&m.good.host(), &m.untrusted.host(), &m.down, &m.private.host()].map(|h| format!("{h}/mirror/app")).to_vec();
    let policy = format!("{}{}", mirror_set("app", SOURCE, &mirrors, false), m.ca_config_map());
    let with_secret = format!("{policy}{}", pull_secret(&m.private.host(), USER, PASSWORD));

    let (code, report, all) = check(&with_secret, &[]);
    assert_eq!(code, 1, "two mirrors are not usable: {all}");
    assert_eq!(report["endpoints"].as_array().unwrap().len(), 4, "{report:#}");
    let order: Vec<&str> =
        report["endpoints"].as_array().unwrap().iter().map(|e| e["endpoint"].as_str().unwrap()).collect();
    assert_eq!(order, mirrors, "resolve's order");

    let good = row(&report, &m.good.host());
    assert_eq!((good["ok"].as_bool(), good["error"].is_null()), (Some(true), true), "{good:#}");
    assert!(good["ms"].as_u64().is_some());
    let untrusted = row(&report, &m.untrusted.host());
    assert_eq!((untrusted["ok"].as_bool(), untrusted["stage"].as_str()), (Some(false), Some("tls")), "{untrusted:#}");
    let e = untrusted["error"].as_str().unwrap();
    assert!(e.starts_with("certificate signed by unknown authority: add the CA for 127.0.0.2:"), "{e}");
    assert!(e.contains("additionalTrustedCA") && e.contains(&format!("127.0.0.2..{}", m.untrusted.addr.port())), "{e}");
    let down = row(&report, &m.down);
    assert_eq!((down["ok"].as_bool(), down["stage"].as_str()), (Some(false), Some("connect")), "{down:#}");
    assert!(down["error"].as_str().unwrap().contains("connection refused"), "{down:#}");
    let private = row(&report, &m.private.host());
    assert_eq!((private["ok"].as_bool(), private["stage"].as_str()), (Some(true), Some("auth")), "{private:#}");
    assert_no_secret(&all);

    // What the servers saw: the trusted ones answered /v2/ (the private one after a 401, with the
    // credentials); the untrusted one never got a request, since TLS failed first.
    assert!(m.good.server.log_text().contains("\"GET /v2/ HTTP/1.1\" 200"), "{}", m.good.server.log_text());
    let private_log = m.private.server.log_text();
    assert!(
        private_log.contains("\"GET /v2/ HTTP/1.1\" 401") && private_log.contains("\"GET /v2/ HTTP/1.1\" 200"),
        "{private_log}"
    );
    assert!(private_log.contains("msg=\"authorized request\""), "the registry accepted the credentials: {private_log}");
    assert!(m.untrusted.requests().is_empty(), "{:?}", m.untrusted.requests());

    // Wrong credentials: the auth stage, saying whose entry to fix; none: saying which to add.
    let (_, report, all) = check(&format!("{policy}{}", pull_secret(&m.private.host(), USER, "wrong-password")), &[]);
    let private = row(&report, &m.private.host());
    assert_eq!((private["ok"].as_bool(), private["stage"].as_str()), (Some(false), Some("auth")), "{private:#}");
    let e = private["error"].as_str().unwrap();
    assert!(e.contains("refused the credentials the pull secret (openshift-config/pull-secret) holds"), "{e}");
    assert_no_secret(&all);
    let (_, report, _) = check(&policy, &[]);
    let e = row(&report, &m.private.host())["error"].as_str().unwrap().to_string();
    assert!(e.contains("asks for credentials and the pull secret") && e.contains("has none"), "{e}");

    // The table for people says the same.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("m.yaml"), &with_secret).unwrap();
    let out = mirrorconf(&["check", "--manifests", dir.path().join("m.yaml").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLS failed: certificate signed by unknown authority"), "{text}");
    assert!(text.contains("TCP connect failed: nothing listens on 127.0.0.3"), "{text}");
    assert!(text.contains("NOT usable: 4 endpoint(s), 2 failing"), "{text}");
}

#[test]
fn with_an_image_check_says_which_mirror_serves_it_and_where_digests_differ() {
    let m = Mirrors::start();
    let (one, two) = (oci_image(), oci_image_with("another build\n"));
    // By digest: only the private mirror has it. By tag: both have v1, as different images.
    let creds = format!("--dest-creds={USER}:{PASSWORD}");
    push_image(&one, &format!("{}/d/app:v1", m.private.host()), &[&creds]);
    push_image(&one, &format!("{}/t/app:v1", m.good.host()), &[]);
    push_image(&two, &format!("{}/t/app:v1", m.private.host()), &[&creds]);
    let at = |path: &str| [&m.good, &m.private].map(|r| format!("{}/{path}", r.host())).to_vec();
    let policy = format!(
        "{}{}{}{}",
        mirror_set("digests", SOURCE, &at("d/app"), false),
        mirror_set("tags", SOURCE, &at("t/app"), true),
        m.ca_config_map(),
        pull_secret(&m.private.host(), USER, PASSWORD)
    );

    let by_digest = format!("{SOURCE}@{}", one.manifest_digest);
    let pushed = m.good.requests().len();
    let (code, report, all) = check(&policy, &["--image", &by_digest]);
    assert_eq!(code, 0, "the private mirror serves it: {all}");
    let served = format!("{}/d/app@{}", m.private.host(), one.manifest_digest);
    assert_eq!(report["served_by"], served.as_str(), "{report:#}");
    let rows = report["endpoints"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the tag-only mirrors are not used for a digest: {report:#}");
    let good = row(&report, &m.good.host());
    assert_eq!((good["ok"].as_bool(), good["found"].as_bool()), (Some(true), Some(false)), "{good:#}");
    assert_eq!(row(&report, &m.private.host())["digest"], one.manifest_digest.as_str());
    assert!(report["skipped"].to_string().contains("tag-only"), "{report:#}");
    let manifest = format!("/v2/d/app/manifests/{}", one.manifest_digest);
    assert!(
        m.good.server.log_text().contains(&format!("\"HEAD {manifest} HTTP/1.1\" 404")),
        "{}",
        m.good.server.log_text()
    );
    assert!(m.private.server.log_text().contains(&format!("\"HEAD {manifest} HTTP/1.1\" 200")));
    let asked: Vec<String> = m.good.requests().split_off(pushed);
    assert!(!asked.iter().any(|r| r.contains("/v2/t/")), "a digest pull never asks a tag-only mirror: {asked:?}");
    assert_no_secret(&all);

    let (code, report, _) = check(&policy, &["--image", &format!("{SOURCE}:v1")]);
    assert_eq!(code, 0);
    assert_eq!(report["served_by"], format!("{}/t/app:v1", m.good.host()).as_str());
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("disagree on the digest")
            && warnings.contains(&one.manifest_digest)
            && warnings.contains(&two.manifest_digest),
        "{warnings}"
    );
    assert!(report["skipped"].to_string().contains("digest-only"), "{report:#}");

    // An image no mirror has: nothing serves it, exit 1.
    let (code, report, _) = check(&policy, &["--image", &format!("{SOURCE}:v2")]);
    assert_eq!((code, report["served_by"].is_null()), (1, true), "{report:#}");
}

#[test]
fn check_root_reads_what_the_node_has() {
    let m = Mirrors::start();
    let mirrors = [&m.good.host(), &m.untrusted.host(), &m.private.host()].map(|h| format!("{h}/mirror/app")).to_vec();
    let policy = format!(
        "{}{}{}",
        mirror_set("app", SOURCE, &mirrors, false),
        m.ca_config_map(),
        pull_secret(&m.private.host(), USER, PASSWORD)
    );
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    render_text(&policy, root.path(), &["--target", "linux", "--target", "windows"]);
    // CRI-O reads the node's pull secret from the kubelet's file.
    let auth_file = root.path().join("var/lib/kubelet/config.json");
    fs::create_dir_all(auth_file.parent().unwrap()).unwrap();
    let entry =
        |password: &str| format!(r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#, m.private.host(), basic(USER, password));
    fs::write(&auth_file, entry(PASSWORD)).unwrap();

    for target in ["linux", "windows"] {
        let (code, report, all) =
            run(&["check", "--root", r, "--target", target, "--output", "json", "--timeout", "20"]);
        assert_eq!(code, 1, "{target}: {all}");
        let find = |host: &str| -> Value {
            let rows = report["endpoints"].as_array().unwrap();
            rows.iter().find(|e| e["endpoint"].as_str().unwrap().contains(host)).cloned().unwrap()
        };
        assert_eq!(find(&m.good.host())["ok"], true, "{target}: {report:#}");
        assert_eq!(find(&m.untrusted.host())["stage"], "tls", "{target}: {report:#}");
        // Windows: the credentials are the hosts.toml header the pull secret became.
        assert_eq!(find(&m.private.host())["ok"], true, "{target}: {report:#}");
        assert_no_secret(&all);
    }
    // Only the CA files under the root count: without them the trusted mirror fails at TLS too.
    fs::remove_dir_all(root.path().join(format!("etc/docker/certs.d/{}", m.good.host()))).unwrap();
    fs::write(&auth_file, entry("wrong-password")).unwrap();
    let (_, report, all) = run(&["check", "--root", r, "--output", "json"]);
    let good = row(&report, &m.good.host());
    assert_eq!(good["stage"], "tls", "{report:#}");
    assert!(good["error"].as_str().unwrap().contains("the node trusts only the system roots"), "{good:#}");
    let private = row(&report, &m.private.host());
    assert!(private["error"].as_str().unwrap().contains("/var/lib/kubelet/config.json holds"), "{private:#}");
    assert_no_secret(&all);
}

#[test]
fn insecure_registries_as_each_runtime_treats_them() {
    let m = Mirrors::start();
    let plain = common::Registry::start("127.0.0.6", None);
    let mirrors = [&plain.host(), &m.untrusted.host()].map(|h| format!("{h}/mirror/app")).to_vec();
    let policy = format!(
        "{}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  registrySources:\n    insecureRegistries: ['{}', '{}']\n",
        mirror_set("app", SOURCE, &mirrors, false),
        plain.host(),
        m.untrusted.host()
    );
    // containers/image: no verification, and plain HTTP when TLS fails.
    let (code, report, all) = check(&policy, &[]);
    assert_eq!(code, 0, "{all}");
    let (p, u) = (row(&report, &plain.host()), row(&report, &m.untrusted.host()));
    assert!(p["notes"][0].as_str().unwrap().starts_with("plain HTTP: TLS failed"), "{p:#}");
    assert_eq!(u["notes"][0], "TLS not verified (insecure)", "{u:#}");
    assert!(plain.server.log_text().contains("\"GET /v2/ HTTP/1.1\" 200"));
    // containerd: skip_verify only; it never falls back to plain HTTP.
    let (code, report, _) = check(&policy, &["--target", "windows"]);
    assert_eq!(code, 1);
    let p = row(&report, &format!("https://{}", plain.host()));
    assert_eq!(p["stage"], "tls", "{p:#}");
    assert!(p["error"].as_str().unwrap().contains("does not speak TLS (plain HTTP?)"), "{p:#}");
    assert_eq!(row(&report, &format!("https://{}", m.untrusted.host()))["ok"], true, "{report:#}");
}

/// `check --root` reads hosts.toml as containerd does and quotes nothing a broken one holds: a URL
/// already ending in `/v2` is asked for `/v2/` once (containerd does not double it), and a line
/// that does not parse, holding a credential, is named by position only.
#[test]
fn check_root_asks_v2_once_and_quotes_no_broken_line() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // Each request on the connection: its line logged, the rest of its head read, an
            // empty registry answer.
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).map_or(true, |n| n == 0) {
                    break;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                log.lock().unwrap().push(request_line.trim_end().to_string());
                let answer =
                    b"HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}";
                if stream.write_all(answer).is_err() {
                    break;
                }
            }
        }
    });
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let file = root.path().join("etc/containerd/certs.d/reg.local/hosts.toml");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mirror = format!("http://127.0.0.1:{port}/v2");
    fs::write(&file, format!("server = \"{mirror}\"\n\n[host.\"{mirror}\"]\n  capabilities = [\"pull\"]\n")).unwrap();
    let (_, report, all) = run(&[
        "check",
        "--root",
        r,
        "--target",
        "containerd",
        "--image",
        "reg.local/team/app:v1",
        "--output",
        "json",
        "--timeout",
        "10",
    ]);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|l| l.starts_with("HEAD /v2/team/app/manifests/v1 ")), "{seen:?}\n{all}");
    assert!(!seen.iter().any(|l| l.contains("/v2/v2")), "{seen:?}\n{all}");
    assert_eq!(row(&report, &mirror)["endpoint"], format!("{mirror}/team/app/manifests/v1"), "{report:#}");

    let secret = basic(USER, PASSWORD);
    fs::write(
        &file,
        format!("[host.\"{mirror}\"]\n  [host.\"{mirror}\".header]\n    authorization = \"Basic {secret}\n"),
    )
    .unwrap();
    let out = mirrorconf(&["check", "--root", r, "--target", "containerd", "--timeout", "10"]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("reg.local/hosts.toml does not parse (line 3, column "), "{all}");
    assert!(!all.contains(&secret) && !all.contains("Basic"), "{all}");
    assert_no_secret(&all);
}
