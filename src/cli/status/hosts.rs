//! The Windows pusher's host reports in `status`: a row for each BYOH host that is no Node, and
//! for a Windows Node that is behind, why its push is failing. The reports are ConfigMaps anyone
//! with write access could edit, so each is parsed as untrusted input (push::report).

use crate::inspect::fleet::{Expected, NodeStatus, State};
use crate::push::report::{HostReport, HostState, ShardReport, DATA_KEY};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the reports add to the Node rows.
#[derive(Debug, Default)]
pub(super) struct HostRows {
    /// Hosts that are no Node.
    pub rows: Vec<NodeStatus>,
    /// Why a Windows Node's host is behind, by Node name.
    pub node_details: BTreeMap<String, String>,
    /// Reports or entries that were ignored, with why.
    pub warnings: Vec<String>,
}

/// Which pusher's reports count: its Lease name and shard count, and the reader's clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pusher<'a> {
    pub lease_name: &'a str,
    pub shards: usize,
    /// Unix seconds.
    pub now: u64,
}

pub(super) fn host_rows(config_maps: &[Arc<ConfigMap>], pusher: Pusher<'_>, expected: Option<&Expected>) -> HostRows {
    let mut out = HostRows::default();
    let mut reports = Vec::new();
    for cm in config_maps {
        let name = format!("ConfigMap/{}", cm.name_any());
        let Some(text) = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)) else {
            out.warnings.push(format!("{name}: no data[{DATA_KEY:?}]; ignored"));
            continue;
        };
        // Anyone who can label a ConfigMap could forge one: only the pusher's own, by name,
        // shard and time, are read, so a forged one cannot stand in for a real one.
        let parsed = ShardReport::parse(text).and_then(|(report, dropped)| {
            report.check_origin(&cm.name_any(), pusher.lease_name, pusher.shards, pusher.now)?;
            Ok((report, dropped))
        });
        match parsed {
            Ok((report, dropped)) => {
                out.warnings.extend(dropped.into_iter().map(|d| format!("{name}: data[{DATA_KEY:?}]: {d}")));
                reports.push(report);
            }
            Err(e) => out.warnings.push(format!("{name}: data[{DATA_KEY:?}]: {e}; ignored")),
        }
    }
    for report in &reports {
        for host in &report.hosts {
            let (state, detail) = classify(host, report.input == "valid", expected);
            match &host.node {
                Some(node) => {
                    if state != State::Current {
                        out.node_details.insert(node.clone(), detail);
                    }
                }
                None => out.rows.push(NodeStatus {
                    name: format!("host/{}", host.host),
                    state,
                    detail,
                    fingerprint: host.fingerprint.clone(),
                }),
            }
        }
    }
    out
}

fn classify(host: &HostReport, input_valid: bool, expected: Option<&Expected>) -> (State, String) {
    if !input_valid {
        return (
            State::Refused,
            "the Windows pusher refused the last input; the host keeps its last good files".into(),
        );
    }
    let Some(expected) = expected else {
        return (State::Pending, "the current objects are refused; no host can hold them".into());
    };
    let since = k8s_openapi::jiff::Timestamp::from_second(host.since as i64)
        .map_or_else(|_| host.since.to_string(), |t| t.to_string());
    match host.state {
        HostState::Current if host.fingerprint.as_deref() == Some(expected.with_pull_secret.as_str()) => {
            (State::Current, String::new())
        }
        HostState::Current => (State::Pending, "not pushed the current policy yet".into()),
        HostState::Failed => (State::Pending, format!("push failing since {since}: {}", host.reason)),
        HostState::Kept => (State::Pending, host.reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const FP: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const OLD: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn cm(name: &str, report: &ShardReport) -> Arc<ConfigMap> {
        Arc::new(ConfigMap {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            data: Some([(DATA_KEY.to_string(), report.to_json())].into()),
            ..Default::default()
        })
    }

    fn host(address: &str, node: Option<&str>, state: HostState, fp: &str) -> HostReport {
        HostReport {
            host: format!("Administrator@{address}"),
            address: address.into(),
            node: node.map(String::from),
            state,
            reason: if state == HostState::Failed { "after 3 attempt(s): timed out".into() } else { String::new() },
            since: 1_795_000_000,
            fingerprint: Some(fp.into()),
        }
    }

    fn report(shards: usize, updated: u64, input: &str, hosts: Vec<HostReport>) -> ShardReport {
        ShardReport {
            shard: 0,
            shards,
            input: input.into(),
            fingerprint: Some(FP.into()),
            updated,
            hosts,
            current_not_listed: 0,
        }
    }

    const LEASE: &str = "mirrorconf-windows-push";
    const NOW: u64 = 1_796_000_000;
    const PUSHER: Pusher<'static> = Pusher { lease_name: LEASE, shards: 1, now: NOW };
    const SHARD_0: &str = "mirrorconf-windows-push-hosts-0";

    #[test]
    fn byoh_hosts_get_rows_and_windows_nodes_get_the_reason_they_are_behind() {
        let e = Expected { without_pull_secret: "sha256:x".into(), with_pull_secret: FP.into() };
        let r = report(
            1,
            10,
            "valid",
            vec![
                host("10.0.0.1", None, HostState::Current, FP),
                host("10.0.0.2", None, HostState::Failed, OLD),
                host("10.0.0.3", Some("win-3"), HostState::Failed, OLD),
                host("10.0.0.4", Some("win-4"), HostState::Current, FP),
                host("10.0.0.5", None, HostState::Current, OLD),
            ],
        );
        let out = host_rows(&[cm(SHARD_0, &r)], PUSHER, Some(&e));
        let rows: Vec<(&str, State)> = out.rows.iter().map(|r| (r.name.as_str(), r.state)).collect();
        assert_eq!(
            rows,
            [
                ("host/Administrator@10.0.0.1", State::Current),
                ("host/Administrator@10.0.0.2", State::Pending),
                ("host/Administrator@10.0.0.5", State::Pending)
            ]
        );
        assert_eq!(out.rows[1].detail, "push failing since 2026-11-18T11:06:40Z: after 3 attempt(s): timed out");
        assert_eq!(out.node_details.keys().collect::<Vec<_>>(), ["win-3"]);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);

        let mut bad = (*cm(SHARD_0, &r)).clone();
        bad.data.as_mut().unwrap().insert(DATA_KEY.into(), "{".into());
        let out = host_rows(&[Arc::new(bad)], PUSHER, Some(&e));
        assert!(out.rows.is_empty());
        assert!(
            out.warnings[0]
                .starts_with("ConfigMap/mirrorconf-windows-push-hosts-0: data[\"hosts.json\"]: not a host report"),
            "{:?}",
            out.warnings
        );

        let refused = report(1, 10, "refused", vec![host("10.0.0.1", None, HostState::Current, FP)]);
        assert_eq!(host_rows(&[cm(SHARD_0, &refused)], PUSHER, Some(&e)).rows[0].state, State::Refused);
        assert_eq!(host_rows(&[cm(SHARD_0, &r)], PUSHER, None).rows[0].state, State::Pending);
    }

    /// The forgery: any ConfigMap with the label, an `updated` far in the future and no
    /// hosts made every real report look stale. A report counts only under its own name, for its
    /// own shard, with the pusher's shard count and a time not ahead of the clock.
    #[test]
    fn a_report_counts_only_under_its_name_shard_and_shard_count_and_not_from_the_future() {
        let e = Expected { without_pull_secret: "sha256:x".into(), with_pull_secret: FP.into() };
        let real = report(1, NOW - 30, "valid", vec![host("10.0.0.2", None, HostState::Failed, OLD)]);
        let pending = |cms: &[Arc<ConfigMap>], pusher| {
            let out = host_rows(cms, pusher, Some(&e));
            (out.rows.iter().filter(|r| r.state == State::Pending).count(), out.warnings)
        };
        assert_eq!(pending(&[cm(SHARD_0, &real)], PUSHER).0, 1);

        let forged = |shard, shards, updated| ShardReport { shard, shards, ..report(shards, updated, "valid", vec![]) };
        let cases = [
            ("forged", forged(0, 1, u64::MAX), "not named mirrorconf-windows-push-hosts-<shard>"),
            ("mirrorconf-windows-push-hosts-00", forged(0, 1, NOW), "not named"),
            ("other-pusher-hosts-0", forged(0, 1, NOW), "not named"),
            ("mirrorconf-windows-push-hosts-0x", forged(0, 1, NOW), "not named"),
            ("mirrorconf-windows-push-hosts-7", forged(7, 8, NOW), "shards = 8 where the pusher runs 1"),
            ("mirrorconf-windows-push-hosts-1", forged(0, 1, NOW), "shard = 0 in the report of shard 1"),
            ("mirrorconf-windows-push-hosts-1", forged(1, 2, NOW), "shards = 2 where the pusher runs 1"),
            (SHARD_0, forged(0, 1, u64::MAX), "updated = 18446744073709551615: more than 300 s ahead"),
            (SHARD_0, forged(0, 1, NOW + 301), "more than 300 s ahead"),
        ];
        for (name, report, why) in cases {
            let (n, warnings) = pending(&[cm(SHARD_0, &real), cm(name, &report)], PUSHER);
            if name == SHARD_0 {
                // The same name twice cannot happen in one namespace: read it alone.
                let (n, warnings) = pending(&[cm(name, &report)], PUSHER);
                assert_eq!(n, 0);
                assert!(warnings.iter().any(|w| w.contains(why)), "{name}: {warnings:?}");
                continue;
            }
            assert_eq!(n, 1, "{name}: {report:?} hid the real report");
            let expected = format!("ConfigMap/{name}: data[\"hosts.json\"]: ");
            assert!(warnings.iter().any(|w| w.starts_with(&expected) && w.contains(why)), "{name}: {warnings:?}");
        }
        // Within the allowed skew a report is read; a sharded pusher's reports with its count.
        assert_eq!(pending(&[cm(SHARD_0, &ShardReport { updated: NOW + 300, ..real.clone() })], PUSHER).0, 1);
        let sharded = Pusher { shards: 2, ..PUSHER };
        let shard_1 = ShardReport { shard: 1, shards: 2, ..real.clone() };
        assert_eq!(pending(&[cm("mirrorconf-windows-push-hosts-1", &shard_1)], sharded).0, 1);
        assert_eq!(pending(&[cm(SHARD_0, &real)], sharded).0, 0, "a report of one shard when the pusher runs 2");
    }
}
