//! The security review of docs/security.md, enforced: nothing escapes its root, credential files are
//! private, secrets stay out of logs and output, and no shell is ever involved.

mod common;

use common::sshd::OneHost;
use common::{contents, mirrorconf, tree};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// base64("robot:s3cr3t-Passw0rd") and the password itself: neither may ever be printed.
const AUTH: &str = "cm9ib3Q6czNjcjN0LVBhc3N3MHJk";
const PASSWORD: &str = "s3cr3t-Passw0rd";

fn pull_secret(config: &str) -> String {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(config);
    format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: pull-secret, namespace: openshift-config}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {data}\n")
}

const IDMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/team/app\n    mirrors: [mirror.local/team/app]\n  - source: other.io/x\n    mirrors: [open.local/x]\n";

fn with_secret() -> String {
    format!("{IDMS}{}", pull_secret(&format!(r#"{{"auths":{{"mirror.local":{{"auth":"{AUTH}"}}}}}}"#)))
}

fn all_targets(m: &Path, root: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["render", "--manifests", m.to_str().unwrap(), "--root", root.to_str().unwrap()])
        .args(["--target", "linux", "--target", "windows", "--target", "containerd"])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn no_registry_host_configmap_key_or_object_name_escapes_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let attempts = [
        // A registry host that tries to climb out (refused by validation).
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: d}\nspec:\n  imageDigestMirrors:\n  - source: ../../../etc/evil\n    mirrors: [m.local/x]\n".to_string(),
        "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {name: t}\nspec:\n  imageTagMirrors:\n  - source: quay.io/x\n    mirrors: [\"..\\\\..\\\\evil\"]\n".to_string(),
        // CA ConfigMap keys that try to name a path.
        format!("{IDMS}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: cas}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cas, namespace: openshift-config}}\ndata:\n  ../../../evil: x\n"),
        format!("{IDMS}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: cas}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cas, namespace: openshift-config}}\ndata:\n  a/b: x\n"),
        format!("{IDMS}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: cas}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cas, namespace: openshift-config}}\ndata:\n  \"..\": x\n"),
    ];
    for (i, text) in attempts.iter().enumerate() {
        let m = outer.path().join(format!("attempt-{i}.yaml"));
        fs::write(&m, text).unwrap();
        let before = contents(outer.path());
        let out = all_targets(&m, &root, &[]);
        assert_eq!(out.status.code(), Some(2), "attempt {i} was not refused: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(contents(outer.path()), before, "attempt {i} wrote something");
    }
    // An object name with slashes is only a name: everything lands under the root's known folders.
    let m = outer.path().join("names.yaml");
    fs::write(&m, IDMS.replace("name: d", "name: \"../../x\"")).unwrap();
    let out = all_targets(&m, &root, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outside: Vec<String> =
        tree(outer.path()).into_iter().filter(|p| !p.starts_with("root/") && !p.ends_with(".yaml")).collect();
    assert!(outside.is_empty(), "{outside:?}");
    for p in tree(&root) {
        assert!(
            ["etc/containers/", "etc/containerd/certs.d/", "k/containerd/registries/", "var/lib/mirrorconf/"]
                .iter()
                .any(|d| p.starts_with(d)),
            "{p}"
        );
    }
}

#[test]
fn hosts_toml_with_credentials_is_private_locally_and_on_windows_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    fs::write(&m, with_secret()).unwrap();
    let root = dir.path().join("root");
    assert!(all_targets(&m, &root, &[]).status.success());
    for layout in ["etc/containerd/certs.d", "k/containerd/registries"] {
        let mode = |p: &str| fs::metadata(root.join(layout).join(p)).unwrap().permissions().mode() & 0o777;
        let creds = fs::read_to_string(root.join(layout).join("quay.io/hosts.toml")).unwrap();
        assert!(creds.contains(AUTH), "the header is rendered");
        assert_eq!(mode("quay.io/hosts.toml"), 0o600, "{layout}");
        assert_eq!(
            mode("other.io/hosts.toml"),
            0o644,
            "{layout}: no credentials, world-readable as containerd expects"
        );
    }

    // Over SFTP too: the remote file is created 0600.
    let host = OneHost::start(dir.path());
    // A world-readable temp file left by an earlier push that was cut short must not lend its mode.
    let stale = host.remote().join("quay.io/.hosts.toml.mirrorconf-tmp");
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    fs::write(&stale, "stale").unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
    let out = host.push(&m).env("RUST_LOG", "trace").output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(AUTH) && !all.contains(PASSWORD), "push printed the credentials");
    let remote = host.remote().join("quay.io/hosts.toml");
    assert_eq!(fs::metadata(&remote).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn secrets_never_reach_logs_errors_or_diffs() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    let root = dir.path().join("root");
    fs::write(&m, with_secret()).unwrap();
    let printed = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };

    let out = all_targets(&m, &root, &[("RUST_LOG", "trace")]);
    assert!(out.status.success());
    let text = printed(&out);
    assert!(!text.contains(AUTH) && !text.contains(PASSWORD), "render logged the credentials:\n{text}");

    // diff shows that the header changes, never its value.
    fs::write(&m, with_secret().replace(AUTH, "bmV3Om5ldy1zZWNyZXQ=")).unwrap();
    let out = mirrorconf(&[
        "diff",
        "--manifests",
        m.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--target",
        "windows",
    ]);
    let text = printed(&out);
    assert!(text.contains("authorization = \"<redacted"), "{text}");
    assert!(!text.contains(AUTH) && !text.contains("bmV3Om5ldy1zZWNyZXQ="), "diff printed credentials:\n{text}");

    // Broken secrets are reported by place, never by content.
    for broken in [
        pull_secret(&format!(r#"{{"auths":"{AUTH}"}}"#)),
        pull_secret(&format!(r#"{{"auths":{{"mirror.local":{{"auth":{{"x":"{PASSWORD}"}}}}}}}}"#)),
        format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: pull-secret, namespace: openshift-config}}\ndata: \"{AUTH}\"\n"),
    ] {
        fs::write(&m, format!("{IDMS}{broken}")).unwrap();
        let out = all_targets(&m, &root, &[("RUST_LOG", "trace")]);
        let text = printed(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains("pull-secret"), "the error names the Secret: {text}");
        assert!(!text.contains(AUTH) && !text.contains(PASSWORD), "an error quoted the credentials:\n{text}");
    }
}

#[test]
fn no_shell_is_ever_invoked() {
    // The source: the only process mirrorconf starts is --on-change's program, without a shell,
    // and the SSH sink opens SFTP channels only (no exec, no shell).
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = fs::read_to_string(&p).unwrap();
            for needle in
                ["\"sh\"", "\"/bin/sh\"", "\"bash\"", "\"-c\"", ".exec(", ".shell(", "channel_session", "request_pty"]
            {
                assert!(!text.contains(needle), "{} contains {needle}", p.display());
            }
        }
    }
    // The behaviour: --on-change "touch DIR/a;echo DIR/$HOME" runs touch with two literal arguments;
    // a shell would have made DIR/a and expanded $HOME. The agent, and so the command, runs in the
    // temp dir, so a relative path in the command can only land there (a relative `$HOME` argument
    // run from the repository root is what leaves a file literally named `$HOME` there).
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m");
    fs::create_dir_all(&manifests).unwrap();
    fs::write(manifests.join("d.yaml"), IDMS).unwrap();
    let marks = dir.path().join("marks");
    fs::create_dir_all(&marks).unwrap();
    let cmd = format!("touch {0}/a;echo {0}/$HOME", marks.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args([
            "run",
            "--manifests",
            manifests.to_str().unwrap(),
            "--root",
            dir.path().join("root").to_str().unwrap(),
            "--on-change",
            &cmd,
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until(20, "the on-change command", || marks.join("$HOME").exists());
    let _ = child.kill();
    let _ = child.wait();
    assert!(marks.join("a;echo").exists(), "{:?}", tree(&marks));
    assert!(!marks.join("a").exists(), "a shell split the command: {:?}", tree(&marks));
}
