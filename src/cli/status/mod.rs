//! `mirrorconf status --kube`: where the current policy has landed, node by node, and `--wait` until
//! it has landed everywhere (what a pipeline runs after `kubectl apply` of an IDMS).
//!
//! It watches what the agents watch (the same reflectors) plus the Nodes, so `--wait` answers as
//! soon as the last node reports, without polling.

mod hosts;

use super::{OutputFormat, StatusArgs};
use crate::agent::metrics::Metrics;
use crate::error::Error;
use crate::inspect::fleet::{classify, Expected, State, Summary};
use crate::policy::Policy;
use crate::push::report::LABEL;
use crate::source::kube::{spawn_reflector, Cluster, Watching};
use crate::tasks::Tasks;
use crate::text::for_terminal;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::runtime::{reflector::Store, watcher};
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the first list of every kind may take before status gives up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// With --wait, a node's refusal ends the wait once it has lasted this long: right after a fix is
/// applied a node may still show the refusal of the broken version for a moment.
const REFUSAL_GRACE: Duration = Duration::from_secs(5);

pub(super) fn status(args: &StatusArgs) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(status_async(args))
}

async fn status_async(args: &StatusArgs) -> Result<ExitCode, Error> {
    let client = crate::source::kube::client().await?;
    let (tasks, _ended) = Tasks::new();
    let (triggers, mut changed) = mpsc::channel::<()>(1);
    let watching = Watching { tasks, triggers, metrics: Arc::new(Metrics::new()) };
    let cluster = Cluster::with_client(client.clone(), &watching, true);
    let mut config = watcher::Config::default();
    if let Some(selector) = &args.selector {
        config = config.labels(selector);
    }
    let nodes: Store<Node> = spawn_reflector(Api::all(client.clone()), config, &watching);
    let reports = host_reports(&client, &args.windows_namespace, &watching).await;
    drop(watching);
    let synced = async {
        cluster.wait_until_synced().await;
        let _ = nodes.wait_until_ready().await;
        if let Some(reports) = &reports {
            let _ = reports.wait_until_ready().await;
        }
    };
    if tokio::time::timeout(SYNC_TIMEOUT, synced).await.is_err() {
        return Err(Error::Runtime(format!(
            "could not list the mirror objects and the Nodes within {SYNC_TIMEOUT:?} (the watch errors above say why; status needs list and watch on them and get on the pull secret)"
        )));
    }
    let deadline = Instant::now() + args.timeout;
    let mut refused_since: HashMap<String, Instant> = HashMap::new();
    let mut last_counts = None;
    let mut warned = HashSet::new();
    loop {
        let pusher = hosts::Pusher {
            lease_name: &args.windows_lease,
            shards: usize::from(args.windows_shards),
            now: crate::push::record::unix_now(),
        };
        let (summary, invalid, warnings) =
            evaluate(&cluster, &nodes, reports.as_ref(), pusher, args.selector.is_none());
        for w in warnings {
            if warned.insert(w.clone()) {
                say(&format!("warning: {w}"));
            }
        }
        let now = Instant::now();
        refused_since.retain(|name, _| summary.refused().contains(&name.as_str()));
        for name in summary.refused() {
            refused_since.entry(name.to_string()).or_insert(now);
        }
        let lasting_refusal = refused_since.values().any(|t| now.duration_since(*t) >= REFUSAL_GRACE);
        let done = !args.wait || summary.all_current || invalid.is_some() || lasting_refusal;
        if args.wait && !done && last_counts.as_ref() != Some(&summary.counts) {
            say(&format!("waiting: {}", counts_line(&summary)));
            last_counts = Some(summary.counts.clone());
        }
        if done || now >= deadline {
            if let Some(errors) = &invalid {
                say(&format!("the current objects are refused, so no node can hold them:\n{errors}"));
            }
            if args.wait && now >= deadline && !summary.all_current {
                say(&format!("timed out after {:?}: {}", args.timeout, counts_line(&summary)));
            }
            print(&summary, args);
            if !summary.refused().is_empty() {
                say(&format!("refused on: {}", summary.refused().join(", ")));
            }
            return Ok(if summary.all_current { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        // Wake on any change, and in time for the deadline and the refusal grace.
        let wake = refused_since.values().map(|t| *t + REFUSAL_GRACE).fold(deadline, Instant::min);
        tokio::select! {
            _ = changed.recv() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// The Windows pusher's host reports in `namespace`, watched; `None` when not asked for or not
/// readable (said once: the Nodes are still listed).
async fn host_reports(client: &kube::Client, namespace: &str, watching: &Watching) -> Option<Store<ConfigMap>> {
    if namespace.is_empty() {
        return None;
    }
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{LABEL}=true");
    let params = kube::api::ListParams::default().labels(&selector).limit(1);
    match tokio::time::timeout(SYNC_TIMEOUT, api.list(&params)).await {
        Ok(Ok(_)) => Some(spawn_reflector(api, watcher::Config::default().labels(&selector), watching)),
        Ok(Err(e)) => {
            say(&format!("warning: cannot read the Windows host reports in namespace {namespace:?} ({e}); hosts that are no Nodes are not listed"));
            None
        }
        Err(_) => {
            say(&format!("warning: no answer listing the Windows host reports in namespace {namespace:?}; hosts that are no Nodes are not listed"));
            None
        }
    }
}

/// The summary of every selected node (and, without a selector, every Windows host that is no
/// Node) against the current objects; the objects' own validation errors when they do not
/// validate; and what was ignored in the host reports.
fn evaluate(
    cluster: &Cluster,
    nodes: &Store<Node>,
    reports: Option<&Store<ConfigMap>>,
    pusher: hosts::Pusher<'_>,
    all_hosts: bool,
) -> (Summary, Option<String>, Vec<String>) {
    let (expected, invalid) = match Policy::from_inputs(&cluster.snapshot()) {
        Ok(policy) => (Some(Expected::of(&policy)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let host_rows = reports.map(|r| hosts::host_rows(&r.state(), pusher, expected.as_ref())).unwrap_or_default();
    let mut statuses: Vec<_> = nodes
        .state()
        .iter()
        .map(|node| {
            let annotations: BTreeMap<String, String> = node.annotations().clone();
            let mut status = classify(&node.name_any(), &annotations, expected.as_ref());
            if let Some(why) = host_rows.node_details.get(&status.name).filter(|_| status.state != State::Current) {
                status.detail = format!("{}; {why}", status.detail);
            }
            status
        })
        .collect();
    // A label selector selects Nodes: hosts that are no Node are listed only without one.
    if all_hosts {
        statuses.extend(host_rows.rows);
    }
    (Summary::new(expected.as_ref(), statuses), invalid, host_rows.warnings)
}

fn counts_line(summary: &Summary) -> String {
    [State::Current, State::Pending, State::Refused, State::NotReporting]
        .map(|s| format!("{} {}", summary.counts.get(s.label()).copied().unwrap_or(0), s.label()))
        .join(", ")
}

/// Node annotations, report fields and the error text that quotes them come from the cluster:
/// everything status writes goes through one sanitiser, so none of it can steer the terminal
/// (clear it, retitle it, or overwrite the counts line with a forged one).
fn print(summary: &Summary, args: &StatusArgs) {
    let text = match args.output {
        OutputFormat::Text => summary.text(args.all),
        OutputFormat::Json => serde_json::to_string_pretty(summary).expect("a summary always serialises") + "\n",
    };
    print!("{}", for_terminal(&text, true));
}

/// One message on stderr, through the same sanitiser as the output.
fn say(message: &str) {
    eprintln!("{}", for_terminal(message, true));
}

/// `90`, `90s`, `5m`, `1h`.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 5m, 1h)"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?} is not a duration (e.g. 90s, 5m, 1h)")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(duration("5 m").is_err() && duration("m").is_err() && duration("-1s").is_err());
    }
}
