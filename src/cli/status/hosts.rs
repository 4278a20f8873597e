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

pub(super) fn host_rows(config_maps: &[Arc<ConfigMap>], expected: Option<&Expected>) -> HostRows {
    let mut out = HostRows::default();
    let mut reports = Vec::new();
    for cm in config_maps {
        let name = format!("ConfigMap/{}", cm.name_any());
        let Some(text) = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)) else {
            out.warnings.push(format!("{name}: no data[{DATA_KEY:?}]; ignored"));
            continue;
        };
        match ShardReport::parse(text) {
            Ok((report, dropped)) => {
                out.warnings.extend(dropped.into_iter().map(|d| format!("{name}: data[{DATA_KEY:?}]: {d}")));
                reports.push(report);
            }
            Err(e) => out.warnings.push(format!("{name}: data[{DATA_KEY:?}]: {e}; ignored")),
        }
    }
    // Reports of a shard count no longer in use (the pusher was rescaled) are stale.
    let Some(newest) = reports.iter().max_by_key(|r| r.updated).map(|r| r.shards) else { return out };
    for report in reports.iter().filter(|r| r.shards == newest) {
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
        // A stale report of an earlier shard count is left out.
        let stale = report(4, 5, "valid", vec![host("10.9.9.9", None, HostState::Failed, OLD)]);
        let mut bad = (*cm("mirrorconf-windows-push-hosts-9", &r)).clone();
        bad.data.as_mut().unwrap().insert(DATA_KEY.into(), "{".into());
        let bad = Arc::new(bad);
        let out = host_rows(&[cm("a", &r), cm("b", &stale), bad], Some(&e));
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
        assert_eq!(out.warnings.len(), 1);
        assert!(
            out.warnings[0]
                .starts_with("ConfigMap/mirrorconf-windows-push-hosts-9: data[\"hosts.json\"]: not a host report"),
            "{:?}",
            out.warnings
        );

        let refused = report(1, 10, "refused", vec![host("10.0.0.1", None, HostState::Current, FP)]);
        assert_eq!(host_rows(&[cm("a", &refused)], Some(&e)).rows[0].state, State::Refused);
        assert_eq!(host_rows(&[cm("a", &r)], None).rows[0].state, State::Pending);
    }
}
