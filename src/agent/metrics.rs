//! Prometheus metrics and the health state `/healthz`, `/readyz` and `/metrics` report.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Metrics {
    registry: Registry,
    pub renders: Counter,
    pub render_errors: Counter,
    pub files_written: Counter,
    pub files_removed: Counter,
    pub reloads: Counter,
    pub reload_errors: Counter,
    pub watch_restarts: Counter,
    pub last_success: Gauge<f64, AtomicU64>,
    pub input_valid: Gauge,
    pub node_behind: Gauge,
    pub windows_hosts: Gauge,
    pub windows_hosts_failed: Gauge,
    pub endpoint_up: Family<EndpointLabels, Gauge>,
    pub endpoint_probe_seconds: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    pub windows_shards: Gauge,
    ready: AtomicBool,
}

/// The labels of an endpoint probe (`run --probe-interval`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    pub registry: String,
    pub endpoint: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mirrorconf");
        let m = Metrics {
            renders: Counter::default(),
            render_errors: Counter::default(),
            files_written: Counter::default(),
            files_removed: Counter::default(),
            reloads: Counter::default(),
            reload_errors: Counter::default(),
            watch_restarts: Counter::default(),
            last_success: Gauge::default(),
            input_valid: Gauge::default(),
            node_behind: Gauge::default(),
            windows_hosts: Gauge::default(),
            windows_hosts_failed: Gauge::default(),
            endpoint_up: Family::default(),
            endpoint_probe_seconds: Family::default(),
            windows_shards: Gauge::default(),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        // name (after the `mirrorconf_` prefix), help, metric: one line each.
        macro_rules! register {
            ($($field:ident: $name:literal, $help:literal;)*) => { $(registry.register($name, $help, m.$field.clone());)* };
        }
        register! {
            renders: "renders", "Renders finished, refused ones included";
            render_errors: "render_errors", "Render attempts refused or failed; the last good files stay";
            files_written: "files_written", "Files written (only when their bytes changed)";
            files_removed: "files_removed", "Files removed (only ones mirrorconf created)";
            reloads: "reloads", "Reload actions run after a change";
            reload_errors: "reload_errors", "Reload actions that failed";
            watch_restarts: "watch_restarts", "Times a source restarted its watch (relist, watcher error)";
            last_success: "last_success_timestamp_seconds", "Unix time of the last successful render";
            input_valid: "input_valid", "1 when the current input is valid, 0 when it was refused";
            node_behind: "node_behind", "1 while this node is behind the valid input: a write or the reload after it failed";
            windows_hosts: "windows_hosts", "Windows hosts of the shards this replica holds (--windows-push)";
            windows_hosts_failed: "windows_hosts_failed", "Windows hosts that failed in the last push round";
            endpoint_up: "endpoint_up", "1 when the endpoint's last probe found it usable, 0 when not (--probe-interval)";
            endpoint_probe_seconds: "endpoint_probe_duration_seconds", "How long the endpoint's last probe took";
            windows_shards: "windows_shards", "Shards (host Leases) this replica holds";
        }
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Ready once the first render has succeeded; it stays ready while later input is refused,
    /// because the node keeps its last good files.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
