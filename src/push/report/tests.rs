use super::*;
use crate::push::record::Entry;
use crate::sink::ssh::HostKey;
use crate::sink::ApplyReport;
use std::time::Duration;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJatafNMIB1DCQyOyPdwU15njb1RqNsNMU9N2L1O0jVm";
const TREE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const FP: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NEW_FP: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const D: Dest<'static> = Dest { port: 22, root: "C:/k/containerd/registries" };

fn host(ip: &str) -> Host {
    Host { address: ip.into(), user: "Administrator".into() }
}

fn outcome(ip: &str, status: HostStatus) -> HostOutcome {
    HostOutcome {
        host: host(ip),
        status,
        elapsed: Duration::from_millis(100),
        verified: false,
        host_key: Some(HostKey::parse(KEY).unwrap()),
        timings: None,
    }
}

fn failed(error: &str) -> HostStatus {
    HostStatus::Failed { error: error.into(), attempts: 3 }
}

/// A record that vouches for `ips` holding TREE.
fn record(ips: &[&str]) -> Record {
    let mut r = Record::default();
    for ip in ips {
        let e =
            Entry { host_key: HostKey::parse(KEY).unwrap(), tree: Some(TREE.into()), confirmed_at: 1, verified_at: 1 };
        r.entries.insert(D.key(&host(ip)), e);
    }
    r
}

fn state(r: &HostReports, ip: &str) -> Option<(HostState, u64, Option<String>)> {
    r.hosts().find(|h| h.address == ip).map(|h| (h.state, h.since, h.fingerprint.clone()))
}

#[test]
fn a_host_is_current_failing_since_its_first_failure_or_holding_foreign_files() {
    let hosts = [host("10.0.0.1"), host("10.0.0.2"), host("10.0.0.3")];
    let mut r = HostReports::default();
    let kept = ApplyReport { kept_foreign: vec!["quay.io/hosts.toml".into()], ..Default::default() };
    let round = [
        outcome("10.0.0.1", HostStatus::Current),
        outcome("10.0.0.2", failed("cannot connect to 10.0.0.2:22: refused")),
        outcome("10.0.0.3", HostStatus::Updated(kept)),
    ];
    r.after_round(&hosts, &round, &record(&["10.0.0.1"]), D, (TREE, FP), 100);
    assert_eq!(state(&r, "10.0.0.1"), Some((HostState::Current, 100, Some(FP.into()))));
    assert_eq!(state(&r, "10.0.0.2"), Some((HostState::Failed, 100, None)));
    assert_eq!(state(&r, "10.0.0.3"), Some((HostState::Kept, 100, None)));
    let reason = |ip: &str| r.hosts().find(|h| h.address == ip).unwrap().reason.clone();
    assert_eq!(reason("10.0.0.2"), "after 3 attempt(s): cannot connect to 10.0.0.2:22: refused");
    assert!(reason("10.0.0.3").starts_with("kept 1 file(s) mirrorconf did not write"), "{}", reason("10.0.0.3"));

    // Next round: the current host is not contacted (the record vouches for it) and keeps its
    // since; the failing one fails again and keeps the time of its first failure.
    let round = [outcome("10.0.0.2", failed("timed out"))];
    r.after_round(&hosts, &round, &record(&["10.0.0.1"]), D, (TREE, FP), 200);
    assert_eq!(state(&r, "10.0.0.1"), Some((HostState::Current, 100, Some(FP.into()))));
    assert_eq!(state(&r, "10.0.0.2"), Some((HostState::Failed, 100, None)));
    // Kept was not contacted and the record does not vouch for it: what was known stays.
    assert_eq!(state(&r, "10.0.0.3"), Some((HostState::Kept, 100, None)));

    // A new policy whose Windows tree is the same: current with the new fingerprint, since now.
    r.after_round(&hosts, &[], &record(&["10.0.0.1"]), D, (TREE, NEW_FP), 300);
    assert_eq!(state(&r, "10.0.0.1"), Some((HostState::Current, 300, Some(NEW_FP.into()))));

    // A new tree the first host fails to get: failing, still holding the old policy.
    r.after_round(&hosts, &[outcome("10.0.0.1", failed("cut"))], &Record::default(), D, ("22", NEW_FP), 400);
    assert_eq!(state(&r, "10.0.0.1"), Some((HostState::Failed, 400, Some(NEW_FP.into()))));

    // A host no longer listed (gone, or its shard is not held any more) is forgotten.
    r.after_round(&hosts[..1], &[], &Record::default(), D, ("22", NEW_FP), 500);
    assert_eq!(r.hosts().count(), 1);
    // A host never contacted and not vouched for is not reported at all.
    r.after_round(
        &[host("10.0.0.9")],
        &[outcome("10.0.0.9", HostStatus::NotStarted)],
        &Record::default(),
        D,
        ("22", FP),
        600,
    );
    assert_eq!(r.hosts().count(), 0);
}

fn report(hosts: Vec<HostReport>) -> ShardReport {
    ShardReport {
        shard: 1,
        shards: 4,
        input: "valid".into(),
        fingerprint: Some(FP.into()),
        updated: 7,
        hosts,
        current_not_listed: 0,
    }
}

fn entry(i: usize, state: HostState, fp: &str) -> HostReport {
    HostReport {
        host: format!("Administrator@10.1.{}.{}", i / 250, i % 250),
        address: format!("10.1.{}.{}", i / 250, i % 250),
        node: i.is_multiple_of(2).then(|| format!("win-{i}")),
        state,
        reason: if state == HostState::Current { String::new() } else { "after 1 attempt(s): timed out".into() },
        since: 5,
        fingerprint: Some(fp.into()),
    }
}

#[test]
fn the_json_round_trips_and_names_the_report_fingerprint_once() {
    let r = report(vec![entry(0, HostState::Current, FP), entry(1, HostState::Failed, NEW_FP)]);
    let json = r.to_json();
    assert_eq!(json.matches(FP).count(), 1, "{json}");
    assert_eq!(json.matches(NEW_FP).count(), 1, "{json}");
    let (back, dropped) = ShardReport::parse(&json).unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(back, r);
}

#[test]
fn a_fleet_too_large_for_a_config_map_lists_the_hosts_that_are_not_current() {
    let mut hosts: Vec<HostReport> = (0..12_000).map(|i| entry(i, HostState::Current, FP)).collect();
    hosts.extend((12_000..12_010).map(|i| entry(i, HostState::Failed, FP)));
    let json = report(hosts).to_json();
    assert!(json.len() <= MAX_REPORT_BYTES, "{}", json.len());
    let (back, _) = ShardReport::parse(&json).unwrap();
    assert_eq!(back.current_not_listed, 12_000);
    assert_eq!(back.hosts.len(), 10);
    assert!(back.hosts.iter().all(|h| h.state == HostState::Failed));

    // Even thousands of failing hosts with long reasons stay under the limit.
    let mut hosts: Vec<HostReport> = (0..8_000).map(|i| entry(i, HostState::Failed, FP)).collect();
    for h in &mut hosts {
        h.reason = "x".repeat(400);
    }
    let json = report(hosts).to_json();
    assert!(json.len() <= MAX_REPORT_BYTES, "{}", json.len());
    assert!(!ShardReport::parse(&json).unwrap().0.hosts.is_empty());
}

#[test]
fn what_is_read_back_is_checked_entry_by_entry() {
    let mut r = report(vec![entry(0, HostState::Current, FP), entry(1, HostState::Failed, FP)]);
    r.hosts[1].reason = "line one\n\x1b[2Jline two".into();
    let (back, dropped) = ShardReport::parse(&r.to_json()).unwrap();
    assert_eq!(back.hosts.len(), 1);
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0].starts_with("hosts[1].reason: \"line one\\n\\u{1b}[2Jline two\": "), "{dropped:?}");

    let mut v: serde_json::Value =
        serde_json::from_str(&report(vec![entry(0, HostState::Current, FP)]).to_json()).unwrap();
    v["hosts"][0]["state"] = "great".into();
    v["hosts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"host": "a@b", "address": "b c", "state": "current", "since": 1}));
    v["hosts"].as_array_mut().unwrap().push(
        serde_json::json!({"host": "a@b", "address": "b", "state": "current", "since": 1, "fingerprint": "md5:x"}),
    );
    let (back, dropped) = ShardReport::parse(&v.to_string()).unwrap();
    assert!(back.hosts.is_empty());
    assert!(dropped[0].starts_with("hosts[0] = ") && dropped[0].contains("unknown variant `great`"), "{dropped:?}");
    assert!(dropped[1].starts_with("hosts[1].address: \"b c\": not a host address"), "{dropped:?}");
    assert!(dropped[2].starts_with("hosts[2].fingerprint: \"md5:x\""), "{dropped:?}");

    for (field, value, why) in [
        ("shard", serde_json::json!(4), "shard = 4 of shards = 4: out of range"),
        ("input", serde_json::json!("maybe"), "input = \"maybe\": neither"),
        ("fingerprint", serde_json::json!("sha256:12"), "fingerprint = \"sha256:12\""),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&report(vec![]).to_json()).unwrap();
        v[field] = value;
        let e = ShardReport::parse(&v.to_string()).unwrap_err();
        assert!(e.starts_with(why), "{e}");
    }
    assert!(ShardReport::parse("[]").unwrap_err().starts_with("not a host report"));
}

/// Bidi overrides and zero-width characters are not control characters, yet reorder or hide what
/// a terminal shows: an entry holding one is dropped like one holding ESC.
#[test]
fn bidi_and_zero_width_characters_fail_the_printable_check() {
    for sneaky in ["win\u{202E}1-niw", "a\u{2066}b", "zero\u{200B}width", "\u{FEFF}bom", "mark\u{200F}"] {
        let mut v: serde_json::Value =
            serde_json::from_str(&report(vec![entry(0, HostState::Current, FP)]).to_json()).unwrap();
        v["hosts"][0]["host"] = sneaky.into();
        let (back, dropped) = ShardReport::parse(&v.to_string()).unwrap();
        assert!(back.hosts.is_empty(), "{sneaky:?} passed");
        assert!(dropped[0].starts_with("hosts[0].host: "), "{dropped:?}");
    }
}
