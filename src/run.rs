//! `mirrorconf run`: wires a source, the agent loop, the HTTP endpoints and signal handling together.

use crate::agent::{self, metrics::Metrics, reload::Reload, Settings, Snapshot};
use crate::cli::RunArgs;
use crate::error::Error;
use crate::model::load_paths;
use crate::node::ADOPTED_BASE_PATH;
use crate::source;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Resolves when SIGTERM or SIGINT arrives.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

pub fn run(args: RunArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(args, termination()))
}

/// The whole agent; returns when `shutdown` resolves.
pub async fn run_async(
    args: RunArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    if let Some(addr) = args.listen {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Usage(format!("--listen {addr}: {e}")))?;
        tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
        tokio::spawn(agent::http::serve(listener, Arc::clone(&metrics), stopped()));
    }
    if args.windows_push.enabled {
        return windows_push(&args, metrics, stopped).await;
    }
    let root = args.root.clone().ok_or_else(|| Error::Usage("--root is required".into()))?;

    let mut targets = args.targets.clone();
    targets.sort();
    targets.dedup();
    let settings = Settings {
        root: root.clone(),
        base: args.base.clone(),
        targets,
        debounce: Duration::from_millis(args.debounce_ms),
        reload: Reload {
            crio: args.reload_crio,
            proc_root: args.proc_root.clone(),
            on_change: args
                .on_change
                .as_deref()
                .map(|c| c.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
        },
    };

    // One channel for every source; capacity 1 is enough, a pending trigger stands for any number.
    let (tx, rx) = mpsc::channel::<()>(1);
    let base_file = args.base.clone().unwrap_or_else(|| root.join(ADOPTED_BASE_PATH));

    if args.kube {
        let windows = args.targets.contains(&crate::render::Target::Windows);
        let cluster = source::kube::Cluster::start(tx.clone(), Arc::clone(&metrics), windows).await?;
        let _base_watch =
            source::files::watch(&[], &[base_file], tx.clone()).map_err(|e| Error::Usage(e.to_string()))?;
        let snapshot = cluster_snapshot(&cluster);
        cluster.wait_until_synced().await;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        tokio::spawn(cluster.clone().report_outcomes(out_rx));
        drop(tx);
        agent::run(settings, snapshot, rx, metrics, Some(out_tx), stopped()).await;
    } else {
        let (dirs, files): (Vec<_>, Vec<_>) = args.manifests.iter().cloned().partition(|p| p.is_dir());
        let mut files = files;
        files.push(base_file);
        let _watch = source::files::watch(&dirs, &files, tx.clone()).map_err(|e| Error::Usage(e.to_string()))?;
        let paths = args.manifests.clone();
        let snapshot: Snapshot = Arc::new(move || load_paths(&paths).map_err(Error::Load));
        drop(tx);
        agent::run(settings, snapshot, rx, metrics, None, stopped()).await;
    }
    Ok(())
}

fn cluster_snapshot(cluster: &source::kube::Cluster) -> Snapshot {
    let c = cluster.clone();
    Arc::new(move || Ok(c.snapshot()))
}

/// `run --kube --windows-push`: wait for the Lease, push while leading, step down when it is lost.
async fn windows_push<S, F>(args: &RunArgs, metrics: Arc<Metrics>, stopped: S) -> Result<(), Error>
where
    S: Fn() -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let options = Arc::new(args.ssh.options()?);
    let wp = &args.windows_push;
    let client =
        kube::Client::try_default().await.map_err(|e| Error::Usage(format!("cannot reach the Kubernetes API: {e}")))?;
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let cluster = source::kube::Cluster::with_client(client.clone(), tx.clone(), Arc::clone(&metrics), true);
    let hosts = source::windows_hosts::WindowsHosts::start(
        &client,
        &wp.inventory_namespace,
        &wp.windows_user,
        tx,
        Arc::clone(&metrics),
    );
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
    let election = source::lease::LeaderElection::new(client, &namespace, &wp.lease_name, &identity);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    tokio::spawn(cluster.clone().report_outcomes(out_rx));
    let pusher = agent::windows_push::Pusher {
        snapshot: cluster_snapshot(&cluster),
        hosts: hosts.clone(),
        options,
        metrics,
        debounce: Duration::from_millis(args.debounce_ms),
        resync: Duration::from_secs(wp.resync_interval),
        outcomes: Some(out_tx),
    };
    loop {
        if !election.acquire(stopped()).await {
            return Ok(());
        }
        cluster.wait_until_synced().await;
        hosts.wait_until_synced().await;
        // Push while leading. The keeper renews until the pusher has stopped (shutdown) or says the
        // Lease is lost; the Lease is released only once no round is running any more.
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let keeper = {
            let election = election.clone();
            tokio::spawn(async move {
                let kept = election
                    .keep(async move {
                        let _ = done_rx.await;
                    })
                    .await;
                if kept == source::lease::Kept::Lost {
                    let _ = lost_tx.send(());
                }
                kept
            })
        };
        let shutdown = stopped();
        pusher
            .run(&mut rx, async move {
                tokio::select! {
                    _ = lost_rx => {}
                    _ = shutdown => {}
                }
            })
            .await;
        let _ = done_tx.send(());
        match keeper.await.expect("the Lease keeper does not panic") {
            source::lease::Kept::Stopped => {
                election.release().await;
                return Ok(());
            }
            source::lease::Kept::Lost => tracing::warn!("lost the Lease; waiting to lead again"),
        }
    }
}
