//! The node agent behind `mirrorconf run`: a source says "something changed", the agent waits for the
//! burst to settle, renders the whole current state, applies it (only changed bytes, atomically,
//! removing only what it owns), runs the reload action, and records what happened. Invalid input
//! keeps the last good files; the next valid state recovers by itself.
//!
//! Shutdown is passed in as a future so that tests (and SIGTERM in `main`) control it.

pub mod http;
pub mod metrics;
pub mod probes;
pub mod reload;
mod systemd;
pub mod windows_push;

use crate::error::Error;
use crate::model::Inputs;
use crate::node::{self, Rendered};
use crate::render::{registries_conf, Target};
use metrics::Metrics;
use reload::Reload;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub base: Option<PathBuf>,
    pub targets: Vec<Target>,
    /// Quiet time after the last change before rendering: a burst of events gives one render.
    pub debounce: Duration,
    pub reload: Reload,
}

/// Reads the current state of the source (the folder, or the cluster's caches).
pub type Snapshot = Arc<dyn Fn() -> Result<Inputs, Error> + Send + Sync>;

/// What one render did, for whoever reports it (the cluster source: Events, node annotation).
#[derive(Debug, Clone)]
pub enum Outcome {
    Applied {
        /// SHA-256 over every path and its bytes: equal on nodes that hold the same files (which
        /// differ per node, each with its own base files).
        files_digest: String,
        /// The policy fingerprint the files were rendered from (policy::fingerprint): equal on
        /// every node given the same objects. `None` where there is no single node (the pusher).
        fingerprint: Option<String>,
        changed: bool,
        /// The files are in place and the runtime was told (the reload succeeded or none was due).
        complete: bool,
    },
    Refused {
        /// One line per problem, each naming its object.
        errors: Vec<String>,
        /// `Kind/name` of every object the problems point at.
        objects: Vec<String>,
    },
}

fn objects_of(e: &Error) -> Vec<String> {
    match e {
        Error::Invalid(v) => {
            let mut objects: Vec<String> = v.0.iter().map(|e| e.object.clone()).collect();
            objects.dedup();
            objects
        }
        _ => Vec::new(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Renders and applies once, recording metrics. Never panics on bad input. `reload_owed`: a
/// previous reload failed, so reload even if no file changes now.
pub async fn render_once(settings: &Settings, snapshot: &Snapshot, metrics: &Metrics, reload_owed: bool) -> Outcome {
    let outcome = render_and_reload(settings, snapshot, metrics, reload_owed).await;
    // Counted when done, files and reload included, so a watcher of the counter sees the result.
    metrics.renders.inc();
    outcome
}

async fn render_and_reload(settings: &Settings, snapshot: &Snapshot, metrics: &Metrics, reload_owed: bool) -> Outcome {
    let (s, snap) = (settings.clone(), Arc::clone(snapshot));
    // File I/O and fsync are blocking; keep them off the async workers.
    let result = tokio::task::spawn_blocking(move || -> Result<Rendered, Error> {
        let inputs = snap()?;
        node::apply_inputs(&inputs, &s.root, s.base.as_deref(), &s.targets)
    })
    .await
    .expect("the render task does not panic");
    match result {
        Ok(rendered) => {
            let report = &rendered.report;
            metrics.files_written.inc_by(report.written.len() as u64);
            metrics.files_removed.inc_by(report.removed.len() as u64);
            for p in &report.kept_foreign {
                tracing::warn!(path = %p, "kept a file mirrorconf did not write");
            }
            for w in &rendered.policy.warnings {
                tracing::warn!("{w}");
            }
            let changed = report.changed();
            let mut complete = true;
            if (changed || reload_owed) && !settings.reload.is_empty() {
                let conf_paths =
                    [registries_conf::PATH, registries_conf::SEARCH_DROP_IN_PATH, crate::render::policy_json::PATH];
                let registries_changed = reload_owed
                    || report.written.iter().chain(&report.removed).any(|p| conf_paths.contains(&p.as_str()));
                metrics.reloads.inc();
                if let Err(e) = settings.reload.run(registries_changed).await {
                    metrics.reload_errors.inc();
                    tracing::error!("reload failed (retried in {RELOAD_RETRY:?}): {e}");
                    complete = false;
                }
            }
            // Behind until the runtime has been told: a failed reload keeps the node behind until
            // the retried reload succeeds; with nothing to reload, written files are current.
            metrics.node_behind.set(i64::from(!complete));
            // Ready once the runtime has been told too, whatever the reload's outcome: the files are there.
            metrics.input_valid.set(1);
            succeeded(metrics);
            tracing::info!(written = report.written.len(), removed = report.removed.len(), "rendered");
            let with_pull_secret = settings.targets.iter().any(|t| t.renders_pull_secret());
            let fingerprint = crate::policy::fingerprint::fingerprint(&rendered.policy, with_pull_secret);
            Outcome::Applied {
                files_digest: rendered.files.digest(),
                fingerprint: Some(fingerprint),
                changed,
                complete,
            }
        }
        Err(e) => {
            // Refused input leaves the last good files, as current as the node can be; any other
            // failure (a write, the state file) leaves it behind the input.
            if !e.is_invalid_input() {
                metrics.node_behind.set(1);
            }
            refused(&e, metrics)
        }
    }
}

/// Records a render that was refused or failed: the metrics, one log line per problem, and the
/// outcome to report (Events on the objects at fault). Whatever was applied before stays.
pub(crate) fn refused(e: &Error, metrics: &Metrics) -> Outcome {
    // The counter last: whoever waits on it sees the gauge already set.
    if e.is_invalid_input() {
        metrics.input_valid.set(0);
    }
    metrics.render_errors.inc();
    let errors: Vec<String> = e.to_string().lines().map(String::from).collect();
    for line in &errors {
        tracing::error!("{line}");
    }
    tracing::error!("input refused; the last good files stay in place");
    Outcome::Refused { objects: objects_of(e), errors }
}

/// Records that the current input is fully applied.
pub(crate) fn succeeded(metrics: &Metrics) {
    metrics.last_success.set(unix_now());
    metrics.set_ready();
}

/// How long after a failed reload it is tried again.
const RELOAD_RETRY: Duration = Duration::from_secs(10);

/// Debounce: returns once `triggers` has been quiet for `quiet` (or has ended), so that a burst of
/// changes gives one render (or one push round).
pub(crate) async fn settle(triggers: &mut mpsc::Receiver<()>, quiet: Duration) {
    while let Ok(Some(())) = tokio::time::timeout(quiet, triggers.recv()).await {}
}

/// Runs until `shutdown` completes or every trigger sender is gone: renders once at start, then once
/// per settled burst of triggers. Each outcome goes to `outcomes` when given.
pub async fn run(
    settings: Settings,
    snapshot: Snapshot,
    mut triggers: mpsc::Receiver<()>,
    metrics: Arc<Metrics>,
    outcomes: Option<mpsc::UnboundedSender<Outcome>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let report = |o: Outcome| {
        if let Some(tx) = &outcomes {
            let _ = tx.send(o);
        }
    };
    let mut systemd = systemd::Readiness::default();
    let render = |reload_owed: bool| {
        let (settings, snapshot, metrics) = (&settings, &snapshot, &metrics);
        async move { render_once(settings, snapshot, metrics, reload_owed).await }
    };
    let mut outcome = render(false).await;
    loop {
        // A failed reload is retried on a timer: with no further change nothing else would retry it,
        // and the node would stay "not complete" (tainted, not ready for systemd).
        let reload_owed = matches!(outcome, Outcome::Applied { complete: false, .. });
        systemd.after(&outcome);
        report(outcome);
        let retry = crate::tasks::sleep_until_some(reload_owed.then(|| tokio::time::Instant::now() + RELOAD_RETRY));
        tokio::select! {
            _ = &mut shutdown => break,
            _ = retry => outcome = render(true).await,
            t = triggers.recv() => {
                if t.is_none() {
                    break;
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = settle(&mut triggers, settings.debounce) => {}
                }
                outcome = render(reload_owed).await;
            }
        }
    }
    tracing::info!("agent stopped");
}
