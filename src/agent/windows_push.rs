//! The in-cluster pusher behind `run --kube --windows-push`: for the shards this replica holds,
//! every settled burst of changes (mirror policy, CAs, pull secret, the `windows-instances`
//! ConfigMap, Windows Nodes) renders the Windows tree and pushes it to the hosts that need it.
//!
//! The pusher remembers, per host, the tree it last confirmed there and when ([`Record`], in
//! memory): a round whose tree and hosts did not change contacts no host. Each host's files are
//! read again (verified) about every `--verify-interval`, spread over time by a stable per-host
//! offset; the pusher wakes for the next one due, taking with it the hosts due within a minute's
//! share of the interval. Hosts that failed are tried again at the next change or resync. What
//! it knew about a shard's hosts is forgotten when it stops holding the shard.
//!
//! After every round it publishes where each host stands ([`RoundReport`]) on a watch channel:
//! the cluster edge (`source::windows_report`) annotates Windows Nodes, removes their pending
//! taint and writes the per-shard host reports `mirrorconf status` reads.

use super::metrics::Metrics;
use super::{Outcome, Snapshot};
use crate::error::Error;
use crate::node;
use crate::policy::{fingerprint::fingerprint, Policy};
use crate::push::record::{unix_now, Dest, Record, Verify};
use crate::push::report::{HostReports, RoundReport};
use crate::push::shard::{shard_of, Held};
use crate::push::{self, HostStatus, PushOptions};
use crate::render::Target;
use crate::sink::ssh::Pins;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Reads the current host list (the cluster source's `WindowsHosts`).
pub type Hosts = Arc<dyn Fn() -> (Vec<push::Host>, Vec<push::inventory::EntryError>) + Send + Sync>;

pub struct Pusher {
    pub snapshot: Snapshot,
    /// The hosts to push to now, and the inventory entries that had to be skipped.
    pub hosts: Hosts,
    pub options: Arc<PushOptions>,
    pub metrics: Arc<Metrics>,
    pub debounce: Duration,
    /// The longest the pusher sleeps between rounds (failed hosts are retried then).
    pub resync: Duration,
    pub outcomes: Option<mpsc::UnboundedSender<Outcome>>,
    /// Where each host stands after every round (and after a refused input).
    pub reports: Option<watch::Sender<Option<RoundReport>>>,
}

/// What the pusher carries from one round to the next.
#[derive(Default)]
struct Memory {
    record: Record,
    /// The shard epochs the record was built under.
    epochs: Vec<Option<u64>>,
    reports: HostReports,
    /// The last policy rendered: its fingerprint and its Windows tree's digest.
    rendered: Option<(String, String)>,
}

impl Pusher {
    /// Runs rounds while `held` names shards, until `stop` resolves or the triggers end. A round
    /// starts no host of a shard that is no longer held.
    pub async fn run(
        &self,
        triggers: &mut mpsc::Receiver<()>,
        mut held: watch::Receiver<Held>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut memory = Memory::default();
        loop {
            let current = held.borrow_and_update().clone();
            self.metrics.windows_shards.set(current.count() as i64);
            let wake = if current.count() > 0 { self.round(&mut memory, current).await } else { self.resync };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wake) => {}
                changed = held.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                t = triggers.recv() => {
                    if t.is_none() {
                        return;
                    }
                    super::settle(triggers, self.debounce).await;
                }
            }
        }
    }

    /// One round; returns how long to sleep before the next one at the latest.
    async fn round(&self, memory: &mut Memory, held: Held) -> Duration {
        let snap = Arc::clone(&self.snapshot);
        let rendered = tokio::task::spawn_blocking(move || -> Result<(crate::fileset::FileSet, String), Error> {
            let inputs = snap()?;
            let policy = Policy::from_inputs(&inputs)?;
            for w in &policy.warnings {
                tracing::warn!("{w}");
            }
            let tree = push::windows_tree(&node::render_files(&inputs, &policy, None, &[Target::Windows])?);
            // Windows hosts carry the pull secret: their fingerprint is the one with it.
            Ok((tree, fingerprint(&policy, true)))
        })
        .await
        .expect("the render task does not panic");
        self.metrics.renders.inc();
        let (tree, policy_fingerprint) = match rendered {
            Ok(rendered) => rendered,
            Err(e) => {
                let outcome = super::refused(&e, &self.metrics);
                if let Some(tx) = &self.outcomes {
                    let _ = tx.send(outcome);
                }
                self.publish(memory, &held, false);
                return self.resync;
            }
        };
        self.metrics.input_valid.set(1);
        let (hosts, skipped) = (self.hosts)();
        for e in &skipped {
            tracing::error!("inventory: {e}; this entry is skipped");
        }
        let hosts: Vec<push::Host> = hosts.into_iter().filter(|h| held.of(&h.address).is_some()).collect();
        // Whatever was learned while a shard was held before (or by no one) is not trusted now.
        let epochs = held.epochs();
        let (shards, before) = (held.shards, std::mem::take(&mut memory.epochs));
        memory.record.retain(|k| {
            let s = shard_of(&k.address, shards);
            epochs.get(s).copied().flatten().is_some() && before.get(s) == epochs.get(s)
        });
        memory.epochs = epochs;

        let opts = Arc::clone(&self.options);
        let mut record = std::mem::take(&mut memory.record);
        let digest = tree.digest();
        let (resync, metrics, outcomes_tx) = (self.resync, Arc::clone(&self.metrics), self.outcomes.clone());
        let (round_hosts, round_digest, round_held) = (hosts.clone(), digest.clone(), held.clone());
        let (record, wake, outcomes) = tokio::task::spawn_blocking(move || {
            let dest = Dest { port: opts.port, root: &opts.remote_root };
            let now = unix_now();
            let pins = Pins::load(&opts.known_hosts);
            // Hosts due within a 60th of the interval are taken together: one wake-up, not one per host.
            let window = (opts.verify_interval / 60).max(Duration::from_secs(1));
            let verify = Verify { interval: opts.verify_interval, all: false, window };
            let plan = record.plan(&hosts, dest, &digest, &pins, now, verify);
            let until_due = |now: u64| {
                plan.next_due.map_or(resync, |t| {
                    Duration::from_secs(t.saturating_sub(now)).clamp(Duration::from_secs(1), resync)
                })
            };
            metrics.windows_hosts.set(hosts.len() as i64);
            if plan.jobs.is_empty() {
                tracing::debug!(hosts = hosts.len(), "every host is confirmed current; no host contacted");
                metrics.windows_hosts_failed.set(0);
                super::succeeded(&metrics);
                return (record, until_due(now), Vec::new());
            }
            record.claim(&plan.jobs, dest, &digest, &pins);
            let verifying = plan.jobs.iter().filter(|j| j.verify).count();
            tracing::info!(hosts = plan.jobs.len(), verifying, skipped = plan.skipped, "Windows push round starts");
            let admit = |h: &push::Host| held.of(&h.address)?.gate.enter();
            let outcomes = push::push_all(
                &plan.jobs,
                &tree,
                &opts,
                &admit,
                &|o| tracing::info!(host = %o.host, ok = o.ok(), "{}", o.line()),
            );
            record.update(&outcomes, dest, &digest, unix_now());
            let not_started = outcomes.iter().filter(|o| o.status == HostStatus::NotStarted).count();
            if not_started > 0 {
                tracing::warn!(not_started, "round stopped: a Lease is lost or shutdown began; no new host started");
            }
            let failed = outcomes.iter().filter(|o| !o.ok()).count();
            let written: usize = outcomes
                .iter()
                .map(|o| match &o.status {
                    HostStatus::Updated(r) => r.written.len(),
                    _ => 0,
                })
                .sum();
            metrics.files_written.inc_by(written as u64);
            metrics.windows_hosts_failed.set(failed as i64);
            tracing::info!(hosts = outcomes.len(), failed, "Windows push round done");
            if failed > 0 {
                // Failed hosts stay pending: any round contacts them; the next comes at resync.
                return (record, resync, outcomes);
            }
            super::succeeded(&metrics);
            if let Some(tx) = &outcomes_tx {
                let _ = tx.send(Outcome::Applied {
                    files_digest: digest.clone(),
                    fingerprint: None,
                    changed: written > 0,
                    complete: true,
                });
            }
            (record, until_due(unix_now()), outcomes)
        })
        .await
        .expect("the push task does not panic");
        let dest = Dest { port: self.options.port, root: &self.options.remote_root };
        memory.reports.after_round(
            &round_hosts,
            &outcomes,
            &record,
            dest,
            (&round_digest, &policy_fingerprint),
            unix_now(),
        );
        memory.record = record;
        memory.rendered = Some((policy_fingerprint, round_digest));
        self.publish(memory, &round_held, true);
        wake
    }

    /// Publishes where every host of the shards held stands.
    fn publish(&self, memory: &Memory, held: &Held, input_valid: bool) {
        let Some(tx) = &self.reports else { return };
        let report = RoundReport {
            input_valid,
            fingerprint: memory.rendered.as_ref().map(|r| r.0.clone()),
            files_digest: memory.rendered.as_ref().map(|r| r.1.clone()),
            shards: held.shards,
            held: held.epochs().iter().enumerate().filter(|(_, e)| e.is_some()).map(|(i, _)| i).collect(),
            hosts: memory.reports.hosts().cloned().collect(),
            at: unix_now(),
        };
        tx.send_replace(Some(report));
    }
}
