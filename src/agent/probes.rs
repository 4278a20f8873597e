//! `run --probe-interval`: the probes of `check`, on the files the agent keeps under its root,
//! again and again. Each endpoint is probed once per interval at a fixed offset inside it (derived
//! from its host, so probes of many endpoints spread over the interval and one endpoint's probes
//! are exactly an interval apart), within a timeout that ends before the next round. Results go to
//! `/metrics`; an endpoint that turns unusable or recovers is logged and reported (a Node Event in
//! `--kube` mode).

use super::metrics::{EndpointLabels, Metrics};
use crate::probe::files::NodeFiles;
use crate::probe::plan::{self, Auths, Plan, Probe};
use crate::probe::{self as probing, tls::Roots, Outcome};
use crate::render::Target;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The shortest interval `--probe-interval` takes: a probe may take up to half of it.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// The longest a probe may take, however long the interval.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub root: PathBuf,
    pub targets: Vec<Target>,
    pub interval: Duration,
}

/// An endpoint that turned unusable (`up: false`, with why) or usable again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointChange {
    pub registry: String,
    pub endpoint: String,
    pub up: bool,
    pub message: String,
}

/// The plan for the files under `root`, as `check --root` makes it for each target.
fn plan_root(settings: &ProbeSettings) -> Result<Plan, String> {
    let files = NodeFiles::Root(crate::sink::root::Root::new(&settings.root));
    let mut all = Plan::default();
    for target in &settings.targets {
        let auths = Auths::of_node(&files, *target)?;
        let p = plan::plan(&files, *target, None, &auths)?;
        all.rows.extend(p.rows);
    }
    Ok(all)
}

/// Where in the interval an endpoint is probed: the same offset every round.
fn offset(p: &Probe, window: Duration) -> Duration {
    let mut h = std::hash::DefaultHasher::new();
    (p.https, &p.host, p.port).hash(&mut h);
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(h.finish() % window_ms)
}

/// Probes until `shutdown`. `changes` hears of every endpoint that turns unusable or recovers.
pub async fn run(
    settings: ProbeSettings,
    metrics: Arc<Metrics>,
    changes: Option<mpsc::UnboundedSender<EndpointChange>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let interval = settings.interval.max(MIN_INTERVAL);
    let timeout = (interval / 2).min(MAX_TIMEOUT);
    let mut up: HashMap<EndpointLabels, bool> = HashMap::new();
    // The files are there once the first render has been applied; after an interval, start anyway
    // (a node keeps the last good files while the input is refused).
    let ready_by = Instant::now() + interval;
    while !metrics.is_ready() && Instant::now() < ready_by {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let mut round = Instant::now();
    loop {
        let s = settings.clone();
        let planned = tokio::task::spawn_blocking(move || plan_root(&s)).await;
        let plan = match planned {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) => {
                tracing::warn!("endpoint probes: cannot read the node's files: {e}");
                Plan::default()
            }
            Err(e) => {
                tracing::warn!("endpoint probes: reading the node's files failed: {e}");
                Plan::default()
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            () = probe_round(&plan, round, interval - timeout, timeout, &metrics, &mut up, changes.as_ref()) => {}
        }
        round += interval;
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep_until(round) => {}
        }
    }
}

/// One round: every distinct probe at its offset, each result recorded as it comes.
async fn probe_round(
    plan: &Plan,
    start: Instant,
    window: Duration,
    timeout: Duration,
    metrics: &Metrics,
    up: &mut HashMap<EndpointLabels, bool>,
    changes: Option<&mpsc::UnboundedSender<EndpointChange>>,
) {
    let roots = Roots::system();
    let mut rows_of: HashMap<&Probe, Vec<EndpointLabels>> = HashMap::new();
    for row in &plan.rows {
        let labels = EndpointLabels { registry: row.registry.clone(), endpoint: row.endpoint.clone() };
        rows_of.entry(&row.probe).or_default().push(labels);
    }
    // Endpoints no longer in the files leave the metrics.
    let current: HashSet<&EndpointLabels> = rows_of.values().flatten().collect();
    for gone in up.keys().filter(|l| !current.contains(l)).cloned().collect::<Vec<_>>() {
        metrics.endpoint_up.remove(&gone);
        metrics.endpoint_probe_seconds.remove(&gone);
        up.remove(&gone);
    }
    let mut running: futures::stream::FuturesUnordered<_> = rows_of
        .keys()
        .map(|p| {
            let at = start + offset(p, window);
            let roots = roots.clone();
            async move {
                tokio::time::sleep_until(at).await;
                (*p, probing::probe(p, &roots, timeout).await)
            }
        })
        .collect();
    use futures::StreamExt;
    while let Some((p, outcome)) = running.next().await {
        for labels in &rows_of[p] {
            record(labels, &outcome, metrics, up, changes);
        }
    }
}

fn record(
    labels: &EndpointLabels,
    outcome: &Outcome,
    metrics: &Metrics,
    up: &mut HashMap<EndpointLabels, bool>,
    changes: Option<&mpsc::UnboundedSender<EndpointChange>>,
) {
    metrics.endpoint_up.get_or_create(labels).set(i64::from(outcome.ok));
    metrics.endpoint_probe_seconds.get_or_create(labels).set(outcome.ms as f64 / 1000.0);
    let before = up.insert(labels.clone(), outcome.ok);
    // Said when it turns unusable (the first probe included) and when it recovers.
    if before == Some(outcome.ok) || (before.is_none() && outcome.ok) {
        return;
    }
    let (registry, endpoint) = (&labels.registry, &labels.endpoint);
    let message = match &outcome.error {
        Some(e) => format!("{endpoint} (for {registry}) is not usable: {} failed: {e}", outcome.stage),
        None => format!("{endpoint} (for {registry}) is usable again"),
    };
    if outcome.ok {
        tracing::info!("{message}");
    } else {
        tracing::warn!("{message}");
    }
    if let Some(tx) = changes {
        let _ =
            tx.send(EndpointChange { registry: registry.clone(), endpoint: endpoint.clone(), up: outcome.ok, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(host: &str) -> Probe {
        Probe {
            https: true,
            host: host.into(),
            port: 5000,
            skip_verify: false,
            http_fallback: false,
            cas: vec![],
            credentials: None,
            credentials_from: String::new(),
            manifest: None,
        }
    }

    #[test]
    fn offsets_are_stable_and_inside_the_window() {
        let w = Duration::from_secs(25);
        for host in ["a.local", "b.local", "127.0.0.1"] {
            assert_eq!(offset(&probe(host), w), offset(&probe(host), w));
            assert!(offset(&probe(host), w) < w);
        }
        assert_eq!(offset(&probe("a"), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_change_is_said_once_when_it_turns_and_when_it_recovers() {
        let metrics = Metrics::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut up = HashMap::new();
        let labels = EndpointLabels { registry: "quay.io/a".into(), endpoint: "m.local/a".into() };
        let o = |ok: bool| Outcome {
            ok,
            stage: crate::probe::Stage::Connect,
            error: (!ok).then(|| "nothing listens".into()),
            ms: 5,
            address: None,
            notes: vec![],
            found: None,
            digest: None,
        };
        for ok in [true, true, false, false, true] {
            record(&labels, &o(ok), &metrics, &mut up, Some(&tx));
        }
        let seen: Vec<bool> = std::iter::from_fn(|| rx.try_recv().ok()).map(|c| c.up).collect();
        assert_eq!(seen, [false, true]);
        let text = metrics.encode();
        assert!(text.contains(r#"mirrorconf_endpoint_up{registry="quay.io/a",endpoint="m.local/a"} 1"#), "{text}");
        assert!(text.contains("mirrorconf_endpoint_probe_duration_seconds{"), "{text}");
    }
}
