//! The node agent as its DaemonSet runs it, against a real kube-apiserver (tests/common/cluster.rs):
//! the variant applied with `kubectl apply -k`, the agent started with its DaemonSet's container
//! args, authenticated as its ServiceAccount with only the shipped RBAC, by a token bound to a Pod
//! on its Node as the kubelet would give it. What the server saw is read from its audit log.

mod common;

use common::cluster::ControlPlane;
use common::kube_agent::KubeAgent;
use common::{free_port, http_get, kustomize, status_kube, wait_until};
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const PENDING: &str = "mirrorconf.io/registries-pending";
const SA: &str = "system:serviceaccount:mirrorconf:mirrorconf";

fn idms(name: &str, source: &str, mirror: &str) -> Value {
    json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet", "metadata": {"name": name},
           "spec": {"imageDigestMirrors": [{"source": source, "mirrors": [mirror]}]}})
}

fn taint_keys(cp: &ControlPlane, node: &str) -> Vec<String> {
    let n = cp.get("v1", "Node", "", node).expect("the node");
    n["spec"]["taints"].as_array().into_iter().flatten().map(|t| t["key"].as_str().unwrap().to_string()).collect()
}

fn annotation(cp: &ControlPlane, node: &str, key: &str) -> Option<String> {
    cp.get("v1", "Node", "", node)?["metadata"]["annotations"][key].as_str().map(String::from)
}

/// A stand-in for CRI-O's process (its `comm` is `crio`) that records each SIGHUP, so that
/// `--reload-crio` has a process to signal; the real CRI-O is in the runtimes' tests. Its agent
/// looks for it under `proc_root`, which links only this pid: tests run in parallel, and the
/// agent rightly refuses to guess between several CRI-O main processes.
struct FakeCrio {
    child: Child,
    hups: PathBuf,
    proc_root: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeCrio {
    fn start() -> FakeCrio {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("crio");
        let hups = dir.path().join("hups");
        fs::write(
            &script,
            format!("#!/bin/bash\ntrap 'echo hup >> {}' HUP\nwhile :; do sleep 0.05; done\n", hups.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let child = Command::new(&script).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
        let comm = format!("/proc/{}/comm", child.id());
        wait_until(5, "the stand-in's comm", || fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "crio"));
        let proc_root = dir.path().join("proc");
        fs::create_dir(&proc_root).unwrap();
        std::os::unix::fs::symlink(format!("/proc/{}", child.id()), proc_root.join(child.id().to_string())).unwrap();
        FakeCrio { child, hups, proc_root, _dir: dir }
    }

    fn hups(&self) -> usize {
        fs::read_to_string(&self.hups).unwrap_or_default().lines().count()
    }
}

impl Drop for FakeCrio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DaemonSet of a variant, as `kubectl kustomize` builds it.
fn daemonset(variant: &str) -> Value {
    kustomize::build(&kustomize::repo(&format!("deploy/kubernetes/{variant}")))
        .into_iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("the variant's DaemonSet")
}

/// The Pod the DaemonSet controller would make on `node` (no controller-manager runs here), as
/// the admin creates it; its uid binds the agent's token.
fn pod_on(cp: &ControlPlane, ds: &Value, node: &str) -> String {
    let mut spec = ds["spec"]["template"]["spec"].clone();
    spec["nodeName"] = json!(node);
    let name = format!("mirrorconf-{node}");
    cp.apply(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "mirrorconf", "labels": ds["spec"]["template"]["metadata"]["labels"]},
                    "spec": spec}));
    name
}

/// The agent with the DaemonSet's own container args (the host root and the listen address
/// moved to this test's), as the ServiceAccount, with a token bound to its Pod.
fn start_agent(
    cp: &ControlPlane,
    ds: &Value,
    node: &str,
    root_flag_value: &str,
    crio: &FakeCrio,
) -> (KubeAgent, std::net::SocketAddr) {
    let pod = pod_on(cp, ds, node);
    let token = cp.token("mirrorconf", "mirrorconf", Some(&pod));
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert_eq!(&args[..3], ["run", "--kube", "--root"], "the DaemonSet runs the node agent: {args:?}");
    assert_eq!(args[3], root_flag_value);
    // KubeAgent passes `run --kube --root <its temp root>` itself.
    args.drain(..4);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
    let listen = args.iter().position(|a| a == "--listen").expect("--listen");
    args[listen + 1] = addr.to_string();
    args.extend(["--proc-root".to_string(), crio.proc_root.to_str().unwrap().to_string()]);
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = KubeAgent::start(|path| cp.write_token_kubeconfig(path, &token), node, &extra);
    wait_until(60, "readyz", || http_get(addr, "/readyz").is_some_and(|(s, _)| s == 200));
    (agent, addr)
}

fn forbidden(cp: &ControlPlane, user: &str) -> Vec<String> {
    cp.forbidden(user, "")
}

#[test]
fn the_crio_agent_as_its_daemonset_runs_it() {
    let cp = ControlPlane::start();
    let crio = FakeCrio::start();
    cp.kubectl_ok(&["apply", "--server-side", "-k", kustomize::repo("deploy/kubernetes/crio").to_str().unwrap()]);
    cp.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    cp.apply(idms("release", "quay.io/release", "m1.corp/release"));
    // The kubelet registers the node with the taint (--register-with-taints); another's taint too.
    cp.node(
        "node-1",
        json!({"spec": {"taints": [{"key": PENDING, "effect": "NoSchedule"}, {"key": "other.io/keep", "effect": "NoSchedule"}]}}),
    );
    cp.node("node-2", json!({}));

    let ds = daemonset("crio");
    // --reload-crio finds CRI-O in this machine's /proc: the stand-in is there.
    let (agent, addr) = start_agent(&cp, &ds, "node-1", "/host", &crio);
    let conf = |a: &KubeAgent| a.conf();

    // First apply: files, then the taint goes (and only ours), then the annotations.
    wait_until(60, "the first render", || conf(&agent).contains("m1.corp/release"));
    wait_until(60, "the pending taint lifted", || !taint_keys(&cp, "node-1").contains(&PENDING.to_string()));
    // Another writer's taint stays, and so does the one the server's admission added on create
    // (TaintNodesByCondition: not-ready, until a kubelet reports).
    assert_eq!(taint_keys(&cp, "node-1"), ["other.io/keep", "node.kubernetes.io/not-ready"]);
    wait_until(60, "the annotations", || annotation(&cp, "node-1", "mirrorconf.io/policy-fingerprint").is_some());
    assert!(crio.hups() >= 1, "CRI-O was reloaded after registries.conf changed");
    let first = annotation(&cp, "node-1", "mirrorconf.io/policy-fingerprint").unwrap();

    // A change followed.
    cp.apply(idms("release", "quay.io/release", "m2.corp/release"));
    wait_until(60, "the change", || {
        conf(&agent).contains("m2.corp/release") && !conf(&agent).contains("m1.corp/release")
    });
    wait_until(60, "the new fingerprint", || {
        annotation(&cp, "node-1", "mirrorconf.io/policy-fingerprint").is_some_and(|f| f != first)
    });

    // `status --wait` as the admin: node-1 current, node-2 runs no agent (selected out by label).
    cp.merge_patch("v1", "Node", "", "node-1", json!({"metadata": {"labels": {"pool": "mirrors"}}}));
    let out = status_kube(&cp.kubeconfig(), &["-l", "pool=mirrors", "--wait", "--timeout", "30s"]);
    assert!(
        out.status.success(),
        "status --wait: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A cross-object refusal the server cannot make: an Event, and the last good files stay.
    let good = conf(&agent);
    cp.apply(
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet", "metadata": {"name": "clash"},
                    "spec": {"imageTagMirrors": [{"source": "quay.io/release", "mirrors": ["t.corp/release"],
                                                   "mirrorSourcePolicy": "NeverContactSource"}]}}),
    );
    wait_until(60, "an Event about the refused input", || {
        cp.list("events.k8s.io/v1", "Event", "").iter().any(|e| {
            e["note"].as_str().is_some_and(|n| n.contains("conflicting mirrorSourcePolicy"))
                && e["reportingController"].as_str().is_some_and(|c| c.contains("mirrorconf"))
        })
    });
    wait_until(60, "the input annotation says refused", || {
        annotation(&cp, "node-1", "mirrorconf.io/input").is_some_and(|v| v.starts_with("refused"))
    });
    assert_eq!(conf(&agent), good, "the last good files stay");
    let metrics = http_get(addr, "/metrics").unwrap().1;
    assert!(metrics.contains("mirrorconf_"), "{metrics}");

    // Nothing the agent asked for was forbidden: its RBAC covers every call it makes.
    assert_eq!(forbidden(&cp, SA), Vec::<String>::new(), "agent log:\n{}", agent.log());
    let verbs: Vec<String> = cp.requests_by(SA).iter().map(|e| e["verb"].as_str().unwrap().to_string()).collect();
    assert!(verbs.contains(&"watch".to_string()) && verbs.contains(&"patch".to_string()), "{verbs:?}");
    drop(agent);
}

#[test]
fn the_agents_service_account_can_do_only_what_it_needs() {
    let cp = ControlPlane::shared();
    cp.kubectl_ok(&["apply", "--server-side", "-k", kustomize::repo("deploy/kubernetes/containerd").to_str().unwrap()]);
    let ds = daemonset("containerd");
    cp.node("rbac-node", json!({}));
    let pod = pod_on(cp, &ds, "rbac-node");
    let token = cp.token("mirrorconf", "mirrorconf", Some(&pod));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("sa.kubeconfig");
    cp.write_token_kubeconfig(&kubeconfig, &token);
    let can = |args: &[&str]| -> bool {
        let mut a = vec!["auth", "can-i"];
        a.extend(args);
        let out = cp.kubectl_as(&kubeconfig, &a, None);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let yes: &[&[&str]] = &[
        &["watch", "imagedigestmirrorsets.config.openshift.io"],
        &["list", "imagetagmirrorsets.config.openshift.io"],
        &["watch", "imagecontentsourcepolicies.operator.openshift.io"],
        &["get", "images.config.openshift.io/cluster"],
        &["watch", "configmaps", "-n", "openshift-config"],
        &["get", "secrets/pull-secret", "-n", "openshift-config"],
        &["patch", "nodes/rbac-node"],
        &["create", "events.events.k8s.io", "-n", "default"],
    ];
    let no: &[&[&str]] = &[
        &["get", "secrets", "-n", "openshift-config"],
        &["get", "secrets/other", "-n", "openshift-config"],
        &["list", "secrets", "-A"],
        &["get", "secrets", "-n", "mirrorconf"],
        &["delete", "nodes/rbac-node"],
        &["create", "nodes"],
        &["create", "clusterroles"],
        &["create", "clusterrolebindings"],
        &["patch", "roles", "-n", "mirrorconf"],
        &["create", "pods", "-n", "mirrorconf"],
        &["update", "imagedigestmirrorsets.config.openshift.io"],
        &["delete", "configmaps", "-n", "openshift-config"],
    ];
    let mut wrong = Vec::new();
    for a in yes {
        if !can(a) {
            wrong.push(format!("cannot {a:?}, which it needs"));
        }
    }
    for a in no {
        if can(a) {
            wrong.push(format!("can {a:?}, which it does not need"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // RBAC lets it patch every Node; the variant's admission policy confines it to its own, and
    // there to its annotations and its own taint.
    cp.node("other-node", json!({}));
    cp.merge_patch("v1", "Node", "", "rbac-node", json!({"spec": {"taints": [
        {"key": "mirrorconf.io/registries-pending", "effect": "NoSchedule"}, {"key": "other.io/keep", "effect": "NoSchedule"}]}}));
    let as_agent = |args: &[&str]| {
        let out = cp.kubectl_as(&kubeconfig, args, None);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // The policy takes effect once the server has loaded it.
    wait_until(30, "the own-node policy in force", || {
        let (ok, err) = as_agent(&["annotate", "node", "other-node", "mirrorconf.io/policy-fingerprint=x"]);
        !ok && err.contains("may write only the Node its pod runs on (rbac-node), not other-node")
    });
    let refused: &[(&[&str], &str)] = &[
        (&["label", "node", "rbac-node", "pool=stolen"], "may not change a Node's labels"),
        (&["annotate", "node", "rbac-node", "other.io/x=1"], "may only change annotations under mirrorconf.io/"),
        (
            &["taint", "node", "rbac-node", "other.io/keep-"],
            "may only remove the mirrorconf.io/registries-pending taint",
        ),
        (
            &["taint", "node", "rbac-node", "new.io/t=1:NoSchedule"],
            "may only remove the mirrorconf.io/registries-pending taint",
        ),
    ];
    for (args, why) in refused {
        let (ok, err) = as_agent(args);
        assert!(!ok && err.contains(why), "kubectl {args:?} as the agent (succeeded: {ok}): {err}");
    }
    // kubectl cordon exits 0 when the server refuses it: the message and the Node say it.
    let (_, err) = as_agent(&["cordon", "rbac-node"]);
    assert!(err.contains("may not change a Node's labels or schedulability"), "{err}");
    assert!(cp.get("v1", "Node", "", "rbac-node").unwrap()["spec"]["unschedulable"].is_null());
    for args in [
        &["annotate", "node", "rbac-node", "mirrorconf.io/policy-fingerprint=x"][..],
        &["taint", "node", "rbac-node", "mirrorconf.io/registries-pending-"][..],
    ] {
        let (ok, err) = as_agent(args);
        assert!(ok, "kubectl {args:?} as the agent was refused: {err}");
    }
    let whoami = cp.kubectl_as(&kubeconfig, &["auth", "whoami", "-o", "json"], None);
    let who: Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], SA);
    // The kubelet-style token carries the node's name, which node-scoped admission reads.
    assert_eq!(who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/node-name"], json!(["rbac-node"]));
}

/// Applies the crio variant, registers `node` with the pending taint, and starts its agent.
fn crio_node(cp: &ControlPlane, node: &str, crio: &FakeCrio) -> (KubeAgent, std::net::SocketAddr) {
    cp.kubectl_ok(&["apply", "--server-side", "-k", kustomize::repo("deploy/kubernetes/crio").to_str().unwrap()]);
    cp.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    cp.node(node, json!({"spec": {"taints": [{"key": PENDING, "effect": "NoSchedule"}]}}));
    start_agent(cp, &daemonset("crio"), node, "/host", crio)
}

fn lists_by_agent(cp: &ControlPlane) -> usize {
    cp.requests_by(SA).iter().filter(|e| e["verb"] == "list").count()
}

#[test]
fn a_restarted_api_server_and_a_compacted_history_lose_no_change() {
    let cp = ControlPlane::start();
    let crio = FakeCrio::start();
    cp.install_crds();
    cp.apply(idms("release", "quay.io/release", "m1.corp/release"));
    let (mut agent, _) = crio_node(&cp, "node-1", &crio);
    wait_until(60, "the first render", || agent.conf().contains("m1.corp/release"));
    let lists = lists_by_agent(&cp);

    // While the agent's API server is down, the change lands through another API server on the
    // same etcd (an HA control plane), and etcd's history is compacted past everything the agent
    // has seen: its watches must start again from a fresh list, not from their old resourceVersion.
    let (second, second_kubeconfig) = cp.second_apiserver();
    cp.stop_apiserver();
    let change = idms("release", "quay.io/release", "m2.corp/release").to_string();
    let out = cp.kubectl_as(&second_kubeconfig, &["apply", "-f", "-"], Some(&change));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let compacted = cp.compact();
    drop(second);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(agent.conf().contains("m1.corp/release"), "no API server the agent can reach has been up");
    assert_eq!(forbidden(&cp, SA), Vec::<String>::new());
    cp.start_apiserver();
    // A restarted API server listens before its RBAC caches are filled, and answers 403 for that
    // moment: the agent's retries then are expected; once /readyz says 200 none may be refused.
    let ready = common::cluster::now_rfc3339();

    wait_until(60, "the change made while the server was down", || agent.conf().contains("m2.corp/release"));
    assert!(agent.running(), "the agent caught up without restarting:\n{}", agent.log());
    assert!(lists_by_agent(&cp) > lists, "the agent listed again after compaction at revision {compacted}");
    assert_eq!(cp.forbidden(SA, &ready), Vec::<String>::new());
}

#[test]
fn another_writer_on_the_node_keeps_its_change_while_the_agent_lifts_its_taint() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cp = Arc::new(ControlPlane::start());
    let crio = FakeCrio::start();
    cp.install_crds();
    cp.apply(idms("release", "quay.io/release", "m1.corp/release"));
    // Writers that keep changing node-1 (labels) while the agent reads it and writes its taint
    // removal, and that add a taint of their own in the middle of it.
    let stop = Arc::new(AtomicBool::new(false));
    cp.kubectl_ok(&["apply", "--server-side", "-k", kustomize::repo("deploy/kubernetes/crio").to_str().unwrap()]);
    cp.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    cp.node("node-1", json!({"spec": {"taints": [{"key": PENDING, "effect": "NoSchedule"}]}}));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (cp, stop) = (Arc::clone(&cp), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    cp.merge_patch(
                        "v1",
                        "Node",
                        "",
                        "node-1",
                        json!({"metadata": {"labels": {format!("writer-{w}"): n.to_string()}}}),
                    );
                }
                n
            })
        })
        .collect();
    let (agent, _) = start_agent(&cp, &daemonset("crio"), "node-1", "/host", &crio);
    // Another writer's taint, added by a read-modify-write of its own (retried on conflict, as
    // every writer must) while the agent works.
    for attempt in 0.. {
        let mut node = cp.get("v1", "Node", "", "node-1").unwrap();
        node["spec"]["taints"].as_array_mut().unwrap().push(json!({"key": "other.io/late", "effect": "NoSchedule"}));
        match cp.try_replace(node) {
            Ok(_) => break,
            Err(e) => assert!(attempt < 200, "{e}"),
        }
    }
    // The writers go on until the agent's first conditional writes have met them, then stop: the
    // agent gives up after 5 conflicts in a row and backs off, so writers that never stop (on a
    // loaded machine, a slow agent) could starve it, which is not what this test is about.
    wait_until(60, "the agent's first write of its Node", || {
        cp.requests_by(SA).iter().any(|e| e["verb"] == "patch" && e["objectRef"]["resource"] == "nodes")
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    wait_until(90, "the pending taint lifted", || !taint_keys(&cp, "node-1").contains(&PENDING.to_string()));
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let keys = taint_keys(&cp, "node-1");
    assert!(keys.contains(&"other.io/late".to_string()), "another writer's taint was lost: {keys:?}");
    let conflicts =
        cp.requests_by(SA).iter().filter(|e| e["verb"] == "patch" && e["responseStatus"]["code"] == 409).count();
    eprintln!("{writes} concurrent writes; the agent's conditional writes met {conflicts} conflicts");
    assert_eq!(forbidden(&cp, SA), Vec::<String>::new(), "{}", agent.log());
}

#[test]
fn status_reads_a_fleet_of_500_nodes_in_a_few_requests() {
    let cp = ControlPlane::start();
    let crio = FakeCrio::start();
    cp.install_crds();
    cp.apply(idms("release", "quay.io/release", "m1.corp/release"));
    // One real agent reports; 499 more Nodes carry what agents in every state would write.
    let (agent, _) = crio_node(&cp, "n-000", &crio);
    wait_until(60, "the agent's annotations", || {
        annotation(&cp, "n-000", "mirrorconf.io/policy-fingerprint").is_some()
    });
    let reported = cp.get("v1", "Node", "", "n-000").unwrap()["metadata"]["annotations"].clone();
    let mut want =
        std::collections::BTreeMap::from([("current", 1), ("pending", 0), ("refused", 0), ("not reporting", 0)]);
    let mut list = Vec::new();
    for i in 1..500 {
        let mut annotations = reported.clone();
        let state = match i {
            1..=299 => "current",
            300..=399 => {
                annotations["mirrorconf.io/policy-fingerprint"] = json!("0".repeat(64));
                "pending"
            }
            400..=449 => {
                annotations["mirrorconf.io/input"] = json!("refused");
                "refused"
            }
            _ => {
                annotations = json!({});
                "not reporting"
            }
        };
        *want.get_mut(state).unwrap() += 1;
        list.push(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("n-{i:03}"), "annotations": annotations}}));
    }
    let out = cp.kubectl_as(
        &cp.kubeconfig(),
        &["create", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": list}).to_string()),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // status as a non-admin identity that may only list Nodes, so its requests stand apart in the log.
    cp.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "fleet-viewer"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "get", "watch"]},
                  {"apiGroups": ["config.openshift.io", "operator.openshift.io"], "resources": ["*"], "verbs": ["list", "get", "watch"]},
                  {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["list", "get", "watch"]}]}));
    cp.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "fleet-viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "fleet-viewer"},
        "subjects": [{"kind": "User", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"}]}));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("viewer");
    cp.write_token_kubeconfig(&kubeconfig, common::cluster::TOKEN_USERS[0].0);
    let started = std::time::Instant::now();
    let out = status_kube(&kubeconfig, &["--output", "json", "--all"]);
    let took = started.elapsed();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(out.status.code(), Some(1), "not every node is current");
    for (state, n) in &want {
        assert_eq!(summary["counts"][state], json!(n), "{state}: {}", summary["counts"]);
    }
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 500);
    let requests = cp.requests_by("viewer");
    let per_kind: std::collections::BTreeMap<String, usize> = requests.iter().fold(Default::default(), |mut m, e| {
        *m.entry(format!("{} {}", e["verb"].as_str().unwrap(), e["objectRef"]["resource"].as_str().unwrap_or("?")))
            .or_default() += 1;
        m
    });
    eprintln!("status over 500 Nodes: {took:?}, {} requests: {per_kind:?}", requests.len());
    // A list (and a watch) of Nodes, never a request per Node. (A one-shot status also opens the
    // watches --wait needs: a list per kind would do; the reshaping of one-shot commands is due.)
    let on_nodes = requests.iter().filter(|e| e["objectRef"]["resource"] == "nodes").count();
    assert!(on_nodes <= 2, "{on_nodes} requests on Nodes: {per_kind:?}");
    assert!(requests.len() < 25, "{} requests for 500 Nodes: {per_kind:?}", requests.len());
    assert_eq!(cp.forbidden("viewer", ""), Vec::<String>::new(), "status needs no more than reading");
    drop(agent);
}
