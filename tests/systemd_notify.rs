//! systemd ordering: `Type=notify`, and `READY=1` only once the first apply is done, so that units
//! ordered after mirrorconf (CRI-O, the kubelet) start with the mirrors in place. The notification
//! is received on a real datagram socket, the way systemd receives it; the unit file is checked by
//! systemd's own `systemd-analyze verify`.

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn idms(source: &str) -> String {
    format!(
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: one}}\nspec:\n  imageDigestMirrors:\n  - source: {source}\n    mirrors: [mirror.corp/ns]\n"
    )
}

#[test]
fn ready_is_sent_after_the_first_apply_and_never_for_a_refused_input() {
    let dir = tempfile::tempdir().unwrap();
    let (manifests, root) = (dir.path().join("manifests"), dir.path().join("root"));
    fs::create_dir_all(&manifests).unwrap();
    fs::write(manifests.join("idms.yaml"), idms("Bad Source!")).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args(["run", "--manifests"])
        .arg(&manifests)
        .arg("--root")
        .arg(&root)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let conf = root.join("etc/containers/registries.conf");
    let mut buf = [0u8; 512];

    // Refused: the agent runs (the last good files stay) but the unit does not count as started.
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let early = socket.recv(&mut buf);
    assert!(
        early.is_err(),
        "a notification for a refused input: {:?}",
        early.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
    assert!(!conf.exists());

    fs::write(manifests.join("idms.yaml"), idms("quay.io/ns")).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let n = socket.recv(&mut buf).expect("READY=1 after the first apply");
    // At the moment systemd hears it, the files are there.
    let text = fs::read_to_string(&conf).unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "READY=1");
    assert!(text.contains("mirror.corp/ns"), "{text}");
    // Once only: later changes are no new start.
    fs::write(manifests.join("idms.yaml"), idms("quay.io/other")).unwrap();
    common::wait_until(10, "the next render", || {
        fs::read_to_string(&conf).unwrap_or_default().contains("quay.io/other")
    });
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(socket.recv(&mut buf).is_err(), "a second READY=1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Stops the agent (by its pid) however the test ends: a failed assertion must not leave it running.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// First boot: the unit runs before crio.service, so the first apply finds no CRI-O to reload.
/// That is nothing to reload: READY=1 goes out at once (CRI-O and the kubelet do not wait out
/// the start timeout), the node is not behind, and nothing retries.
#[test]
fn first_boot_without_crio_is_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (manifests, root, no_crio) = (dir.path().join("manifests"), dir.path().join("root"), dir.path().join("proc"));
    fs::create_dir_all(&manifests).unwrap();
    // A /proc with no crio process in it.
    fs::create_dir_all(&no_crio).unwrap();
    fs::write(manifests.join("idms.yaml"), idms("quay.io/ns")).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let port = common::free_port("127.0.0.1");
    let listen = format!("127.0.0.1:{port}");
    let mut agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
            .args(["run", "--reload-crio", "--listen", &listen, "--manifests"])
            .arg(&manifests)
            .arg("--root")
            .arg(&root)
            .arg("--proc-root")
            .arg(&no_crio)
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let conf = root.join("etc/containers/registries.conf");
    let mut buf = [0u8; 512];
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let n = socket.recv(&mut buf).expect("READY=1 with no CRI-O to reload");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "READY=1");
    let written = fs::metadata(&conf).and_then(|m| m.modified()).expect("registries.conf is written before READY=1");
    let after = std::time::SystemTime::now().duration_since(written).unwrap_or_default();
    assert!(after < Duration::from_secs(1), "READY=1 came {after:?} after the first apply");
    let metrics = || common::http_get(listen.parse().unwrap(), "/metrics").map(|(_, body)| body).unwrap_or_default();
    common::wait_until(10, "/metrics", || !metrics().is_empty());
    let first = metrics();
    assert_eq!(common::metric(&first, "mirrorconf_node_behind"), Some(0.0), "{first}");
    assert_eq!(common::metric(&first, "mirrorconf_reload_errors_total"), Some(0.0), "{first}");
    assert_eq!(common::metric(&first, "mirrorconf_reloads_total"), Some(1.0), "{first}");
    // No retry loop: a failed reload is retried every 10 s; past that, still the one reload.
    std::thread::sleep(Duration::from_secs(11));
    let later = metrics();
    assert_eq!(common::metric(&later, "mirrorconf_reloads_total"), Some(1.0), "{later}");
    assert_eq!(common::metric(&later, "mirrorconf_reload_errors_total"), Some(0.0), "{later}");
    assert_eq!(common::metric(&later, "mirrorconf_node_behind"), Some(0.0), "{later}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(agent.0.wait().unwrap().success());
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let unit = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/mirrorconf.service")).unwrap();
    assert!(unit.lines().any(|l| l == "Type=notify"), "the unit must wait for READY=1");
    assert!(unit
        .lines()
        .any(|l| l.starts_with("Before=") && l.contains("crio.service") && l.contains("kubelet.service")));
    // A fresh host has no /var/lib/mirrorconf: systemd must create it (StateDirectory=), since a
    // ReadWritePaths= entry that does not exist fails the start with 226/NAMESPACE.
    assert!(unit.lines().any(|l| l == "StateDirectory=mirrorconf"), "the unit must create its state folder");
    let read_write = unit.lines().filter(|l| l.starts_with("ReadWritePaths="));
    for line in read_write {
        assert!(!line.contains("/var/lib/mirrorconf"), "{line}: the state folder may not exist yet");
    }
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirrorconf.service");
    fs::write(&path, unit.replace("/usr/local/bin/mirrorconf", env!("CARGO_BIN_EXE_mirrorconf"))).unwrap();
    // --man=no: Documentation=man:mirrorconf(1) names the page `mirrorconf man` writes at install
    // time, which this machine does not have installed.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only the unit's own findings count: the host's other units are not this test's business.
    let own: Vec<&str> = stderr.lines().filter(|l| l.contains("mirrorconf.service")).collect();
    assert!(out.status.success() && own.is_empty(), "{stderr}");
}
