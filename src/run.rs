//! `mirrorconf run`: wires a source, the agent loop, the HTTP endpoints and signal handling together.
//!
//! Every long-lived task is spawned through [`Tasks`] and joined here: the agent (or the pusher)
//! runs until shutdown, and a task that dies before that ends the process with exit code 1.

use crate::agent::{self, metrics::Metrics, reload::Reload, Settings, Snapshot};
use crate::error::Error;
use crate::model::load_paths;
use crate::node::ADOPTED_BASE_PATH;
use crate::render::Target;
use crate::source::{self, kube::Watching};
use crate::tasks::{Ended, Tasks};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What `mirrorconf run` does, as the command line decided it.
pub struct Config {
    /// Manifest files and folders to watch; empty with `kube`.
    pub manifests: Vec<PathBuf>,
    /// Watch the cluster through the Kubernetes API instead.
    pub kube: bool,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`.
    pub listen: Option<SocketAddr>,
    /// Quiet time after the last change before rendering.
    pub debounce: Duration,
    /// With `kube`: the taint removed from this node's Node after the first complete apply.
    pub pending_taint: Option<String>,
    pub job: Job,
    /// Probe every endpoint the node's files name this often (`--probe-interval`).
    pub probe_interval: Option<Duration>,
}

pub enum Job {
    /// Keep this node's files true.
    Node { root: PathBuf, base: Option<PathBuf>, targets: Vec<Target>, reload: Reload },
    /// Keep the Windows hosts current over SSH while holding the Lease.
    WindowsPush(WindowsPush),
}

pub struct WindowsPush {
    pub options: crate::push::PushOptions,
    /// Namespace of the `windows-instances` ConfigMap.
    pub inventory_namespace: String,
    /// User for Windows Nodes that are not in the ConfigMap.
    pub windows_user: String,
    /// A round at least this often, even without a change.
    pub resync: Duration,
    /// Default: $POD_NAMESPACE, else `mirrorconf`.
    pub lease_namespace: Option<String>,
    pub lease_name: String,
    /// Hosts are split into this many shards, one Lease each (1: one Lease, one pushing replica).
    pub shards: usize,
    pub lease_duration: Duration,
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

pub fn run(config: Config) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(config, termination()))
}

/// The shutdown signal, for every task that needs it.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    fn requested(&self) -> bool {
        *self.0.borrow()
    }

    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// The whole agent; returns when `shutdown` resolves, or with an error when a supervised task dies.
pub async fn run_async(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop(stop_rx);
    let (tasks, ended) = Tasks::new();
    let forward = stop_tx.clone();
    // Not supervised: it ends, by design, at shutdown.
    tokio::spawn(async move {
        shutdown.await;
        let _ = forward.send(true);
    });
    supervise(body(config, tasks, stop.clone()), ended, stop, stop_tx).await
}

/// Runs `body` until it returns; a supervised task that ends before shutdown stops everything and
/// is the error returned.
async fn supervise(
    body: impl Future<Output = Result<(), Error>>,
    mut ended: mpsc::UnboundedReceiver<Ended>,
    stop: Stop,
    stop_tx: watch::Sender<bool>,
) -> Result<(), Error> {
    tokio::pin!(body);
    loop {
        tokio::select! {
            result = &mut body => return result,
            Some(e) = ended.recv() => {
                if stop.requested() {
                    continue; // Tasks end at shutdown; that is no failure.
                }
                tracing::error!("{e}; stopping so that the process is restarted");
                let _ = stop_tx.send(true);
                return Err(Error::Runtime(e.to_string()));
            }
        }
    }
}

async fn body(config: Config, tasks: Tasks, stop: Stop) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = config.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Runtime(format!("cannot serve on --listen {addr}: {e}")))?;
        tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
        let (m, s) = (Arc::clone(&metrics), stop.wait());
        tasks.spawn("http server", async move {
            if let Err(e) = agent::http::serve(listener, m, s).await {
                tracing::error!("the HTTP server failed: {e}");
            }
        });
    }
    // One channel for every source; capacity 1 is enough, a pending trigger stands for any number.
    let (tx, rx) = mpsc::channel::<()>(1);
    let watching = Watching { tasks: tasks.clone(), triggers: tx, metrics: Arc::clone(&metrics) };
    let (root, base, targets, reload) = match config.job {
        Job::WindowsPush(wp) => {
            return windows_push(wp, config.debounce, config.pending_taint, watching, rx, stop).await
        }
        Job::Node { root, base, targets, reload } => (root, base, targets, reload),
    };
    let settings = Settings {
        root: root.clone(),
        base: base.clone(),
        targets: targets.clone(),
        debounce: config.debounce,
        reload,
    };
    // The probes read what the agent writes under the root; Events need the cluster.
    let mut probe_changes = None;
    if let Some(interval) = config.probe_interval {
        let probes = agent::probes::ProbeSettings { root: root.clone(), targets: targets.clone(), interval };
        let (tx, rx) = mpsc::unbounded_channel();
        let changes = config.kube.then(|| {
            probe_changes = Some(rx);
            tx
        });
        tasks.spawn("endpoint probes", agent::probes::run(probes, Arc::clone(&metrics), changes, stop.wait()));
    }
    let base_file = base.unwrap_or_else(|| root.join(ADOPTED_BASE_PATH));
    let watch_error = |e: source::files::WatchError| Error::Runtime(format!("cannot watch the input files: {e}"));

    if config.kube {
        // The hosts.toml targets turn the pull secret into headers.
        let pull_secret = targets.iter().any(|t| t.renders_pull_secret());
        let cluster = source::kube::Cluster::start(&watching, pull_secret).await?;
        let _base_watch = source::files::watch(&[], &[base_file], watching.triggers.clone()).map_err(watch_error)?;
        let snapshot = cluster_snapshot(&cluster);
        cluster.wait_until_synced().await;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let reporting = source::node::NodeReporting { targets: targets.clone(), pending_taint: config.pending_taint };
        tasks.spawn("cluster reporter", cluster.clone().report_outcomes(out_rx, Some(reporting)));
        if let Some(changes) = probe_changes {
            tasks.spawn("endpoint events", cluster.clone().report_endpoint_changes(changes, stop.wait()));
        }
        drop(watching);
        agent::run(settings, snapshot, rx, metrics, Some(out_tx), stop.wait()).await;
    } else {
        let (dirs, files): (Vec<_>, Vec<_>) = config.manifests.iter().cloned().partition(|p| p.is_dir());
        let mut files = files;
        files.push(base_file);
        let _watch = source::files::watch(&dirs, &files, watching.triggers.clone()).map_err(watch_error)?;
        let paths = config.manifests.clone();
        let snapshot: Snapshot = Arc::new(move || load_paths(&paths).map_err(Error::Load));
        drop(watching);
        agent::run(settings, snapshot, rx, metrics, None, stop.wait()).await;
    }
    Ok(())
}

fn cluster_snapshot(cluster: &source::kube::Cluster) -> Snapshot {
    let c = cluster.clone();
    Arc::new(move || Ok(c.snapshot()))
}

/// `run --kube --windows-push`: hold shard Leases and push to the hosts of the shards held. Once a
/// shard is lost (or shutdown begins) no new host of it starts: a host being written finishes its
/// atomic replace. At shutdown every Lease is released once no host is being written any more.
async fn windows_push(
    wp: WindowsPush,
    debounce: Duration,
    pending_taint: Option<String>,
    watching: Watching,
    mut rx: mpsc::Receiver<()>,
    stop: Stop,
) -> Result<(), Error> {
    let options = Arc::new(wp.options);
    let client = source::kube::client().await?;
    let cluster = source::kube::Cluster::with_client(client.clone(), &watching, true);
    let hosts =
        source::windows_hosts::WindowsHosts::start(&client, &wp.inventory_namespace, &wp.windows_user, &watching);
    let namespace = wp
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "mirrorconf".into());
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| format!("mirrorconf-{}", std::process::id()));
    let timing = source::lease::Timing::from_duration(wp.lease_duration);
    let leases = source::lease::Leases::new(client.clone(), &namespace, &identity, timing);
    let keeper = source::shards::ShardKeeper::new(leases, &wp.lease_name, wp.shards);
    let (held_tx, held_rx) = watch::channel(crate::push::shard::Held::none(wp.shards));
    // Not supervised: it ends, by design, once the pusher has stopped, and is joined below.
    let (pusher_done, done) = tokio::sync::oneshot::channel::<()>();
    let stopping = stop.wait();
    let keeper = tokio::spawn(keeper.run(held_tx, async move {
        tokio::select! {
            _ = stopping => {}
            _ = done => {}
        }
    }));
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    watching.tasks.spawn("cluster reporter", cluster.clone().report_outcomes(out_rx, None));
    let (reports_tx, reports_rx) = watch::channel(None);
    let reporter = source::windows_report::WindowsReporter {
        client,
        hosts: hosts.clone(),
        namespace,
        lease_name: wp.lease_name.clone(),
        pending_taint,
    };
    watching.tasks.spawn("Windows host reporter", reporter.run(reports_rx));
    let pusher = agent::windows_push::Pusher {
        snapshot: cluster_snapshot(&cluster),
        hosts: {
            let hosts = hosts.clone();
            Arc::new(move || hosts.hosts())
        },
        options,
        metrics: Arc::clone(&watching.metrics),
        debounce,
        resync: wp.resync,
        outcomes: Some(out_tx),
        reports: Some(reports_tx),
    };
    drop(watching);
    tokio::select! {
        _ = async {
            cluster.wait_until_synced().await;
            hosts.wait_until_synced().await;
        } => {}
        _ = stop.wait() => {}
    }
    if !stop.requested() {
        pusher.run(&mut rx, held_rx, stop.wait()).await;
    }
    drop(pusher_done);
    keeper.await.map_err(|e| Error::Runtime(format!("the Lease keeper failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_dies_before_shutdown_ends_the_run_with_an_error() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tasks, ended) = Tasks::new();
        tasks.spawn("cluster reporter", async { panic!("boom") });
        let body = std::future::pending::<Result<(), Error>>();
        let result = tokio::time::timeout(Duration::from_secs(10), supervise(body, ended, Stop(stop_rx), stop_tx))
            .await
            .expect("the supervisor noticed");
        let e = result.unwrap_err();
        assert!(!e.is_invalid_input(), "a dead task is no input error (exit 1)");
        assert!(e.to_string().contains("\"cluster reporter\" panicked: boom"), "{e}");
    }

    #[tokio::test]
    async fn tasks_ending_at_shutdown_are_no_failure() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tasks, ended) = Tasks::new();
        let stop = Stop(stop_rx);
        let s = stop.wait();
        tasks.spawn("http server", s);
        let body = {
            let s = stop.wait();
            async move {
                s.await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(())
            }
        };
        let _ = stop_tx.send(true);
        let (tx2, _rx2) = watch::channel(true);
        supervise(body, ended, stop, tx2).await.unwrap();
    }
}
