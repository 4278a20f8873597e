//! Where the objects come from while the agent runs: a folder of manifests watched with `notify`
//! ([`files`]), or the Kubernetes API through kube-rs watchers ([`kube`]). Both only say "something
//! changed"; the agent then reads the whole current state.

pub mod files;
pub mod kube;
pub mod lease;
pub mod node;
pub mod shards;
pub mod windows_hosts;
pub mod windows_report;

use std::time::Duration;

/// Every call to the API server outside a watch is bounded; a slow one is retried later, not
/// waited on forever.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Api(#[from] ::kube::Error),
}

/// `call`, given at most [`CALL_TIMEOUT`].
pub async fn bounded<T>(call: impl std::future::Future<Output = Result<T, ::kube::Error>>) -> Result<T, CallError> {
    bounded_by(CALL_TIMEOUT, call).await
}

/// `call`, given at most `timeout`.
pub async fn bounded_by<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, ::kube::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(CallError::Timeout(timeout)),
    }
}
