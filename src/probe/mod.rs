//! `mirrorconf check` and the agent's endpoint probes: is every endpoint a runtime may use actually
//! usable from this node, and if not, why. The endpoint list and its order come from the inspect
//! explainers ([`plan`]); this module only adds the network: per endpoint, name resolution, TCP,
//! TLS with the CA files that runtime reads for the host, the registry API (`GET /v2/`) and
//! authentication with the credentials it would send, and with an image the manifest. The first
//! stage that fails is reported as one sentence with its cause and fix.
//!
//! Every endpoint is probed at once, each bounded by its own timeout; equal probes (one host
//! shared by many registries) run once.

pub mod auth;
pub mod files;
pub mod net;
pub mod plan;
pub mod report;
mod stages;
pub mod tls;

use plan::{Plan, Probe};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// The stages of a probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dns,
    Connect,
    Tls,
    Api,
    Auth,
    Manifest,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Api => "api",
            Stage::Auth => "auth",
            Stage::Manifest => "manifest",
        })
    }
}

/// Where a probe stopped, and the sentence that says why and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub message: String,
}

impl Failure {
    pub fn new(stage: Stage, message: impl Into<String>) -> Failure {
        Failure { stage, message: message.into() }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Every stage passed (a manifest the endpoint lacks is no failure: the runtime moves on).
    pub ok: bool,
    /// The stage that failed, or the last one passed.
    pub stage: Stage,
    pub error: Option<String>,
    pub ms: u64,
    /// The address connected to.
    pub address: Option<String>,
    /// How it went where that matters: plain HTTP, anonymous, which token service.
    pub notes: Vec<String>,
    /// With an image: whether this endpoint has its manifest, and the digest it answers with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Probes one endpoint within `timeout`.
pub async fn probe(p: &Probe, roots: &tls::Roots, timeout: Duration) -> Outcome {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut notes = vec![];
    let result = stages::run(p, roots, deadline, &mut notes).await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(reached) => Outcome {
            ok: true,
            stage: reached.stage,
            error: None,
            ms,
            address: Some(reached.address.to_string()),
            notes,
            found: reached.found,
            digest: reached.digest,
        },
        Err(f) => Outcome {
            ok: false,
            stage: f.stage,
            error: Some(f.message),
            ms,
            address: None,
            notes,
            found: None,
            digest: None,
        },
    }
}

/// Probes every row of `plan` at once (each distinct probe once); outcomes in row order.
pub async fn probe_all(plan: &Plan, roots: &tls::Roots, timeout: Duration) -> Vec<Outcome> {
    let mut unique: Vec<&Probe> = vec![];
    let mut index: HashMap<&Probe, usize> = HashMap::new();
    let slots: Vec<usize> = plan
        .rows
        .iter()
        .map(|row| {
            *index.entry(&row.probe).or_insert_with(|| {
                unique.push(&row.probe);
                unique.len() - 1
            })
        })
        .collect();
    let outcomes = futures::future::join_all(unique.iter().map(|p| probe(p, roots, timeout))).await;
    slots.into_iter().map(|i| outcomes[i].clone()).collect()
}

/// Text from a registry (a realm, a digest) made safe to print: no control characters, bounded.
pub(crate) fn shown(untrusted: &str) -> String {
    let mut s: String = untrusted.chars().filter(|c| !c.is_control()).take(200).collect();
    if untrusted.chars().count() > 200 {
        s.push('…');
    }
    s
}
