//! The in-cluster pusher behind `run --kube --windows-push`: while this replica holds the Lease,
//! every settled burst of changes (mirror policy, CAs, pull secret, the `windows-instances`
//! ConfigMap, Windows Nodes) renders the Windows tree and pushes it to every host, a bounded
//! number at once. A round is skipped when neither the tree nor the host list changed since a round in
//! which every host was current; a resync (and a round after failures) comes at least every
//! `resync` anyway.

use super::metrics::Metrics;
use super::{files_hash, Outcome, Snapshot};
use crate::error::Error;
use crate::node;
use crate::policy::Policy;
use crate::push::{self, HostStatus, PushOptions};
use crate::render::Target;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Reads the current host list (the cluster source's `WindowsHosts`).
pub type Hosts = Arc<dyn Fn() -> (Vec<push::Host>, Vec<push::inventory::EntryError>) + Send + Sync>;

pub struct Pusher {
    pub snapshot: Snapshot,
    /// The hosts to push to now, and the inventory entries that had to be skipped.
    pub hosts: Hosts,
    pub options: Arc<PushOptions>,
    pub metrics: Arc<Metrics>,
    pub debounce: Duration,
    pub resync: Duration,
    pub outcomes: Option<mpsc::UnboundedSender<Outcome>>,
}

impl Pusher {
    /// Runs rounds until `stop` resolves or the triggers end. A round starts no new host once
    /// `leading` is false.
    pub async fn run(
        &self,
        triggers: &mut mpsc::Receiver<()>,
        leading: Arc<AtomicBool>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        // (tree hash, hosts) of the last round in which every host was current or updated.
        let mut last_good: Option<(String, Vec<push::Host>)> = None;
        let mut force = true;
        loop {
            last_good = self.round(last_good, force, &leading).await;
            force = false;
            let resync = tokio::time::sleep(self.resync);
            tokio::select! {
                _ = &mut stop => return,
                _ = resync => force = true,
                t = triggers.recv() => {
                    if t.is_none() {
                        return;
                    }
                    super::settle(triggers, self.debounce).await;
                }
            }
        }
    }

    async fn round(
        &self,
        last_good: Option<(String, Vec<push::Host>)>,
        force: bool,
        leading: &Arc<AtomicBool>,
    ) -> Option<(String, Vec<push::Host>)> {
        let snap = Arc::clone(&self.snapshot);
        let rendered = tokio::task::spawn_blocking(move || -> Result<crate::fileset::FileSet, Error> {
            let inputs = snap()?;
            let policy = Policy::from_inputs(&inputs)?;
            for w in &policy.warnings {
                tracing::warn!("{w}");
            }
            Ok(push::windows_tree(&node::render_files(&inputs, &policy, None, &[Target::Windows])?))
        })
        .await
        .expect("the render task does not panic");
        self.metrics.renders.inc();
        let tree = match rendered {
            Ok(tree) => tree,
            Err(e) => {
                let outcome = super::refused(&e, &self.metrics);
                if let Some(tx) = &self.outcomes {
                    let _ = tx.send(outcome);
                }
                return last_good;
            }
        };
        self.metrics.input_valid.set(1);
        let (hosts, skipped) = (self.hosts)();
        for e in &skipped {
            tracing::error!("inventory: {e}; this entry is skipped");
        }
        let key = (files_hash(&tree), hosts.clone());
        if !force && last_good.as_ref() == Some(&key) {
            tracing::debug!("Windows tree and hosts unchanged; no round");
            return last_good;
        }
        let opts = Arc::clone(&self.options);
        let leading = Arc::clone(leading);
        tracing::debug!(hosts = hosts.len(), "Windows push round starts");
        let outcomes = tokio::task::spawn_blocking(move || {
            // One gate for the round: closed the moment the Lease is found lost.
            let gate = push::Gate::new();
            let admit = |_: &push::Host| {
                if !leading.load(Ordering::SeqCst) {
                    gate.close();
                }
                gate.enter()
            };
            let jobs: Vec<push::Job> = hosts.iter().map(|h| push::Job { host: h.clone(), verify: false }).collect();
            push::push_all(
                &jobs,
                &tree,
                &opts,
                &admit,
                &|o| tracing::info!(host = %o.host, ok = o.ok(), "{}", o.line()),
            )
        })
        .await
        .expect("the push task does not panic");
        let not_started = outcomes.iter().filter(|o| o.status == HostStatus::NotStarted).count();
        if not_started > 0 {
            tracing::warn!(not_started, "round stopped: the Lease is lost or shutdown began; no new host started");
        }
        let failed = outcomes.iter().filter(|o| !o.ok()).count();
        let written: usize = outcomes
            .iter()
            .map(|o| match &o.status {
                HostStatus::Updated(r) => r.written.len(),
                _ => 0,
            })
            .sum();
        self.metrics.files_written.inc_by(written as u64);
        self.metrics.windows_hosts.set(outcomes.len() as i64);
        self.metrics.windows_hosts_failed.set(failed as i64);
        tracing::info!(hosts = outcomes.len(), failed, "Windows push round done");
        if failed == 0 {
            super::succeeded(&self.metrics);
            if let Some(tx) = &self.outcomes {
                let _ = tx.send(Outcome::Applied { policy_hash: key.0.clone(), changed: written > 0 });
            }
            Some(key)
        } else {
            // Failed hosts are tried again at the next change or resync.
            None
        }
    }
}
