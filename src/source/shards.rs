//! Holding shard Leases for the Windows pusher: one Lease per shard, shared by the live replicas
//! (see [`crate::push::shard`] for how hosts map to shards and how many each replica holds).
//!
//! With one shard this is plain leader election on the Lease `<name>`. With more, shard `i` is the
//! Lease `<name>-<i>`, and each replica also holds one member Lease `<name>-member-<j>`, so that
//! every replica can count the live ones (a replica that holds no shard yet still counts). Every
//! retry period a replica reads them all, renews what it holds, steps down from what it lost,
//! gives back what is over its quota (only once no host of that shard is being written), and
//! takes free or expired shards up to its quota. Only fixed names are used, so RBAC can name them.

use super::lease::{Leases, Seen};
use crate::push::shard::{self, Held, HeldShard};
use crate::push::Gate;
use k8s_openapi::api::coordination::v1::Lease;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

struct Holding {
    gate: std::sync::Arc<Gate>,
    epoch: u64,
    renewed: Instant,
    /// Over quota (or shutting down): no host starts; released once the gate is idle.
    giving_back: bool,
}

pub struct ShardKeeper {
    leases: Leases,
    name: String,
    shards: usize,
    held: BTreeMap<usize, Holding>,
    /// The member slot this replica holds and when it was last renewed.
    member: Option<(usize, Instant)>,
    epochs: u64,
}

impl ShardKeeper {
    pub fn new(leases: Leases, name: &str, shards: usize) -> Self {
        ShardKeeper {
            leases,
            name: name.to_string(),
            shards: shards.max(1),
            held: BTreeMap::new(),
            member: None,
            epochs: 0,
        }
    }

    fn shard_name(&self, i: usize) -> String {
        if self.shards == 1 {
            self.name.clone()
        } else {
            format!("{}-{i}", self.name)
        }
    }

    fn member_name(&self, j: usize) -> String {
        format!("{}-member-{j}", self.name)
    }

    fn publish(&self, tx: &watch::Sender<Held>) {
        let mut held = Held::none(self.shards);
        for (i, h) in &self.held {
            if !h.giving_back {
                held.held[*i] = Some(HeldShard { epoch: h.epoch, gate: h.gate.clone() });
            }
        }
        let changed = |old: &Held| old.epochs() != held.epochs();
        tx.send_if_modified(|old| {
            let c = changed(old);
            if c {
                *old = held.clone();
            }
            c
        });
    }

    /// Holds shards until `stop` resolves, publishing what is held to `tx`; then stops every
    /// shard's hosts, waits until none is being written, and releases every Lease.
    pub async fn run(mut self, tx: watch::Sender<Held>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut stopping = false;
        loop {
            // A tick makes a few calls per shard; each is bounded, but with many shards and a
            // silent API server they add up. The tick as a whole gets only the time left before
            // the first held shard's renew deadline, after which that shard is given up.
            let budget = self.until_first_deadline();
            if tokio::time::timeout(budget, self.tick(stopping)).await.is_err() {
                tracing::warn!("the API server did not answer within the renew deadline");
                self.step_down_overdue();
            }
            self.publish(&tx);
            if stopping && self.held.is_empty() {
                if let Some((j, _)) = self.member.take() {
                    self.leases.release(&self.member_name(j)).await;
                }
                return;
            }
            tokio::select! {
                _ = &mut stop, if !stopping => stopping = true,
                _ = tokio::time::sleep(self.leases.timing.retry) => {}
            }
        }
    }

    async fn tick(&mut self, stopping: bool) {
        let me = self.leases.identity().to_string();
        let live = if self.shards == 1 { vec![me.clone()] } else { self.membership().await };
        let quota = if stopping { 0 } else { shard::quota(&live, &me, self.shards) };
        let mut seen = Vec::with_capacity(self.shards);
        for i in 0..self.shards {
            seen.push(match self.leases.look(&self.shard_name(i)).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(lease = %self.shard_name(i), "cannot read the Lease: {e}");
                    None
                }
            });
        }
        self.renew(&mut seen).await;
        self.give_back(quota, stopping).await;
        self.take_free(quota, seen).await;
    }

    /// Renews every held shard; steps down from one another replica took, or that could not be
    /// renewed for the renew deadline.
    async fn renew(&mut self, seen: &mut [Option<(Option<Lease>, Seen)>]) {
        let mut lost = Vec::new();
        for (&i, h) in self.held.iter_mut() {
            let name = if self.shards == 1 { self.name.clone() } else { format!("{}-{i}", self.name) };
            match seen[i].take() {
                Some((lease, Seen::Mine)) => match self.leases.take(&name, lease).await {
                    Ok(true) => h.renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(lease = %name, "another instance took the Lease; stepping down");
                        lost.push(i);
                        continue;
                    }
                    Err(e) => tracing::warn!(lease = %name, "cannot renew the Lease: {e}"),
                },
                Some((_, other)) => {
                    tracing::warn!(lease = %name, now = ?other, "another instance took the Lease; stepping down");
                    lost.push(i);
                    continue;
                }
                None => {}
            }
        }
        for i in lost {
            if let Some(h) = self.held.remove(&i) {
                // The host being written finishes its atomic replace; no other host of it starts.
                h.gate.close();
            }
        }
        self.step_down_overdue();
    }

    /// How long until the first held shard reaches its renew deadline (a whole lease duration
    /// when none is held).
    fn until_first_deadline(&self) -> Duration {
        let deadline = self.leases.timing.renew_deadline;
        let left = self.held.values().map(|h| deadline.saturating_sub(h.renewed.elapsed())).min();
        left.unwrap_or(self.leases.timing.duration)
    }

    /// Gives up every shard not renewed within the renew deadline: it has stopped before anyone
    /// else may take the Lease.
    fn step_down_overdue(&mut self) {
        let deadline = self.leases.timing.renew_deadline;
        let overdue: Vec<usize> =
            self.held.iter().filter(|(_, h)| h.renewed.elapsed() >= deadline).map(|(i, _)| *i).collect();
        for i in overdue {
            tracing::warn!(lease = %self.shard_name(i), "no renewal within the renew deadline; stepping down");
            if let Some(h) = self.held.remove(&i) {
                h.gate.close();
            }
        }
    }

    /// Stops the shards over quota (the ones this replica prefers least) and releases each once
    /// no host of it is being written.
    async fn give_back(&mut self, quota: usize, stopping: bool) {
        let active = self.held.values().filter(|h| !h.giving_back).count();
        if active > quota {
            let order = shard::preference(self.leases.identity(), self.shards);
            let mut extra = active - quota;
            for i in order.into_iter().rev() {
                if extra == 0 {
                    break;
                }
                if let Some(h) = self.held.get_mut(&i).filter(|h| !h.giving_back) {
                    h.giving_back = true;
                    h.gate.close();
                    extra -= 1;
                    if !stopping {
                        tracing::info!(lease = %self.shard_name(i), "over this replica's share; handing the shard over");
                    }
                }
            }
        }
        let idle: Vec<usize> =
            self.held.iter().filter(|(_, h)| h.giving_back && h.gate.idle()).map(|(i, _)| *i).collect();
        for i in idle {
            self.leases.release(&self.shard_name(i)).await;
            self.held.remove(&i);
        }
    }

    /// Takes free or expired shards, in this replica's order of preference, up to its quota.
    async fn take_free(&mut self, quota: usize, seen: Vec<Option<(Option<Lease>, Seen)>>) {
        let mut seen = seen;
        let mut active = self.held.values().filter(|h| !h.giving_back).count();
        for i in shard::preference(self.leases.identity(), self.shards) {
            if active >= quota {
                break;
            }
            if self.held.contains_key(&i) {
                continue;
            }
            let name = self.shard_name(i);
            match seen[i].take() {
                // Held under this identity by an earlier run of it: ours to take again.
                Some((lease, Seen::Free | Seen::Mine)) => match self.leases.take(&name, lease).await {
                    Ok(true) => {
                        self.epochs += 1;
                        let holding = Holding {
                            gate: Gate::new(),
                            epoch: self.epochs,
                            renewed: Instant::now(),
                            giving_back: false,
                        };
                        self.held.insert(i, holding);
                        active += 1;
                        tracing::info!(identity = %self.leases.identity(), lease = %name, "became the leader");
                    }
                    Ok(false) => tracing::debug!(lease = %name, "another instance took it first"),
                    Err(e) => tracing::warn!(lease = %name, "cannot take the Lease: {e}"),
                },
                Some((_, Seen::Held(holder))) => {
                    tracing::debug!(lease = %name, %holder, "another instance leads; waiting")
                }
                None => {}
            }
        }
    }

    /// Holds (or takes) a member slot and returns the identities of every live member.
    async fn membership(&mut self) -> Vec<String> {
        let me = self.leases.identity().to_string();
        let mut live = Vec::new();
        let mut free = Vec::new();
        let mut mine = None;
        for j in 0..self.shards {
            let name = self.member_name(j);
            match self.leases.look(&name).await {
                Ok((lease, Seen::Mine)) if mine.is_none() => mine = Some((j, lease)),
                Ok((_, Seen::Mine)) => self.leases.release(&name).await,
                Ok((lease, Seen::Free)) => free.push((j, lease)),
                Ok((_, Seen::Held(holder))) => live.push(holder),
                Err(e) => tracing::warn!(lease = %name, "cannot read the Lease: {e}"),
            }
        }
        let target = mine.or_else(|| {
            let order = shard::preference(&me, self.shards);
            free.sort_by_key(|(j, _)| order.iter().position(|o| o == j));
            free.into_iter().next()
        });
        if let Some((j, lease)) = target {
            let name = self.member_name(j);
            match self.leases.take(&name, lease).await {
                Ok(true) => self.member = Some((j, Instant::now())),
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %name, "cannot renew the member Lease: {e}"),
            }
        }
        match self.member {
            Some((_, renewed)) if renewed.elapsed() < self.leases.timing.renew_deadline => live.push(me),
            Some(_) => {
                tracing::warn!("no renewal of the member Lease within the renew deadline; standing by");
                self.member = None;
            }
            None => tracing::debug!("no member slot free; standing by"),
        }
        live
    }
}
