//! Exit codes as README states them: 2 only when the input was refused (and nothing was written),
//! 1 for everything that is not the input's fault: a port that cannot be bound, an API server out
//! of reach, a broken state file.

mod common;

use common::mirrorconf;
use std::fs;
use std::process::Command;

const IDMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/team\n    mirrors: [m.local/team]\n";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_port_that_cannot_be_bound_is_exit_1_not_refused_input() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("m.yaml"), IDMS).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["run", "--manifests"])
        .arg(dir.path().join("m.yaml"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["--listen", &busy.local_addr().unwrap().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error: cannot serve on --listen"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("nothing was written"), "{}", stderr(&out));
}

#[test]
fn an_api_server_out_of_reach_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port("127.0.0.1");
    let kubeconfig = dir.path().join("kubeconfig");
    fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let missing = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["run", "--kube", "--root"])
        .arg(dir.path().join("root"))
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("cannot reach the Kubernetes API"), "{}", stderr(&missing));
    // The Windows pusher, against a server that is not listening: the Lease cannot be read, it
    // keeps trying; that is no refused input either (it never exits 2). Checked through SIGTERM.
    let key = dir.path().join("id");
    fs::write(&key, "").unwrap();
    let pusher = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["run", "--kube", "--windows-push", "--identity"])
        .arg(&key)
        .arg("--known-hosts")
        .arg(&key)
        .env("KUBECONFIG", &kubeconfig)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pusher.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = pusher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read the Lease"), "{}", stderr(&out));
}

#[test]
fn refused_input_is_exit_2_and_a_broken_state_file_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    fs::write(&m, IDMS.replace("m.local/team", "Not A Mirror")).unwrap();
    let root = dir.path().join("root");
    let render = |m: &std::path::Path| {
        mirrorconf(&["render", "--manifests", m.to_str().unwrap(), "--root", root.to_str().unwrap()])
    };
    let out = render(&m);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).ends_with("nothing was written\n"), "{}", stderr(&out));
    assert!(!root.exists(), "a refused render created the root");

    fs::write(&m, IDMS).unwrap();
    fs::create_dir_all(root.join("var/lib/mirrorconf")).unwrap();
    fs::write(root.join("var/lib/mirrorconf/owned.json"), "{ not json").unwrap();
    let out = render(&m);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("owned.json"), "{}", stderr(&out));
}
