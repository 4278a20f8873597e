use super::*;

/// A root with a secret beside it (outside), and the same absolute path planted inside it.
struct Planted {
    _dir: tempfile::TempDir,
    root: Root,
    secret: PathBuf,
}

fn planted() -> Planted {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, "outside-secret\n").unwrap();
    Planted { root: Root::new(root), secret, _dir: dir }
}

fn inside(p: &Planted, abs: &Path) -> PathBuf {
    p.root.path().join(abs.strip_prefix("/").unwrap())
}

#[test]
fn absolute_and_relative_links_resolve_inside_the_root() {
    let p = planted();
    let link = p.root.path().join("etc/abs");
    std::os::unix::fs::symlink(&p.secret, &link).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../secret", p.root.path().join("etc/rel")).unwrap();
    // Nothing at the target inside the root: there is no such file, whatever is outside.
    assert_eq!(p.root.open_file("etc/abs").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(p.root.kind("etc/abs").unwrap(), None);
    assert_eq!(p.root.kind_no_follow("etc/abs").unwrap(), Some(Kind::Symlink));
    // The same absolute path inside the root is what the link means.
    let planted_inside = inside(&p, &p.secret);
    fs::create_dir_all(planted_inside.parent().unwrap()).unwrap();
    fs::write(&planted_inside, "inside\n").unwrap();
    assert_eq!(io::read_to_string(p.root.open_file("etc/abs").unwrap()).unwrap(), "inside\n");
    // `..` stops at the root.
    fs::write(p.root.path().join("secret"), "top of the root\n").unwrap();
    assert_eq!(io::read_to_string(p.root.open_file("etc/rel").unwrap()).unwrap(), "top of the root\n");
}

#[test]
fn writes_through_a_linked_folder_stay_inside_the_root() {
    let p = planted();
    let outside = p.secret.parent().unwrap().join("outside-dir");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, p.root.path().join("etc/containers")).unwrap();
    // The link's target does not exist inside the root: refused, nothing created outside.
    assert!(p.root.create_dir_all("etc/containers/sub").is_err());
    assert!(p.root.write_atomic("etc/containers/f", b"x", 0o644).is_err());
    // Once it exists inside the root, the write lands there.
    let target = inside(&p, &outside);
    fs::create_dir_all(&target).unwrap();
    p.root.create_dir_all("etc/containers/sub").unwrap();
    p.root.write_atomic("etc/containers/sub/f", b"x", 0o600).unwrap();
    assert_eq!(fs::read(target.join("sub/f")).unwrap(), b"x");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside the root");
    assert_eq!(p.root.mode("etc/containers/sub/f").unwrap(), 0o600);
}

#[test]
fn a_link_as_the_last_component_is_replaced_or_removed_never_followed() {
    let p = planted();
    let link = p.root.path().join("etc/policy.json");
    std::os::unix::fs::symlink(&p.secret, &link).unwrap();
    p.root.write_atomic("etc/policy.json", b"{}", 0o644).unwrap();
    assert_eq!(fs::read(&link).unwrap(), b"{}");
    assert!(!fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    std::os::unix::fs::symlink(&p.secret, p.root.path().join("etc/lock")).unwrap();
    assert!(p.root.open_lock("etc/lock").is_err(), "a linked lock file is refused");
    p.root.remove_file("etc/lock").unwrap();
    assert_eq!(fs::read_to_string(&p.secret).unwrap(), "outside-secret\n");
}

#[test]
fn fifos_and_magic_links_are_refused_without_hanging() {
    let p = planted();
    rustix::fs::mknodat(rustix::fs::CWD, p.root.path().join("etc/fifo"), FileType::Fifo, Mode::from_raw_mode(0o600), 0)
        .unwrap();
    assert_eq!(p.root.open_file("etc/fifo").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    fs::create_dir_all(p.root.path().join("proc")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root/etc/hostname", p.root.path().join("etc/magic")).unwrap();
    // Resolved inside the root, `/proc/self` is the root's own (empty) proc folder.
    assert!(p.root.open_file("etc/magic").is_err());
    let names: Vec<_> = p.root.read_dir("etc").unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 2);
}
