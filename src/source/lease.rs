//! Leases (`coordination.k8s.io/v1`) used the way client-go's leader election uses them: take a
//! Lease when it is free or expired, renew it while holding it, step down when renewals have
//! failed for the renew deadline (shorter than the lease duration, so the old holder has stopped
//! before anyone else may take over), and release it on shutdown. Optimistic concurrency
//! (resourceVersion) makes two candidates racing for one Lease safe. [`super::shards`] holds one
//! Lease per shard with this.
//!
//! Expiry is judged by when this replica *observed* the Lease record change, on its own monotonic
//! clock, never by comparing the holder's `renewTime` with the local clock: two nodes whose clocks
//! disagree cannot both believe they hold a Lease.

use super::CallError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a Lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease stays valid without renewal; others wait this long before taking it.
    pub duration: Duration,
    /// The holder steps down when it has not renewed for this long (less than `duration`).
    pub renew_deadline: Duration,
    /// How often the holder renews, and how often a candidate retries.
    pub retry: Duration,
}

impl Timing {
    /// client-go's proportions: 15 s gives a 10 s renew deadline and a 2 s retry period.
    pub fn from_duration(duration: Duration) -> Timing {
        Timing { duration, renew_deadline: duration * 2 / 3, retry: duration * 2 / 15 }
    }
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

/// Who holds a Lease, as this replica judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Mine,
    /// No holder, released, expired, or not created yet: anyone may take it.
    Free,
    Held(String),
}

#[derive(Clone)]
pub struct Leases {
    api: Api<Lease>,
    identity: String,
    pub timing: Timing,
    observed: Arc<Mutex<HashMap<String, Observed>>>,
}

impl Leases {
    pub fn new(client: Client, namespace: &str, identity: &str, timing: Timing) -> Self {
        Leases {
            api: Api::namespaced(client, namespace),
            identity: identity.to_string(),
            timing,
            observed: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `call`, given at most one retry period: a hung API server must not hold the keeper past
    /// its renew deadline, where it steps down.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        super::bounded_by(self.timing.retry, call).await
    }

    /// Reads Lease `name` and judges who holds it.
    pub async fn look(&self, name: &str) -> Result<(Option<Lease>, Seen), CallError> {
        let Some(lease) = self.bounded(self.api.get_opt(name)).await? else { return Ok((None, Seen::Free)) };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        // The whole record (holder, times, resourceVersion): any renewal changes it.
        let record = format!("{:?}/{:?}", lease.metadata.resource_version, spec);
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        let expired = observed.entry(name.to_string()).or_default().expired(&record, duration, Instant::now());
        let seen = match holder {
            Some(h) if h == self.identity => Seen::Mine,
            Some(h) if !expired => Seen::Held(h),
            _ => Seen::Free,
        };
        Ok((Some(lease), seen))
    }

    /// Takes or renews Lease `name`, as [`Leases::look`] returned it. `Ok(true)`: held now;
    /// `Ok(false)`: someone else changed it first.
    pub async fn take(&self, name: &str, current: Option<Lease>) -> Result<bool, CallError> {
        let now = Timestamp::now();
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.duration.as_secs() as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(name.to_string()), ..ObjectMeta::default() },
                    spec: Some(spec(0, None)),
                };
                self.bounded(self.api.create(&PostParams::default(), &lease)).await
            }
            Some(mut lease) => {
                let current = lease.spec.clone().unwrap_or_default();
                let ours = current.holder_identity.as_deref() == Some(self.identity.as_str());
                let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
                lease.spec = Some(spec(transitions, if ours { current.acquire_time } else { None }));
                self.bounded(self.api.replace(name, &PostParams::default(), &lease)).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(CallError::Api(kube::Error::Api(e))) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives Lease `name` up so another replica can take it at once (as client-go's
    /// ReleaseOnCancel). Only a Lease this replica holds is touched.
    pub async fn release(&self, name: &str) {
        let Ok(Some(mut lease)) = self.bounded(self.api.get_opt(name)).await else { return };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self.bounded(self.api.replace(name, &PostParams::default(), &lease)).await {
            tracing::warn!(lease = %name, "cannot release the Lease: {e}");
        }
    }
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

    #[test]
    fn timings_keep_client_gos_proportions() {
        let t = Timing::from_duration(Duration::from_secs(15));
        assert_eq!((t.renew_deadline, t.retry), (Duration::from_secs(10), Duration::from_secs(2)));
        let t = Timing::from_duration(Duration::from_secs(3));
        assert!(t.retry < t.renew_deadline && t.renew_deadline < t.duration);
    }
}
