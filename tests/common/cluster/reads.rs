//! What the API server holds and saw, for assertions: the Events stored, and from the audit log
//! the Node writes (with their bodies) and the watches opened.

use super::ControlPlane;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

/// One write to a Node as the audit log has it.
#[derive(Debug, Clone)]
pub struct NodeWrite {
    pub user: String,
    pub node: String,
    /// `patch` or `update`.
    pub verb: String,
    /// The request body: the patch as sent, or the whole Node of an update.
    pub body: Value,
    pub code: i64,
}

impl ControlPlane {
    /// What the API server saw, from its audit logs (every instance's), oldest first:
    /// `ResponseComplete` and `ResponseStarted` events.
    pub fn audit(&self) -> Vec<Value> {
        self.own("the API server's audit log");
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("audit-"))
            .collect();
        files.sort();
        let mut events = Vec::new();
        for f in files {
            for line in fs::read_to_string(f).unwrap_or_default().lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    events.push(v);
                }
            }
        }
        events
    }

    /// The requests `user` made (a service account as `system:serviceaccount:NS:NAME`), one audit
    /// event each: the last the server wrote for it (a watch still open has only `ResponseStarted`).
    pub fn requests_by(&self, user: &str) -> Vec<Value> {
        let mut order = Vec::new();
        let mut last: HashMap<String, Value> = HashMap::new();
        for e in self.audit().into_iter().filter(|e| e["user"]["username"] == user) {
            let id = e["auditID"].as_str().unwrap_or_default().to_string();
            if !last.contains_key(&id) {
                order.push(id.clone());
            }
            last.insert(id, e);
        }
        order.into_iter().filter_map(|id| last.remove(&id)).collect()
    }

    /// The requests `user` made at or after `since` (RFC 3339 as the audit log writes it; "" for
    /// all) that the server refused with 403, one line each.
    pub fn forbidden(&self, user: &str, since: &str) -> Vec<String> {
        self.answered_with(user, |e| {
            e["responseStatus"]["code"] == 403 && e["requestReceivedTimestamp"].as_str().unwrap_or("") >= since
        })
    }

    /// The requests of `user` whose audit event `keep` picks, one line each: code, verb, URI and
    /// the server's message.
    fn answered_with(&self, user: &str, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        self.requests_by(user)
            .into_iter()
            .filter(|e| keep(e))
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["responseStatus"]["code"], e["verb"], e["requestURI"], e["responseStatus"]["message"]
                )
            })
            .collect()
    }

    /// Every `events.k8s.io/v1` Event in every namespace, oldest first.
    pub fn events(&self) -> Vec<Value> {
        let mut events = self.list("events.k8s.io/v1", "Event", "");
        events.sort_by_key(|e| e["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_string());
        events
    }

    /// Patches and updates of Nodes (not of their status), oldest first, as the server received
    /// them: the audit policy logs Node write bodies at level Request.
    pub fn node_patches(&self) -> Vec<NodeWrite> {
        self.audit()
            .into_iter()
            .filter(|e| {
                e["stage"] == "ResponseComplete"
                    && (e["verb"] == "patch" || e["verb"] == "update")
                    && e["objectRef"]["resource"] == "nodes"
                    && e["objectRef"]["subresource"].is_null()
            })
            .map(|e| NodeWrite {
                user: e["user"]["username"].as_str().unwrap_or_default().to_string(),
                node: e["objectRef"]["name"].as_str().unwrap_or_default().to_string(),
                verb: e["verb"].as_str().unwrap_or_default().to_string(),
                body: e["requestObject"].clone(),
                code: e["responseStatus"]["code"].as_i64().unwrap_or_default(),
            })
            .collect()
    }

    /// The requests of `user` the server answered with an error (4xx or 5xx), one line each; but
    /// not the 429 "storage is (re)initializing" a real server answers while the cache of a CRD
    /// just established fills, which every client retries.
    pub fn failed_requests(&self, user: &str) -> Vec<String> {
        let filling = |e: &Value| {
            e["responseStatus"]["code"] == 429
                && e["responseStatus"]["message"].as_str().is_some_and(|m| m.contains("storage is (re)initializing"))
        };
        self.answered_with(user, |e| e["responseStatus"]["code"].as_i64().is_some_and(|c| c >= 400) && !filling(e))
    }

    /// How many watches `user` opened (answered or still open).
    pub fn watches_opened(&self, user: &str) -> usize {
        self.requests_by(user).iter().filter(|e| e["verb"] == "watch").count()
    }
}
