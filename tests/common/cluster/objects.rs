//! The objects on the server: server-side apply, create, replace, get, list, delete, merge patches,
//! and the Nodes and namespaces the tests make.

use super::ControlPlane;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl ControlPlane {
    fn resource(&self, api_version: &str, kind: &str) -> ApiResource {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.kinds.lock().unwrap().get(&key) {
            return r.clone();
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        // Just after a CRD is Established, discovery can lag for a moment.
        let deadline = Instant::now() + Duration::from_secs(20);
        let found = loop {
            match self.rt.block_on(kube::discovery::pinned_kind(&self.client, &gvk)) {
                Ok((r, _)) => break r,
                Err(e) if Instant::now() > deadline => panic!("no API resource for {api_version} {kind}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.kinds.lock().unwrap().insert(key, found.clone());
        found
    }

    fn api(&self, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
        let r = self.resource(api_version, kind);
        if namespace.is_empty() {
            Api::all_with(self.client.clone(), &r)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &r)
        }
    }

    fn parts(object: &Value) -> (String, String, String, String) {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        (
            s(&object["apiVersion"]),
            s(&object["kind"]),
            s(&object["metadata"]["namespace"]),
            s(&object["metadata"]["name"]),
        )
    }

    /// Creates or updates `object` by server-side apply (field manager `test`), with strict field
    /// validation; the server's refusal as its message.
    pub fn try_apply(&self, object: Value) -> Result<Value, String> {
        let (api_version, kind, ns, name) = Self::parts(&object);
        let api = self.api(&api_version, &kind, &ns);
        let params =
            PatchParams { field_manager: Some("test".into()), force: true, ..Default::default() }.validation_strict();
        self.rt
            .block_on(api.patch(&name, &params, &Patch::Apply(&object)))
            .map(|o| serde_json::to_value(o).unwrap())
            .map_err(|e| match e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            })
    }

    /// As [`Self::try_apply`]; panics on refusal.
    pub fn apply(&self, object: Value) -> Value {
        let what = format!("{} {}", object["kind"], object["metadata"]["name"]);
        self.try_apply(object).unwrap_or_else(|e| panic!("the server refused {what}: {e}"))
    }

    /// Creates `object` (POST); the server's refusal as its message.
    pub fn try_create(&self, object: Value) -> Result<Value, String> {
        let (api_version, kind, ns, _) = Self::parts(&object);
        let api = self.api(&api_version, &kind, &ns);
        let o: DynamicObject = serde_json::from_value(object).unwrap();
        self.rt.block_on(api.create(&PostParams::default(), &o)).map(|o| serde_json::to_value(o).unwrap()).map_err(
            |e| match e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            },
        )
    }

    /// Replaces `object` (PUT), conditional on the resourceVersion it carries; the server's
    /// refusal (409 Conflict when another writer got in first) as its message.
    pub fn try_replace(&self, object: Value) -> Result<Value, String> {
        let (api_version, kind, ns, name) = Self::parts(&object);
        let api = self.api(&api_version, &kind, &ns);
        let o: DynamicObject = serde_json::from_value(object).unwrap();
        self.rt
            .block_on(api.replace(&name, &PostParams::default(), &o))
            .map(|o| serde_json::to_value(o).unwrap())
            .map_err(|e| e.to_string())
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let api = self.api(api_version, kind, namespace);
        self.rt.block_on(api.get_opt(name)).unwrap().map(|o| serde_json::to_value(o).unwrap())
    }

    /// Every object of a kind (in `namespace`, or all of them with "").
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        let api = self.api(api_version, kind, namespace);
        let list = self.rt.block_on(api.list(&Default::default())).unwrap();
        list.items.into_iter().map(|o| serde_json::to_value(o).unwrap()).collect()
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let api = self.api(api_version, kind, namespace);
        match self.rt.block_on(api.delete(name, &DeleteParams::default())) {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {kind} {name}: {e}"),
        }
    }

    /// A JSON merge patch as the admin (another writer, for races).
    pub fn merge_patch(&self, api_version: &str, kind: &str, namespace: &str, name: &str, patch: Value) -> Value {
        let api = self.api(api_version, kind, namespace);
        let o = self.rt.block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
        serde_json::to_value(o).unwrap()
    }

    /// A JSON merge patch of the status subresource (what a kubelet writes: a Node's addresses).
    pub fn merge_patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Value {
        let api = self.api(api_version, kind, namespace);
        let o = self.rt.block_on(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
        serde_json::to_value(o).unwrap()
    }

    /// A Node object named `name` (no kubelet runs: it is only the object).
    pub fn node(&self, name: &str, extra: Value) -> Value {
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        merge(&mut node, &extra);
        self.apply(node)
    }

    /// A Node named `name` (as [`Self::node`]) whose InternalIP is `ip`, written to the status
    /// subresource as a kubelet writes it (the server ignores status in a write of the Node itself).
    pub fn node_at(&self, name: &str, ip: &str, extra: Value) -> Value {
        self.node(name, extra);
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        self.merge_patch_status("v1", "Node", "", name, status)
    }

    /// A namespace of this name (idempotent).
    pub fn namespace(&self, name: &str) {
        self.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    }
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
