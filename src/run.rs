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
pub async fn run_async(args: RunArgs, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let mut targets = args.targets.clone();
    targets.sort();
    targets.dedup();
    let settings = Settings {
        root: args.root.clone(),
        base: args.base.clone(),
        targets,
        debounce: Duration::from_millis(args.debounce_ms),
        reload: Reload {
            crio: args.reload_crio,
            proc_root: args.proc_root.clone(),
            on_change: args.on_change.as_deref().map(|c| c.split_whitespace().map(String::from).collect()).unwrap_or_default(),
        },
    };
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
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Usage(format!("--listen {addr}: {e}")))?;
        tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
        tokio::spawn(agent::http::serve(listener, Arc::clone(&metrics), stopped()));
    }

    // One channel for every source; capacity 1 is enough, a pending trigger stands for any number.
    let (tx, rx) = mpsc::channel::<()>(1);
    let base_file = args.base.clone().unwrap_or_else(|| args.root.join(ADOPTED_BASE_PATH));

    if args.kube {
        let windows = args.targets.contains(&crate::render::Target::Windows);
        let cluster = source::kube::Cluster::start(tx.clone(), Arc::clone(&metrics), windows).await?;
        let _base_watch = source::files::watch(&[], &[base_file], tx.clone()).map_err(|e| Error::Usage(e.to_string()))?;
        let snapshot: Snapshot = {
            let c = cluster.clone();
            Arc::new(move || Ok(c.snapshot()))
        };
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
