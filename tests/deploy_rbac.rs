//! Least privilege, checked on what `kubectl kustomize` builds for every variant and for the vanilla
//! variants with the Windows pusher added: no wildcard, no write but Events, the agent's own Node
//! annotation and the pusher's Lease; Secrets only the pull secret, by name, and only for what
//! renders hosts.toml; ConfigMaps only in named namespaces; no grant unbound, no binding dangling.

mod common;

use clap::Parser;
use common::kustomize::{build, build_overlay, of_kind, pods, repo, strings};
use mirrorconf::cli::{Cli, Command};
use mirrorconf::render::Target;
use serde_json::Value;

fn builds() -> Vec<(String, Vec<Value>)> {
    let mut out: Vec<(String, Vec<Value>)> =
        ["kubernetes/crio", "kubernetes/containerd", "kubernetes/k3s", "openshift"]
            .iter()
            .map(|d| (d.to_string(), build(&repo("deploy").join(d))))
            .collect();
    for v in ["kubernetes/crio", "kubernetes/containerd"] {
        let text = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [\"{{deploy}}/{v}\"]\ncomponents: [\"{{deploy}}/components/windows-push\", \"{{deploy}}/components/monitoring\"]\n"
        );
        out.push((format!("{v} + windows-push + monitoring"), build_overlay(&text)));
    }
    out
}

/// Every (Cluster)Role with its namespace ("" for a ClusterRole).
fn roles(all: &[Value]) -> Vec<(&str, &str, &Value)> {
    all.iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .map(|r| (r["metadata"]["name"].as_str().unwrap(), r["metadata"]["namespace"].as_str().unwrap_or(""), r))
        .collect()
}

/// The rules a ServiceAccount gets through every binding, each with the namespace it holds in.
fn grants<'a>(all: &'a [Value], sa: &str) -> Vec<(&'a str, &'a Value)> {
    let roles = roles(all);
    let mut out = Vec::new();
    for b in all.iter().filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding") {
        if !b["subjects"].as_array().unwrap().iter().any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa) {
            continue;
        }
        let ns = b["metadata"]["namespace"].as_str().unwrap_or("");
        let want_ns = if b["roleRef"]["kind"] == "ClusterRole" { "" } else { ns };
        let role = roles.iter().find(|(n, rns, _)| b["roleRef"]["name"] == *n && *rns == want_ns);
        let (_, _, role) =
            role.unwrap_or_else(|| panic!("{} refers to a role that is not installed", b["metadata"]["name"]));
        out.extend(role["rules"].as_array().unwrap().iter().map(|r| (ns, r)));
    }
    out
}

#[test]
fn every_rule_is_narrow() {
    for (dir, all) in builds() {
        for (name, ns, role) in roles(&all) {
            for rule in role["rules"].as_array().unwrap() {
                for field in ["verbs", "resources", "apiGroups"] {
                    assert!(!strings(&rule[field]).contains(&"*"), "{dir}: {name}: {field} has *");
                }
                let verbs = strings(&rule["verbs"]);
                let resources = strings(&rule["resources"]);
                let names = strings(&rule["resourceNames"]);
                if verbs.iter().any(|v| !matches!(*v, "get" | "list" | "watch")) {
                    let allowed = (resources == ["events"] && verbs == ["create", "patch"])
                        || (resources == ["nodes"] && verbs == ["get", "patch"])
                        || (resources == ["nodes"] && verbs == ["get", "list", "watch", "patch"])
                        || (resources == ["leases"] && verbs == ["create"])
                        || (resources == ["leases"]
                            && verbs == ["get", "update"]
                            && names == ["mirrorconf-windows-push"])
                        || (resources == ["configmaps"] && verbs == ["create"] && !ns.is_empty())
                        || (resources == ["configmaps"]
                            && verbs == ["get", "update"]
                            && names == ["mirrorconf-windows-push-hosts-0"]);
                    assert!(allowed, "{dir}: {name}: unexpected write {rule}");
                }
                if resources.contains(&"secrets") {
                    assert_eq!(names, ["pull-secret"], "{dir}: {name}: only the pull secret, by name");
                    assert_eq!(ns, "openshift-config", "{dir}: {name}");
                }
                if resources.contains(&"configmaps") {
                    assert!(!ns.is_empty(), "{dir}: {name}: ConfigMaps never cluster-wide");
                }
            }
        }
    }
}

#[test]
fn every_grant_is_used_and_every_binding_points_at_an_installed_role() {
    for (dir, all) in builds() {
        let bindings: Vec<&Value> =
            all.iter().filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding").collect();
        for (name, ns, _) in roles(&all) {
            let bound = bindings.iter().any(|b| {
                b["roleRef"]["name"] == name
                    && (ns.is_empty() == (b["roleRef"]["kind"] == "ClusterRole"))
                    && (ns.is_empty() || b["metadata"]["namespace"] == ns)
            });
            assert!(bound, "{dir}: {name} ({ns}) is granted to nobody");
        }
        let accounts: Vec<&str> =
            of_kind(&all, "ServiceAccount").iter().map(|a| a["metadata"]["name"].as_str().unwrap()).collect();
        for (workload, pod) in pods(&all) {
            let sa = pod["serviceAccountName"].as_str().unwrap();
            assert!(accounts.contains(&sa), "{dir}: {workload} runs as {sa}, which is not installed");
            let _ = grants(&all, sa); // panics on a dangling binding
        }
        for sa in accounts {
            assert!(pods(&all).iter().any(|(_, p)| p["serviceAccountName"] == sa), "{dir}: {sa} is used by nothing");
        }
    }
}

/// What each workload may do follows from its arguments: the pull secret only where hosts.toml is
/// rendered, Node reads, Leases and host reports only for the pusher.
#[test]
fn each_workload_gets_only_what_its_arguments_need() {
    for (dir, all) in builds() {
        for (workload, pod) in pods(&all) {
            let c = &pod["containers"][0];
            let args = strings(&c["args"]);
            let Ok(Cli { command: Command::Run(run), .. }) =
                Cli::try_parse_from(std::iter::once("mirrorconf").chain(args))
            else {
                panic!("{dir}: {workload}: arguments do not parse to run")
            };
            let grants = grants(&all, pod["serviceAccountName"].as_str().unwrap());
            let can = |verb: &str, resource: &str| {
                grants
                    .iter()
                    .any(|(_, r)| strings(&r["verbs"]).contains(&verb) && strings(&r["resources"]).contains(&resource))
            };
            let hosts_toml = run.windows_push.enabled || run.targets.iter().any(|t| *t != Target::Linux);
            assert_eq!(
                can("get", "secrets"),
                hosts_toml,
                "{dir}: {workload}: the pull secret iff hosts.toml is rendered"
            );
            // The agent annotates its own Node; the pusher the Windows Nodes it pushes to.
            assert!(can("patch", "nodes"), "{dir}: {workload}: fleet-view annotations and the pending taint");
            assert_eq!(
                can("list", "nodes"),
                run.windows_push.enabled,
                "{dir}: {workload}: only the pusher lists Nodes"
            );
            assert_eq!(
                can("update", "configmaps"),
                run.windows_push.enabled,
                "{dir}: {workload}: only the pusher writes host reports"
            );
            assert_eq!(
                can("update", "leases"),
                run.windows_push.enabled,
                "{dir}: {workload}: only the pusher elects a leader"
            );
            for kind in ["imagedigestmirrorsets", "imagetagmirrorsets", "imagecontentsourcepolicies", "images"] {
                assert!(can("watch", kind), "{dir}: {workload}: must read {kind}");
            }
            assert!(can("watch", "configmaps") && can("create", "events"), "{dir}: {workload}");
        }
    }
}
