//! Lease-based leader election (`coordination.k8s.io/v1`), the way client-go's leaderelection does
//! it: take the Lease when it is free or expired, renew it while leading, step down when renewals
//! have failed for the renew deadline (shorter than the lease duration, so the old leader has
//! stopped before anyone else may take over), and release it on shutdown. Optimistic concurrency
//! (resourceVersion) makes two candidates racing for one Lease safe.
//!
//! Expiry is judged by when this replica *observed* the Lease record change, on its own monotonic
//! clock, never by comparing the holder's `renewTime` with the local clock: two nodes whose clocks
//! disagree cannot both believe they lead.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// How long a Lease stays valid without renewal; others wait this long before taking it.
    pub lease_duration: Duration,
    /// The leader steps down when it has not renewed for this long (less than `lease_duration`).
    pub renew_deadline: Duration,
    /// How often the leader renews, and how often a candidate retries.
    pub retry: Duration,
    observed: Arc<Mutex<Observed>>,
}

/// The last Lease record this replica saw and when (its own monotonic clock).
#[derive(Debug, Default)]
pub struct Observed {
    record: Option<String>,
    at: Option<Instant>,
}

impl Observed {
    /// Records `record` as seen at `now`; true when it has not changed for `duration` (the holder
    /// stopped renewing). A record seen for the first time is fresh: a new candidate waits a whole
    /// lease duration before it takes a Lease someone holds, whatever its `renewTime` says.
    pub fn expired(&mut self, record: &str, duration: Duration, now: Instant) -> bool {
        if self.record.as_deref() != Some(record) {
            self.record = Some(record.to_string());
            self.at = Some(now);
        }
        self.at.is_some_and(|at| now.saturating_duration_since(at) >= duration)
    }
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            // client-go's defaults.
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
            observed: Arc::new(Mutex::new(Observed::default())),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One attempt to take or renew the Lease. `Ok(true)`: this instance leads now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.as_deref().filter(|h| !h.is_empty());
        let ours = holder == Some(self.identity.as_str());
        // The whole record (holder, times, resourceVersion): any renewal changes it.
        let record = format!("{:?}/{:?}", lease.metadata.resource_version, current);
        let duration = Duration::from_secs(current.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let expired =
            self.observed.lock().unwrap_or_else(|p| p.into_inner()).expired(&record, duration, Instant::now());
        if !ours && holder.is_some() && !expired {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
        lease.spec = Some(spec(transitions, if ours { current.acquire_time } else { None }));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this instance leads. Returns `false` if `stop` resolved first.
    pub async fn acquire(&self, stop: impl std::future::Future<Output = ()>) -> bool {
        tokio::pin!(stop);
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "became the leader");
                    return true;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another instance leads; waiting"),
                Err(e) => tracing::warn!(lease = %self.name, "cannot reach the Lease: {e}"),
            }
            tokio::select! {
                _ = &mut stop => return false,
                _ = tokio::time::sleep(self.retry) => {}
            }
        }
    }

    /// Renews every `retry` until renewals have failed for the renew deadline or someone else
    /// holds the Lease (returns [`Kept::Lost`]), or `done` resolves (returns [`Kept::Stopped`]; the
    /// caller then [`release`](Self::release)s it once its work has stopped).
    pub async fn keep(&self, done: impl std::future::Future<Output = ()>) -> Kept {
        tokio::pin!(done);
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = &mut done => return Kept::Stopped,
                _ = tokio::time::sleep(self.retry) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.name, "another instance took the Lease; stepping down");
                    return Kept::Lost;
                }
                Err(e) => tracing::warn!(lease = %self.name, "cannot renew the Lease: {e}"),
            }
            if last_renewed.elapsed() >= self.renew_deadline {
                tracing::warn!(lease = %self.name, "no renewal within the renew deadline; stepping down");
                return Kept::Lost;
            }
        }
    }

    /// Gives the Lease up so another instance can take over at once (as client-go's ReleaseOnCancel).
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
            tracing::warn!(lease = %self.name, "cannot release the Lease: {e}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Stopped,
    Lost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_what_this_replica_observed_not_the_holders_clock() {
        let d = Duration::from_secs(15);
        let t0 = Instant::now();
        let mut o = Observed::default();
        // First sight: fresh, however old its renewTime looks.
        assert!(!o.expired("renewTime=1970, rv=1", d, t0));
        assert!(!o.expired("renewTime=1970, rv=1", d, t0 + Duration::from_secs(14)));
        // Renewed (the record changed): fresh again, on this clock.
        assert!(!o.expired("renewTime=1970, rv=2", d, t0 + Duration::from_secs(20)));
        assert!(!o.expired("renewTime=1970, rv=2", d, t0 + Duration::from_secs(34)));
        assert!(o.expired("renewTime=1970, rv=2", d, t0 + Duration::from_secs(35)));
    }
}
