//! Every path under `--root` is resolved beneath it: links planted under the root (absolute or
//! relative) resolve inside it, so nothing outside is read, written or quoted. Each case plants a
//! link at a path mirrorconf reads or writes, with a secret or an empty folder outside the root
//! that must stay untouched and unquoted. In the DaemonSet (`--root /host`) the same rule is what
//! makes an absolute link on the host mean the host's file, not the container's.

mod common;

use common::{mirrorconf, tree};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

const MARKER: &str = "TOPSECRET-7f3a";

/// IDMS for quay.io/ns, and a blocked registry so that policy.json is rendered too.
const MANIFESTS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: one}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.corp/ns]\n---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    blockedRegistries: [bad.example]\n";

struct Setup {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// A folder beside the root: nothing may appear in it.
    outside: PathBuf,
    /// A 0600 file beside the root whose text may appear nowhere.
    secret: PathBuf,
    manifests: PathBuf,
}

fn setup(secret_text: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, secret_text).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let manifests = dir.path().join("m.yaml");
    fs::write(&manifests, MANIFESTS).unwrap();
    Setup { dir, root, outside, secret, manifests }
}

impl Setup {
    fn run(&self, command: &str, extra: &[&str]) -> Output {
        let mut args =
            vec![command, "--manifests", self.manifests.to_str().unwrap(), "--root", self.root.to_str().unwrap()];
        args.extend_from_slice(extra);
        mirrorconf(&args)
    }

    fn plant(&self, rel: &str, target: &Path) {
        let at = self.root.join(rel);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        symlink(target, at).unwrap();
    }

    /// Nothing outside the root changed: the folder beside it is empty, the secret as it was.
    fn outside_untouched(&self, secret_text: &str) {
        assert_eq!(tree(&self.outside), Vec::<String>::new(), "written outside the root");
        assert_eq!(fs::read_to_string(&self.secret).unwrap(), secret_text);
        let beside: Vec<_> = fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(beside.len(), 4, "something new beside the root: {beside:?}");
    }

    /// No file under the root holds the secret.
    fn secret_nowhere_under_the_root(&self) {
        for rel in tree(&self.root) {
            let text = fs::read_to_string(self.root.join(&rel)).unwrap_or_default();
            assert!(!text.contains(MARKER), "{rel} holds the secret:\n{text}");
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_policy_json_linked_to_a_secret_is_neither_copied_nor_shown() {
    let secret = format!(
        "{{\"default\":[{{\"type\":\"insecureAcceptAnything\"}}],\"transports\":{{\"docker\":{{\"{MARKER}.example\":[{{\"type\":\"reject\"}}]}}}}}}\n"
    );
    let s = setup(&secret);
    s.plant("etc/containers/policy.json", &s.secret);
    let diff = s.run("diff", &[]);
    assert!(!text(&diff).contains(MARKER), "diff shows the secret:\n{}", text(&diff));
    let out = s.run("render", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(MARKER), "{}", text(&out));
    let policy = fs::read_to_string(s.root.join("etc/containers/policy.json")).unwrap();
    assert!(policy.contains("bad.example"), "{policy}");
    s.secret_nowhere_under_the_root();
    s.outside_untouched(&secret);
}

#[test]
fn a_linked_certs_d_host_folder_gets_no_hosts_toml_outside_the_root() {
    let s = setup("x");
    s.plant("etc/containerd/certs.d/quay.io", &s.outside);
    // The link's target does not exist inside the root: refused, or written inside; never outside.
    s.run("render", &["--target", "containerd"]);
    s.outside_untouched("x");
    // Once the folder the link means exists inside the root, hosts.toml goes there.
    fs::create_dir_all(s.root.join(s.outside.strip_prefix("/").unwrap())).unwrap();
    let out = s.run("render", &["--target", "containerd"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(s.root.join(s.outside.strip_prefix("/").unwrap()).join("hosts.toml").exists());
    s.outside_untouched("x");
}

#[test]
fn linked_etc_containers_and_state_folders_keep_writes_and_state_inside() {
    for linked in ["etc/containers", "var/lib/mirrorconf"] {
        let s = setup("x");
        s.plant(linked, &s.outside);
        let out = s.run("render", &[]);
        s.outside_untouched("x");
        // Where the link leads inside the root, the files follow it.
        fs::create_dir_all(s.root.join(s.outside.strip_prefix("/").unwrap())).unwrap();
        let out2 = s.run("render", &[]);
        assert!(out2.status.success(), "{linked}: {}\n{}", text(&out), text(&out2));
        let landed = tree(&s.root.join(s.outside.strip_prefix("/").unwrap()));
        assert!(!landed.is_empty(), "{linked}: nothing written where the link leads in the root");
        s.outside_untouched("x");
    }
}

#[test]
fn a_toml_error_in_a_linked_non_toml_file_quotes_nothing_from_outside() {
    let secret = format!("{MARKER} = this is not [toml\nsecond line\n");
    let s = setup(&secret);
    s.plant("etc/containers/registries.conf", &s.secret);
    // The same absolute path inside the root holds a broken file of the root's own.
    let inside = s.root.join(s.secret.strip_prefix("/").unwrap());
    fs::create_dir_all(inside.parent().unwrap()).unwrap();
    fs::write(&inside, "inside = [broken\n").unwrap();
    let out = s.run("render", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains(MARKER), "{}", text(&out));
    assert!(text(&out).contains("inside"), "the error is about the file inside the root: {}", text(&out));
    s.outside_untouched(&secret);
}

/// `--root /host` in the DaemonSet: the host's `/etc/containers -> /usr/share/host-containers`
/// means `/host/usr/share/host-containers`, never the container's own folder of that name.
#[test]
fn an_absolute_link_under_the_root_means_the_roots_path() {
    let s = setup("x");
    let host_dir = s.root.join("usr/share/host-containers");
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("registries.conf"), "# the host's own\nunqualified-search-registries = [\"docker.io\"]\n")
        .unwrap();
    // The link text as the host has it: absolute, meaningful only under the root.
    s.plant("etc/containers", Path::new("/usr/share/host-containers"));
    let out = s.run("render", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let conf = fs::read_to_string(host_dir.join("registries.conf")).unwrap();
    assert!(conf.contains("# the host's own") && conf.contains("mirror.corp/ns"), "{conf}");
    assert!(!Path::new("/usr/share/host-containers").exists(), "written in the test's own filesystem");
    s.outside_untouched("x");
}
