//! Lease-based leader election (`coordination.k8s.io/v1`), the way client-go's leaderelection does
//! it: take the Lease when it is free or expired, renew it while leading, step down when a renewal
//! has not succeeded for a whole lease duration, and release it on shutdown. Optimistic concurrency
//! (resourceVersion) makes two candidates racing for one Lease safe.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// How long a Lease stays valid without renewal; others wait this long before taking it.
    pub lease_duration: Duration,
    /// How often the leader renews, and how often a candidate retries.
    pub retry: Duration,
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
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
        let expired = match (&current.renew_time, current.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(secs)) => {
                renewed.as_millisecond() + i64::from(secs) * 1000 < now.as_millisecond()
            }
            _ => true,
        };
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

    /// Renews every `retry` until a renewal has failed for a whole lease duration or someone else
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
            if last_renewed.elapsed() >= self.lease_duration {
                tracing::warn!(lease = %self.name, "no renewal for a whole lease duration; stepping down");
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
