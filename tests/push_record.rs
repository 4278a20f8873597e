//! `mirrorconf push` at fleet scale, against real OpenSSH servers on loopback: a round whose tree
//! did not change logs in nowhere (asserted on each sshd's own log), drift is found by
//! verification, a host whose push failed is never recorded as current, the record is untrusted
//! input, and a hung host costs only its own time limit.

mod common;

use common::fleet::{expected_tree, files, line_for, policy, text, Fleet};
use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

#[test]
fn an_unchanged_push_logs_in_nowhere_and_verify_all_logs_in_everywhere() {
    let fleet = Fleet::start(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let m = policy(&["quay.io"], "mirror.local");
    let out = fleet.push(&m, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.logins(), [1, 1, 1]);
    assert!(fleet.record().is_file(), "no record under $XDG_STATE_HOME");

    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(fleet.logins(), [1, 1, 1], "an unchanged round logged in somewhere");
    assert!(t.contains("3 host(s): 3 current, 0 updated, 0 failed (3 not contacted:"), "{t}");
    assert!(!t.contains("root@127.0.0."), "a line for a host that was not contacted: {t}");

    let out = fleet.push(&m, &["--verify-all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.logins(), [2, 2, 2]);

    // A changed tree reaches every host again, once each.
    let out = fleet.push(&policy(&["quay.io", "docker.io"], "mirror.local"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.logins(), [3, 3, 3]);
}

#[test]
fn drift_is_left_alone_by_a_quiet_round_and_repaired_when_verification_comes_due() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    let m = policy(&["quay.io", "docker.io"], "mirror.local");
    assert!(fleet.push(&m, &[]).status.success());
    let remote = fleet.remote(0);
    fs::write(remote.join("quay.io/hosts.toml"), "server = \"https://someone-else.example\"\n").unwrap();
    fs::remove_file(remote.join("docker.io/hosts.toml")).unwrap();

    let out = fleet.push(&m, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.logins(), [1], "not due yet: not contacted");
    assert_ne!(files(&remote), expected_tree(&m));

    // Due between 0.75 and 1.25 intervals after the last verification.
    std::thread::sleep(Duration::from_millis(2100));
    let out = fleet.push(&m, &["--verify-interval", "1"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(fleet.logins(), [2]);
    let line = line_for(&t, "127.0.0.2");
    assert!(line.contains("2 written") && line.contains("files verified"), "{t}");
    assert_eq!(files(&remote), expected_tree(&m));
}

#[test]
fn a_host_whose_push_failed_is_never_recorded_current() {
    let mut fleet = Fleet::start(&["127.0.0.2", "127.0.0.3"]);
    let one = policy(&["quay.io"], "one.local");
    let two = policy(&["quay.io"], "two.local");
    assert!(fleet.push(&one, &[]).status.success());
    fleet.hosts[1].kill();
    let out = fleet.push(&two, &["--retries", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = fs::read_to_string(fleet.record()).unwrap();
    let entry = |ip: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&record).unwrap();
        v["hosts"].as_array().unwrap().iter().find(|h| h["address"] == ip).unwrap().clone()
    };
    assert_eq!(entry("127.0.0.3")["tree"], "pending", "{record}");
    assert_ne!(entry("127.0.0.2")["tree"], "pending", "{record}");

    let port = fleet.port;
    let dir = fleet.dir.path().join("127.0.0.3");
    fleet.hosts[1] = common::sshd::Sshd::start("127.0.0.3", port, &dir, &fleet.key);
    let out = fleet.push(&two, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(line_for(&t, "127.0.0.3").contains("updated"), "{t}");
    assert_eq!(fleet.hosts[1].logins(), 1, "the restarted host was not contacted");
    assert_eq!(fleet.hosts[0].logins(), 2, "the current host was contacted again");
    assert_eq!(files(&fleet.remote(1)), expected_tree(&two));
}

#[test]
fn a_bad_record_is_named_field_by_field_and_its_hosts_are_contacted() {
    let fleet = Fleet::start(&["127.0.0.2", "127.0.0.3"]);
    let m = policy(&["quay.io"], "mirror.local");
    assert!(fleet.push(&m, &[]).status.success());
    let path = fleet.record();
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    v["hosts"][0]["tree"] = "current".into();
    v["hosts"][1]["confirmed_at"] = serde_json::json!(-1);
    fs::write(&path, v.to_string()).unwrap();
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let shown = path.display();
    assert!(t.contains(&format!("warning: record {shown}: hosts[0].tree = \"current\": neither a SHA-256")), "{t}");
    assert!(t.contains(&format!("record {shown}: hosts[1].confirmed_at = -1: not a whole number")), "{t}");
    assert_eq!(fleet.logins(), [2, 2], "a host with a refused entry was not contacted");
    // Rewritten clean: the next round is quiet again.
    let out = fleet.push(&m, &[]);
    assert!(!text(&out).contains("warning: record"), "{}", text(&out));
    assert_eq!(fleet.logins(), [2, 2]);

    fs::write(&path, "{ not json").unwrap();
    let out = fleet.push(&m, &[]);
    assert!(text(&out).contains(&format!("record {shown}: not valid JSON")), "{}", text(&out));
    assert_eq!(fleet.logins(), [3, 3]);
}

#[test]
fn a_host_whose_pinned_key_changed_is_contacted_and_refused_not_skipped() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    let m = policy(&["quay.io"], "mirror.local");
    assert!(fleet.push(&m, &[]).status.success());
    let impostor = fleet.path("impostor");
    common::sshd::keygen(&impostor);
    fleet.write_known_hosts(&fleet.hosts[0].known_hosts_line_for(&impostor.with_extension("pub")));
    let out = fleet.push(&m, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(line_for(&t, "127.0.0.2").contains("does NOT match"), "{t}");
}

/// 127.0.0.10 takes connections and never says a word; it comes first in the inventory.
fn with_a_silent_host(fleet: &Fleet) -> std::thread::JoinHandle<()> {
    let silent = std::net::TcpListener::bind(("127.0.0.10", fleet.port)).unwrap();
    let mut inv = BTreeMap::new();
    inv.insert("127.0.0.10".to_string(), "username=root".to_string());
    inv.insert("127.0.0.2".to_string(), "username=root".to_string());
    fleet.write_inventory(&inv);
    std::thread::spawn(move || {
        let mut conns = vec![];
        while let Ok((c, _)) = silent.accept() {
            conns.push(c);
            if conns.len() == 2 {
                std::thread::sleep(Duration::from_secs(20));
                break;
            }
        }
    })
}

#[test]
fn a_silent_host_is_cut_at_the_host_timeout_and_delays_no_other() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    let held = with_a_silent_host(&fleet);
    let m = policy(&["quay.io"], "mirror.local");
    // Per-call timeouts far away: only the host timeout can end the silent host's attempt.
    let limits = ["--timeout", "60", "--host-timeout", "2", "--retries", "0"];
    let out = fleet.push(&m, &limits);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let hung = line_for(&t, "127.0.0.10");
    assert!(hung.contains("FAILED") && hung.contains("--host-timeout"), "{t}");
    // Cut at the host timeout (2 s), nowhere near the per-call one (60 s).
    let secs: f64 = hung.split_whitespace().nth(2).and_then(|s| s.strip_suffix('s')).unwrap().parse().unwrap();
    assert!(secs < 30.0, "the silent host held its worker for {secs} s: {t}");
    // Lines come as hosts finish: the real host did not wait behind the silent one.
    let pos = |ip: &str| t.find(&format!("root@{ip} ")).unwrap();
    assert!(pos("127.0.0.2") < pos("127.0.0.10"), "{t}");
    assert_eq!(fleet.logins(), [1]);

    // --parallel 1 keeps the strict inventory order: the silent host first, then the other.
    let out = fleet.push(&policy(&["quay.io"], "other.local"), &[&limits[..], &["--parallel", "1"]].concat());
    let t = text(&out);
    assert!(pos_in(&t, "127.0.0.10") < pos_in(&t, "127.0.0.2"), "{t}");
    assert!(line_for(&t, "127.0.0.2").contains("updated"), "{t}");
    drop(held);
}

fn pos_in(t: &str, ip: &str) -> usize {
    t.find(&format!("root@{ip} ")).unwrap_or_else(|| panic!("no line for {ip}: {t}"))
}

#[test]
fn a_record_named_without_a_folder_is_kept_in_the_working_folder() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    let m = policy(&["quay.io"], "mirror.local");
    for _ in 0..2 {
        let out = fleet.push_args(&m, &["--record", "rec.json"]).current_dir(fleet.dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(fleet.path("rec.json").is_file());
    assert_eq!(fleet.logins(), [1], "the second push did not use the record");
}

/// The issue's case: a 32 MiB record of tiny bad entries cost 3.6 GB and 16.7 million warning
/// lines. Now the entries are read one at a time and the first 20 are named, the rest counted.
#[test]
fn a_record_of_32_mib_of_tiny_bad_entries_costs_megabytes_and_a_few_lines() {
    let fleet = Fleet::start(&["127.0.0.2"]);
    // No host to contact: what is measured is reading the record.
    fleet.write_inventory(&BTreeMap::new());
    let record = fleet.path("state/mirrorconf/push-record.json");
    fs::create_dir_all(record.parent().unwrap()).unwrap();
    let (prefix, max) = (r#"{"version":1,"hosts":[{}"#, 32usize << 20);
    let entries = (max - prefix.len() - 2) / 3 + 1;
    fs::write(&record, format!("{prefix}{}]}}", ",{}".repeat(entries - 1))).unwrap();
    let out = fleet.push(&policy(&["quay.io"], "mirror.local"), &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let warnings: Vec<&str> = t.lines().filter(|l| l.starts_with("warning: record ")).collect();
    assert_eq!(warnings.len(), 21, "{t}");
    assert!(warnings[20].ends_with(&format!("{} more entries ignored (only the first 20 are named)", entries - 20)));
    // Every child of this test process so far, the push included.
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak_mib = usage.max_rss() / 1024;
    eprintln!("peak resident size of the children: {peak_mib} MiB");
    assert!(peak_mib < 256, "the push peaked at {peak_mib} MiB");
    assert!(fs::metadata(&record).unwrap().len() < 100, "the record is rewritten");
}
