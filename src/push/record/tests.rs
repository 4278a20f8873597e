use super::file::{parse, RecordFile};
use super::*;
use crate::push::HostStatus;
use crate::sink::ssh::KnownHostsFile;
use crate::sink::ApplyReport;
use serde_json::Value;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJatafNMIB1DCQyOyPdwU15njb1RqNsNMU9N2L1O0jVm";
const OTHER_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILNVFgJ4fauH/lCt10gCIOyNDKCXElZj7C29atZl8pFk";
const TREE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_TREE: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const D: Dest<'static> = Dest { port: 2222, root: "root" };
const HOUR: Duration = Duration::from_secs(3600);

fn host(ip: &str) -> Host {
    Host { address: ip.into(), user: "root".into() }
}

/// known_hosts pinning every address of `ips` (port 2222) to KEY.
fn pins(dir: &std::path::Path, ips: &[&str]) -> Pins {
    let path = dir.join("known_hosts");
    std::fs::write(&path, ips.iter().map(|ip| format!("[{ip}]:2222 {KEY}\n")).collect::<String>()).unwrap();
    Pins::load(&KnownHostsFile::new(path, false))
}

fn entry(tree: Option<&str>, verified_at: u64) -> Entry {
    Entry {
        host_key: HostKey::parse(KEY).unwrap(),
        tree: tree.map(String::from),
        confirmed_at: verified_at,
        verified_at,
    }
}

fn verify(all: bool) -> Verify {
    Verify { interval: HOUR, all, window: Duration::ZERO }
}

fn outcome(ip: &str, status: HostStatus, verified: bool, key: Option<&str>) -> HostOutcome {
    HostOutcome {
        host: host(ip),
        status,
        elapsed: Duration::ZERO,
        verified,
        host_key: key.map(|k| HostKey::parse(k).unwrap()),
        timings: None,
    }
}

#[test]
fn only_hosts_the_record_cannot_vouch_for_are_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
    let p = pins(dir.path(), &ips[..4]);
    let now = 100_000;
    let mut r = Record::default();
    let key = |ip: &str| Key::new(&host(ip), 2222, "root");
    r.entries.insert(key("10.0.0.1"), entry(Some(TREE), now - 60)); // current
    r.entries.insert(key("10.0.0.2"), entry(Some(TREE), now - 2 * 3600)); // verification due
    r.entries.insert(key("10.0.0.3"), entry(Some(NEW_TREE), now - 60)); // another tree
    r.entries.insert(key("10.0.0.5"), entry(Some(TREE), now - 60)); // key no longer pinned
    let hosts: Vec<Host> = ips.iter().map(|ip| host(ip)).collect();
    let plan = r.plan(&hosts, D, TREE, &p, now, verify(false));
    let jobs: Vec<(&str, bool)> = plan.jobs.iter().map(|j| (j.host.address.as_str(), j.verify)).collect();
    assert_eq!(jobs, [("10.0.0.2", true), ("10.0.0.3", false), ("10.0.0.4", true), ("10.0.0.5", true)]);
    assert_eq!(plan.skipped, 1);
    let due = Record::due_at(&key("10.0.0.1"), &r.entries[&key("10.0.0.1")], HOUR);
    assert_eq!(plan.next_due, Some(due));
    // Another port, user or remote root is another destination.
    assert_eq!(r.plan(&hosts[..1], Dest { port: 22, root: "root" }, TREE, &p, now, verify(false)).jobs.len(), 1);
    assert_eq!(r.plan(&hosts[..1], Dest { port: 2222, root: "other" }, TREE, &p, now, verify(false)).jobs.len(), 1);
    // --verify-all contacts every host and reads its files.
    let all = r.plan(&hosts, D, TREE, &p, now, verify(true));
    assert!(all.jobs.len() == 5 && all.jobs.iter().all(|j| j.verify));
}

#[test]
fn a_host_being_changed_is_pending_until_confirmed_and_a_failure_never_reads_current() {
    let dir = tempfile::tempdir().unwrap();
    let p = pins(dir.path(), &["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let key = |ip: &str| Key::new(&host(ip), 2222, "root");
    let mut r = Record::default();
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        r.entries.insert(key(ip), entry(Some(TREE), 1000));
    }
    let hosts: Vec<Host> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().map(|ip| host(ip)).collect();
    let plan = r.plan(&hosts, D, NEW_TREE, &p, 2000, verify(false));
    assert_eq!(plan.jobs.len(), 3);
    assert!(r.claim(&plan.jobs, D, NEW_TREE, &p));
    assert!(r.entries.values().all(|e| e.tree.is_none()), "claimed before contact");
    assert!(!r.claim(&plan.jobs, D, NEW_TREE, &p), "nothing more to claim");
    let failed = HostStatus::Failed { error: "x".into(), attempts: 1 };
    let outcomes = [
        outcome(
            "10.0.0.1",
            HostStatus::Updated(ApplyReport { written: vec!["a".into()], ..Default::default() }),
            false,
            Some(KEY),
        ),
        outcome("10.0.0.2", failed, false, None),
        outcome(
            "10.0.0.3",
            HostStatus::Updated(ApplyReport { kept_foreign: vec!["a".into()], ..Default::default() }),
            false,
            Some(KEY),
        ),
    ];
    r.update(&outcomes, D, NEW_TREE, 2000);
    assert_eq!(r.entries[&key("10.0.0.1")].tree.as_deref(), Some(NEW_TREE));
    assert_eq!(r.entries[&key("10.0.0.1")].verified_at, 1000, "a push that trusted the state verified nothing");
    assert_eq!(r.entries[&key("10.0.0.1")].confirmed_at, 2000);
    assert_eq!(r.entries[&key("10.0.0.2")].tree, None, "a failed host stays pending");
    assert_eq!(r.entries[&key("10.0.0.3")].tree, None, "a host holding someone else's file is not current");
    // A verifying contact moves the verification time; another host key starts over.
    r.update(&[outcome("10.0.0.1", HostStatus::Current, true, Some(KEY))], D, NEW_TREE, 3000);
    assert_eq!(r.entries[&key("10.0.0.1")].verified_at, 3000);
    r.update(&[outcome("10.0.0.1", HostStatus::Current, false, Some(OTHER_KEY))], D, NEW_TREE, 4000);
    assert_eq!(r.entries[&key("10.0.0.1")].verified_at, 0);
}

#[test]
fn verification_of_hosts_confirmed_together_is_spread_over_half_an_interval() {
    let mut due: Vec<u64> = (0..2000)
        .map(|i| {
            let key = Key::new(&host(&format!("10.0.{}.{}", i / 256, i % 256)), 22, "C:/k");
            Record::due_at(&key, &entry(Some(TREE), 0), HOUR)
        })
        .collect();
    due.sort();
    assert!(*due.first().unwrap() >= 2700 && *due.last().unwrap() < 4500, "{:?}", (due[0], due[1999]));
    // No quarter of the window holds much more than a quarter of the hosts.
    for q in 0..4 {
        let (lo, hi) = (2700 + q * 450, 2700 + (q + 1) * 450);
        let n = due.iter().filter(|d| (lo..hi).contains(*d)).count();
        assert!(n.abs_diff(500) < 100, "quarter {q}: {n}");
    }
}

#[test]
fn bad_entries_are_ignored_and_named_by_file_field_and_value() {
    let good = format!(
        r#"{{"address":"10.0.0.1","port":22,"user":"root","remote_root":"C:/k","host_key":"{KEY}","tree":"{TREE}","confirmed_at":5,"verified_at":5}}"#
    );
    let bad = |field: &str, value: &str| {
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    };
    let text = format!(
        r#"{{"version":1,"hosts":[{good},{},{},{},{},{},{},{},{good},7]}}"#,
        bad("tree", r#""current""#),
        bad("address", r#""../../etc""#),
        bad("port", "0"),
        bad("host_key", r#""ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ""#),
        bad("verified_at", "99999999999"),
        bad("user", r#""a b""#),
        bad("remote_root", "\"a\\u0007b\""),
    );
    let (r, problems) = parse("/state/push-record.json", text.as_bytes(), 1000);
    assert_eq!(r.entries.len(), 1);
    let expect = [
        r#"hosts[1].tree = "current": neither a SHA-256"#,
        r#"hosts[2].address = "../../etc": the key must be an IPv4 address or a DNS name"#,
        "hosts[3].port = 0: not a port number",
        r#"hosts[4].host_key = "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ": the key is not base64"#,
        "hosts[5].verified_at = 99999999999: in the future",
        r#"hosts[6].user = "a b""#,
        r#"hosts[7].remote_root = "a\u0007b""#,
        "hosts[8]: a second entry for root@10.0.0.1:22 (C:/k)",
        "hosts[9].address = null: not a string",
    ];
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    for (p, e) in problems.iter().zip(expect) {
        assert!(p.starts_with("record /state/push-record.json: ") && p.contains(e), "{p}\nwanted: {e}");
    }
    for (text, why) in [
        ("{", "not valid JSON"),
        (r#"{"version":2,"hosts":[]}"#, "version = 2: only version 1"),
        (r#"{"version":1,"hosts":{}}"#, "expected hosts: a list"),
        (r#"{"version":1}"#, "missing field `hosts`"),
        ("[]", "not a record"),
    ] {
        let (r, p) = parse("f", text.as_bytes(), 0);
        assert!(r.entries.is_empty() && p.len() == 1 && p[0].contains(why), "{p:?}");
    }
}

#[test]
fn the_file_round_trips_and_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/push-record.json");
    let (file, mut r, problems) = RecordFile::open(&path, 10).unwrap();
    assert!(r.entries.is_empty() && problems.is_empty());
    r.entries.insert(Key::new(&host("win-1.example.com"), 22, "C:/k"), entry(Some(TREE), 5));
    r.entries.insert(Key::new(&host("10.0.0.2"), 22, "C:/k"), entry(None, 5));
    file.save(&r).unwrap();
    // Another run waits for the lock; a plain read sees the same record.
    assert!(std::fs::File::open(path.with_extension("lock")).unwrap().try_lock().is_err());
    drop(file);
    let (_file, again, problems) = RecordFile::open(&path, 10).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(again, r);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "a temp file was left: {names:?}");
}

#[test]
fn a_record_past_the_size_limit_is_not_read_and_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("push-record.json");
    // Sparse: 32 MiB + 1 byte of zeros, costing no disk.
    std::fs::File::create(&path).unwrap().set_len(super::file::MAX_BYTES + 1).unwrap();
    let (file, r, problems) = RecordFile::open(&path, 10).unwrap();
    assert!(r.entries.is_empty());
    let want = format!(
        "record {}: cannot read it: larger than 33554432 bytes (the limit); it is ignored and rewritten",
        path.display()
    );
    assert_eq!(problems, [want]);
    file.save(&r).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 100);
}

/// The issue's case: 32 MiB of tiny bad entries (11 million `{}`) cost 3.6 GB and 16.7 million
/// warning lines. Now the first MAX_MESSAGES are named and the rest counted.
#[test]
fn a_record_of_millions_of_tiny_bad_entries_is_named_briefly() {
    let max = super::file::MAX_BYTES as usize;
    let prefix = r#"{"version":1,"hosts":["#;
    let entries = (max - prefix.len() - 2) / 3;
    let mut text = String::with_capacity(max);
    text.push_str(prefix);
    for i in 0..entries {
        text.push_str(if i == 0 { "{}" } else { ",{}" });
    }
    text.push_str("]}");
    assert!(text.len() <= max);
    let started = std::time::Instant::now();
    let (r, problems) = parse("big.json", text.as_bytes(), 0);
    assert!(r.entries.is_empty());
    assert_eq!(problems.len(), super::file::MAX_MESSAGES + 1);
    assert!(problems[0].starts_with("record big.json: hosts[0].address = null: not a string"), "{problems:?}");
    assert_eq!(
        problems.last().unwrap(),
        &format!("record big.json: {} more entries ignored (only the first 20 are named)", entries - 20)
    );
    eprintln!("{entries} entries in {:?}", started.elapsed());
}

/// An entry of a megabyte is refused by its size, not parsed into a tree many times as large.
#[test]
fn an_entry_too_large_for_a_host_is_refused_by_its_size() {
    let big = format!(r#"{{"version":1,"hosts":[[{}0]]}}"#, "0,".repeat(500_000));
    let (r, problems) = parse("f", big.as_bytes(), 0);
    assert!(r.entries.is_empty());
    assert_eq!(
        problems,
        ["record f: hosts[0]: 1000003 bytes, more than an entry holds (65536); this entry is ignored"]
    );
}

/// A FIFO as the record hung the push for ever, holding the lock; a symlinked lock file made root
/// create (or lock) whatever it pointed at. Neither is opened through now.
#[test]
fn a_fifo_record_or_a_symlinked_lock_is_refused_without_hanging_or_following() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("push-record.json");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (file, r, problems) = RecordFile::open(&path, 10).unwrap();
    assert!(r.entries.is_empty());
    assert_eq!(
        problems,
        [format!("record {}: cannot read it: not a regular file; it is ignored and rewritten", path.display())]
    );
    file.save(&r).unwrap();
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file(), "the FIFO is replaced by the record");
    drop(file);

    // A record that is a link is not read through it (it may point at any file root can read).
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "{\"version\":1,\"hosts\":[]}").unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&secret, &path).unwrap();
    let (_file, _, problems) = RecordFile::open(&path, 10).unwrap();
    assert!(problems[0].contains("cannot read it: a symbolic link, which is not followed"), "{problems:?}");
    drop(_file);

    let target = dir.path().join("created-by-root");
    let other = dir.path().join("other/push-record.json");
    std::fs::create_dir(other.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, other.with_extension("lock")).unwrap();
    let e = RecordFile::open(&other, 10).err().expect("a symlinked lock is refused");
    assert!(e.to_string().contains("a symbolic link, which is not followed"), "{e}");
    assert!(!target.exists(), "the link's target was created");
}
