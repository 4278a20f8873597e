//! An in-test Kubernetes API server (a test double). Cluster paths are tested against a real
//! kube-apiserver (tests/common/cluster.rs); this one stays for faults a real server cannot be made
//! to show ([`FakeApi::hang`]: a request taken and never answered, in tests/fleet_kube.rs and
//! tests/windows_push_kube.rs) and for the benchmarks under benches/. HTTP on 127.0.0.1, real
//! sockets, the wire format kube-rs speaks:
//!
//! - LIST returns `<Kind>List` with `metadata.resourceVersion`; field selectors `metadata.name=X`.
//! - WATCH (`?watch=true&resourceVersion=N`) streams newline-delimited `ADDED`/`MODIFIED`/`DELETED`
//!   events after N, then live ones, and `BOOKMARK`s when asked for.
//! - [`FakeApi::expire_watches`] compacts history: open watches get an `ERROR` event with a 410
//!   `Expired` Status and close, and a WATCH from an older resourceVersion gets the same, so clients
//!   must relist — exactly what etcd compaction does to a real cluster.
//! - Label selectors `k=v[,k=v]` on LIST and WATCH.
//! - POST creates (409 `AlreadyExists` when the name is taken) and PUT replaces with optimistic
//!   concurrency (409 `Conflict` on a stale resourceVersion), which Lease leader election relies on.
//! - Merge PATCH (RFC 7386) of any stored object: 404 when it does not exist, 409 `Conflict` when
//!   the patch carries a `metadata.resourceVersion` that is no longer current (the precondition the
//!   real API server honours), else the merged object is stored and watchers see `MODIFIED`.
//! - [`FakeApi::after_next_get`] changes an object right after a client has read it: another
//!   writer getting in between a read and a write, the race optimistic concurrency is for.
//! - POST of `events.k8s.io/v1` Events and PATCHes of Nodes are recorded for assertions.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// A collection's address: `(group/version, namespace or "", plural)`.
type Key = (String, String, String);

/// A change another writer makes to an object.
type Change = Box<dyn FnOnce(&mut Value) + Send>;

#[derive(Default)]
struct Collection {
    objects: BTreeMap<String, Value>,
    /// (resourceVersion, event type, object) — the watch history.
    log: Vec<(u64, &'static str, Value)>,
}

#[derive(Default)]
struct State_ {
    rv: u64,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    collections: HashMap<Key, Collection>,
    events: Vec<Value>,
    node_patches: Vec<(String, Value)>,
    watches_opened: u64,
    /// Every request answered (watches included), for what a benchmark costs the server.
    requests: u64,
    /// (plural, name) -> a change another writer makes right after the next GET of it.
    after_get: HashMap<(String, String), Change>,
    /// Resources (plural) whose requests get no answer, as from a hung API server.
    hung: std::collections::HashSet<String>,
}

#[derive(Clone, Debug)]
enum Signal {
    Changed,
    Expire,
    Bookmark,
}

#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State_>>,
    signal: broadcast::Sender<Signal>,
    _runtime: Arc<tokio::runtime::Runtime>,
}

fn kind_of(plural: &str) -> &'static str {
    match plural {
        "imagedigestmirrorsets" => "ImageDigestMirrorSet",
        "imagetagmirrorsets" => "ImageTagMirrorSet",
        "imagecontentsourcepolicies" => "ImageContentSourcePolicy",
        "images" => "Image",
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "nodes" => "Node",
        "events" => "Event",
        "leases" => "Lease",
        _ => "Unknown",
    }
}

/// Splits an API path into (group/version, namespace, plural, name).
fn parse_path(path: &str) -> Option<(String, String, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] => (ns.to_string(), rest),
        rest => (String::new(), rest),
    };
    match rest {
        [plural] => Some((gv, ns, plural.to_string(), None)),
        [plural, name] => Some((gv, ns, plural.to_string(), Some(name.to_string()))),
        _ => None,
    }
}

fn name_selector(q: &HashMap<String, String>) -> Option<String> {
    q.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name=")).map(String::from)
}

/// Equality-based label selectors (`a=b,c=d`), the only kind mirrorconf uses.
fn labels_match(q: &HashMap<String, String>, object: &Value) -> bool {
    let Some(selector) = q.get("labelSelector") else { return true };
    selector.split(',').filter(|s| !s.is_empty()).all(|term| match term.split_once('=') {
        Some((k, v)) => object["metadata"]["labels"][k.trim_end_matches('=')] == v,
        None => false,
    })
}

fn selected(q: &HashMap<String, String>, object: &Value) -> bool {
    name_selector(q).is_none_or(|n| object["metadata"]["name"] == n.as_str()) && labels_match(q, object)
}

fn conflict(reason: &str, message: String) -> Response {
    json_response(
        StatusCode::CONFLICT,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "message": message, "code": 409}),
    )
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else (lists included)
/// replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            object.remove(k);
        } else {
            merge_patch(object.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

fn gone() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "too old resource version", "reason": "Expired", "code": 410})
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let runtime =
            Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
        let state = Arc::new(Mutex::new(State_ { rv: 1, ..Default::default() }));
        let (signal, _) = broadcast::channel(1024);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let api = FakeApi { addr, state, signal, _runtime: Arc::clone(&runtime) };
        let app = axum::Router::new().fallback(handle).with_state(api.clone());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        api
    }

    /// A kubeconfig file that points kube-rs at this server.
    pub fn write_kubeconfig(&self, path: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{token: test}}\n",
            self.addr
        );
        std::fs::write(path, text).unwrap();
    }

    fn key_of(object: &Value) -> (Key, String) {
        let api_version = object["apiVersion"].as_str().expect("apiVersion").to_string();
        let kind = object["kind"].as_str().expect("kind");
        let plural = match kind {
            "ImageContentSourcePolicy" => "imagecontentsourcepolicies".to_string(),
            k => format!("{}s", k.to_lowercase()),
        };
        let ns = object["metadata"]["namespace"].as_str().unwrap_or("").to_string();
        let name = object["metadata"]["name"].as_str().expect("metadata.name").to_string();
        ((api_version, ns, plural), name)
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let probe =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
        let (key, name) = Self::key_of(&probe);
        self.state.lock().unwrap().collections.get(&key).and_then(|c| c.objects.get(&name)).cloned()
    }

    /// Creates or replaces an object (ADDED or MODIFIED), as `kubectl apply` would; returns it as stored.
    pub fn apply(&self, mut object: Value) -> Value {
        let (key, name) = Self::key_of(&object);
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{name}-{rv}"));
        }
        let c = s.collections.entry(key).or_default();
        let kind = if c.objects.contains_key(&name) { "MODIFIED" } else { "ADDED" };
        c.objects.insert(name, object.clone());
        c.log.push((rv, kind, object.clone()));
        drop(s);
        let _ = self.signal.send(Signal::Changed);
        object
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let probe =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
        let (key, name) = Self::key_of(&probe);
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let c = s.collections.entry(key).or_default();
        if let Some(mut old) = c.objects.remove(&name) {
            old["metadata"]["resourceVersion"] = json!(rv.to_string());
            c.log.push((rv, "DELETED", old));
        }
        drop(s);
        let _ = self.signal.send(Signal::Changed);
    }

    /// Compacts history: every open watch gets 410 Gone and every client has to relist.
    pub fn expire_watches(&self) {
        let mut s = self.state.lock().unwrap();
        s.compacted = s.rv;
        drop(s);
        let _ = self.signal.send(Signal::Expire);
    }

    /// Sends a BOOKMARK on every open watch that asked for them.
    pub fn bookmark(&self) {
        let _ = self.signal.send(Signal::Bookmark);
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.clone()
    }

    pub fn node_patches(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().node_patches.clone()
    }

    /// The next time a client GETs this object, `change` is applied to it right after the answer
    /// left (a new resourceVersion, a MODIFIED event), so that the client's next write is stale.
    pub fn after_next_get(&self, plural: &str, name: &str, change: impl FnOnce(&mut Value) + Send + 'static) {
        self.state.lock().unwrap().after_get.insert((plural.to_string(), name.to_string()), Box::new(change));
    }

    /// Requests for `plural` (watches aside) get no answer until [`FakeApi::answer`]: the
    /// connection stays open and silent, as with a hung API server.
    pub fn hang(&self, plural: &str) {
        self.state.lock().unwrap().hung.insert(plural.to_string());
    }

    pub fn answer(&self, plural: &str) {
        self.state.lock().unwrap().hung.remove(plural);
    }

    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }

    pub fn watches_opened(&self) -> u64 {
        self.state.lock().unwrap().watches_opened
    }
}

async fn handle(
    State(api): State<FakeApi>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some((gv, ns, plural, name)) = parse_path(uri.path()) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"kind": "Status", "code": 404}));
    };
    let key: Key = (gv.clone(), ns.clone(), plural.clone());
    api.state.lock().unwrap().requests += 1;
    let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    while !watching && api.state.lock().unwrap().hung.contains(&plural) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    match (method, name) {
        (Method::GET, None) if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) => watch(api, key, q),
        (Method::GET, None) => {
            let s = api.state.lock().unwrap();
            let items: Vec<Value> = s
                .collections
                .get(&key)
                .map(|c| c.objects.values().filter(|o| selected(&q, o)).cloned().collect())
                .unwrap_or_default();
            let list = json!({"apiVersion": gv, "kind": format!("{}List", kind_of(&plural)),
                              "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
            json_response(StatusCode::OK, &list)
        }
        (Method::POST, None) if plural == "events" => {
            let mut event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if event["metadata"]["name"].is_null() {
                event["metadata"]["name"] = json!(format!("event-{}", api.state.lock().unwrap().events.len()));
            }
            api.state.lock().unwrap().events.push(event.clone());
            json_response(StatusCode::CREATED, &event)
        }
        (Method::PATCH, Some(n)) if plural == "events" => {
            let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            api.state.lock().unwrap().events.push(patch.clone());
            let _ = n;
            json_response(StatusCode::OK, &patch)
        }
        (Method::PATCH, Some(n)) => {
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return json_response(StatusCode::BAD_REQUEST, &json!({"kind": "Status", "code": 400}));
            };
            if plural == "nodes" {
                api.state.lock().unwrap().node_patches.push((n.clone(), patch.clone()));
            }
            let Some(mut object) = api.get(&gv, kind_of(&plural), &ns, &n) else {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
                );
            };
            let precondition = &patch["metadata"]["resourceVersion"];
            if !precondition.is_null() && *precondition != object["metadata"]["resourceVersion"] {
                return conflict(
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version".into(),
                );
            }
            merge_patch(&mut object, &patch);
            let stored = api.apply(object);
            json_response(StatusCode::OK, &stored)
        }
        (Method::POST, None) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return json_response(StatusCode::BAD_REQUEST, &json!({"kind": "Status", "code": 400}));
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if api.get(&gv, kind_of(&plural), &ns, &name).is_some() {
                return conflict("AlreadyExists", format!("{plural} {name:?} already exists"));
            }
            object["apiVersion"] = json!(gv);
            object["kind"] = json!(kind_of(&plural));
            object["metadata"]["namespace"] = if ns.is_empty() { Value::Null } else { json!(ns) };
            let stored = api.apply(object);
            json_response(StatusCode::CREATED, &stored)
        }
        (Method::PUT, Some(n)) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return json_response(StatusCode::BAD_REQUEST, &json!({"kind": "Status", "code": 400}));
            };
            let Some(current) = api.get(&gv, kind_of(&plural), &ns, &n) else {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
                );
            };
            // Optimistic concurrency, as the real API server: a stale resourceVersion is a conflict.
            if object["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return conflict(
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version".into(),
                );
            }
            object["apiVersion"] = json!(gv);
            object["kind"] = json!(kind_of(&plural));
            let stored = api.apply(object);
            json_response(StatusCode::OK, &stored)
        }
        (Method::GET, Some(n)) => {
            let mut s = api.state.lock().unwrap();
            let found = s.collections.get(&key).and_then(|c| c.objects.get(&n)).cloned();
            let change = s.after_get.remove(&(plural.clone(), n.clone()));
            drop(s);
            match found {
                Some(o) => {
                    let answer = json_response(StatusCode::OK, &o);
                    if let Some(change) = change {
                        let mut changed = o;
                        change(&mut changed);
                        api.apply(changed);
                    }
                    answer
                }
                None => {
                    json_response(StatusCode::NOT_FOUND, &json!({"kind": "Status", "code": 404, "reason": "NotFound"}))
                }
            }
        }
        _ => json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"kind": "Status", "code": 405})),
    }
}

fn watch(api: FakeApi, key: Key, q: HashMap<String, String>) -> Response {
    let from: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut signals = api.signal.subscribe();
    api.state.lock().unwrap().watches_opened += 1;
    tokio::spawn(async move {
        let line = |v: Value| Bytes::from(format!("{v}\n"));
        let mut sent = from;
        loop {
            let (batch, expired, rv) = {
                let s = api.state.lock().unwrap();
                if from < s.compacted {
                    (Vec::new(), true, s.rv)
                } else {
                    let batch: Vec<(u64, &'static str, Value)> = s
                        .collections
                        .get(&key)
                        .map(|c| c.log.iter().filter(|(rv, _, _)| *rv > sent).cloned().collect())
                        .unwrap_or_default();
                    (batch, false, s.rv)
                }
            };
            if expired {
                let _ = tx.send(line(json!({"type": "ERROR", "object": gone()}))).await;
                return;
            }
            for (rv, kind, object) in batch {
                sent = rv;
                if !selected(&q, &object) {
                    continue;
                }
                if tx.send(line(json!({"type": kind, "object": object}))).await.is_err() {
                    return;
                }
            }
            match signals.recv().await {
                Ok(Signal::Changed) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(Signal::Expire) => {
                    let _ = tx.send(line(json!({"type": "ERROR", "object": gone()}))).await;
                    return;
                }
                Ok(Signal::Bookmark) if bookmarks => {
                    let (gv, _, plural) = &key;
                    let bm = json!({"type": "BOOKMARK", "object": {"apiVersion": gv, "kind": kind_of(plural),
                                    "metadata": {"resourceVersion": rv.to_string()}}});
                    if tx.send(line(bm)).await.is_err() {
                        return;
                    }
                }
                Ok(Signal::Bookmark) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
