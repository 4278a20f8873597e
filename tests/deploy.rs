//! The packaging is part of the product: CRDs match the Rust types, the DaemonSet mounts exactly
//! what the agent writes, RBAC stays least-privilege, the systemd unit is hardened.
//! `MIRRORCONF_BLESS=1 cargo test --test deploy` regenerates deploy/crds/ from the types.

use clap::Parser;
use mirrorconf::cli::{Cli, Command, RunArgs};
use serde_yaml_ng::Value;
use std::fs;
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn docs(p: &str) -> Vec<Value> {
    let text = fs::read_to_string(repo(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{p}: {e}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

/// The host folders a pod mounts, sorted.
fn host_paths(pod: &Value) -> Vec<&str> {
    let mut paths: Vec<&str> =
        pod["volumes"].as_sequence().unwrap().iter().filter_map(|v| v["hostPath"]["path"].as_str()).collect();
    paths.sort();
    paths
}

fn args_of(container: &Value) -> Vec<&str> {
    container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect()
}

/// The arguments as the image's entrypoint, `mirrorconf`, parses them. (`--help` is no check:
/// clap prints help before it looks for conflicting or missing flags.)
fn parse_args(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("mirrorconf").chain(args.iter().copied()))
}

/// The container's arguments parse to `run` (an unknown, missing or conflicting flag would stop the
/// pod at once).
fn assert_args_parse(args: &[&str]) -> RunArgs {
    match parse_args(args) {
        Ok(Cli { command: Command::Run(run), .. }) => run,
        Ok(other) => panic!("{args:?} parses, but not to `run`: {other:?}"),
        Err(e) => panic!("{args:?} does not parse:\n{e}"),
    }
}

/// Every resource the manifest's ClusterRole names: what it may touch cluster-wide.
fn cluster_role_resources(all: &[Value]) -> Vec<&str> {
    find(all, "ClusterRole")[0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_sequence().unwrap())
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn crds_match_the_types() {
    let generated: Vec<String> =
        mirrorconf::model::custom_resource_definitions().iter().map(|c| serde_yaml_ng::to_string(c).unwrap()).collect();
    let text = format!(
        "# Generated from src/model by `MIRRORCONF_BLESS=1 cargo test --test deploy`. Apply only on clusters\n# that do not have these kinds (OpenShift has them already).\n{}",
        generated.join("---\n")
    );
    let path = repo("deploy/crds/mirror-kinds.yaml");
    if std::env::var_os("MIRRORCONF_BLESS").is_some() {
        fs::write(&path, &text).unwrap();
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), text, "deploy/crds is stale: bless it");
    let crds = docs("deploy/crds/mirror-kinds.yaml");
    let names: Vec<&str> = crds.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "imagedigestmirrorsets.config.openshift.io",
            "imagetagmirrorsets.config.openshift.io",
            "imagecontentsourcepolicies.operator.openshift.io",
            "images.config.openshift.io"
        ]
    );
    assert!(crds.iter().all(|c| c["spec"]["scope"] == "Cluster"));
}

#[test]
fn the_daemonset_mounts_exactly_what_the_agent_writes() {
    let all = docs("deploy/daemonset.yaml");
    let ds = find(&all, "DaemonSet")[0];
    let pod = &ds["spec"]["template"]["spec"];
    let host_paths = host_paths(pod);
    assert_eq!(host_paths, ["/etc/containers", "/etc/docker/certs.d", "/var/lib/mirrorconf"]);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(pod["tolerations"][0]["operator"], "Exists", "runs on every node whatever its taints");
    assert!(c["resources"]["requests"]["memory"].as_str().is_some());
    let args = args_of(c);
    assert!(args.starts_with(&["run", "--kube"]), "{args:?}");
    let run = assert_args_parse(&args);
    assert_eq!(run.root.as_deref(), Some(Path::new("/host")), "{args:?}");
    for mount in c["volumeMounts"].as_sequence().unwrap() {
        assert!(mount["mountPath"].as_str().unwrap().starts_with("/host/"), "mounted under --root /host");
    }
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
}

#[test]
fn the_containerd_daemonset_mounts_exactly_the_certs_d_tree() {
    let all = docs("deploy/daemonset-containerd.yaml");
    let ds = find(&all, "DaemonSet")[0];
    let pod = &ds["spec"]["template"]["spec"];
    let host_paths = host_paths(pod);
    assert_eq!(host_paths, ["/etc/containerd/certs.d", "/var/lib/mirrorconf"]);
    assert!(pod["hostPID"].is_null(), "no CRI-O to signal");
    let c = &pod["containers"][0];
    let args = args_of(c);
    assert!(args.windows(2).any(|w| w == ["--target", "containerd"]) && !args.contains(&"--reload-crio"), "{args:?}");
    let run = assert_args_parse(&args);
    assert_eq!(run.root.as_deref(), Some(Path::new("/host")), "{args:?}");
    // Each mount holds what `render --target containerd` writes under --root /host.
    let dir = tempfile::tempdir().unwrap();
    let m = repo("examples/manifests");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorconf"))
        .args([
            "render",
            "--manifests",
            m.to_str().unwrap(),
            "--root",
            dir.path().to_str().unwrap(),
            "--target",
            "containerd",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mounts: Vec<&str> =
        c["volumeMounts"].as_sequence().unwrap().iter().map(|v| v["mountPath"].as_str().unwrap()).collect();
    for entry in std::fs::read_dir(dir.path().join("etc")).unwrap() {
        let top = format!("/host/etc/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(mounts.iter().any(|m| m.starts_with(&top)), "{top} is written but not mounted");
    }
    for m in &mounts {
        let rel = m.trim_start_matches("/host/");
        assert!(dir.path().join(rel).exists(), "{m} is mounted but nothing is written there");
    }
}

#[test]
fn rbac_is_least_privilege() {
    let all = docs("deploy/rbac.yaml");
    check_rules(&all);
    let roles = find(&all, "Role");
    assert!(
        roles.iter().any(|r| r["metadata"]["namespace"] == "openshift-config"),
        "configmaps only in openshift-config"
    );
    let cluster_resources = cluster_role_resources(&all);
    assert!(!cluster_resources.contains(&"configmaps") && !cluster_resources.contains(&"secrets"));
}

#[test]
fn the_windows_pusher_is_one_replica_with_least_privilege() {
    let all = docs("deploy/windows-push.yaml");
    check_rules(&all);
    let d = find(&all, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert!(
        pod["volumes"].as_sequence().unwrap().iter().all(|v| v["hostPath"].is_null()),
        "the pusher touches no node files"
    );
    let c = &pod["containers"][0];
    let args = args_of(c);
    assert!(args.starts_with(&["run", "--kube", "--windows-push"]), "{args:?}");
    let run = assert_args_parse(&args);
    assert!(run.windows_push.enabled);
    // --identity and --known-hosts are only required once pushing starts, so check them here.
    if let Err(e) = run.ssh.options() {
        panic!("{args:?}: {e}");
    }
    let ns_roles: Vec<&Value> = find(&all, "Role");
    let inventory =
        ns_roles.iter().find(|r| r["metadata"]["namespace"] == "openshift-windows-machine-config-operator").unwrap();
    assert_eq!(inventory["rules"][0]["resourceNames"][0], "windows-instances");
    let cluster_resources = cluster_role_resources(&all);
    assert!(
        !cluster_resources.contains(&"configmaps")
            && !cluster_resources.contains(&"secrets")
            && !cluster_resources.contains(&"leases")
    );
}

/// No wildcard anywhere; the only writes are Events, the agent's own Node (annotations, its taint) and the pusher's Lease;
/// secrets only by name.
fn check_rules(all: &[Value]) {
    for role in find(all, "ClusterRole").into_iter().chain(find(all, "Role")) {
        for rule in role["rules"].as_sequence().unwrap() {
            for field in ["verbs", "resources", "apiGroups"] {
                let values: Vec<&str> =
                    rule[field].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                assert!(!values.contains(&"*"), "{field} has * in {rule:?}");
            }
            let verbs: Vec<&str> = rule["verbs"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let resources: Vec<&str> =
                rule["resources"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let writes = verbs.iter().any(|v| !matches!(*v, "get" | "list" | "watch"));
            if writes {
                let lease_create = resources == ["leases"] && verbs == ["create"];
                let lease_update = resources == ["leases"]
                    && verbs == ["get", "update"]
                    && rule["resourceNames"][0] == "mirrorconf-windows-push";
                assert!(
                    resources == ["events"] && verbs == ["create", "patch"]
                        || resources == ["nodes"] && verbs == ["get", "patch"]
                        || lease_create
                        || lease_update,
                    "unexpected write: {rule:?}"
                );
            }
            if resources.contains(&"secrets") {
                assert_eq!(rule["resourceNames"][0], "pull-secret", "only the pull secret, by name");
            }
        }
    }
}

#[test]
fn kustomization_lists_every_manifest_and_they_parse() {
    let k = &docs("deploy/kustomization.yaml")[0];
    for r in k["resources"].as_sequence().unwrap() {
        let p = format!("deploy/{}", r.as_str().unwrap());
        assert!(!docs(&p).is_empty(), "{p}");
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_runs_the_agent() {
    let unit = fs::read_to_string(repo("systemd/mirrorconf.service")).unwrap();
    for line in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/etc/containers /var/lib/mirrorconf -/etc/docker/certs.d",
        "Before=crio.service kubelet.service",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line:?}");
    }
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let run = assert_args_parse(&args);
    assert_eq!(run.root.as_deref(), Some(Path::new("/")), "{exec}");
}

/// What the argument checks above catch: the shipped arguments plus one flag that clashes with
/// them. Each of these would make the agent exit at start, and each passed the old `--help` check.
#[test]
fn a_conflicting_flag_in_a_manifest_fails_the_argument_check() {
    let container_args = |p: &str, kind: &str| -> Vec<String> {
        let all = docs(p);
        let c = &find(&all, kind)[0]["spec"]["template"]["spec"]["containers"][0];
        args_of(c).into_iter().map(String::from).collect()
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        ("deploy/windows-push.yaml", "Deployment", &["--reload-crio"]),
        ("deploy/windows-push.yaml", "Deployment", &["--on-change", "true"]),
        ("deploy/daemonset.yaml", "DaemonSet", &["--manifests", "/etc/mirrorconf/manifests"]),
        ("deploy/daemonset-containerd.yaml", "DaemonSet", &["--windows-push"]),
    ];
    for (p, kind, extra) in cases {
        let mut args = container_args(p, kind);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = parse_args(&args).expect_err(&format!("{p}: {args:?} was accepted"));
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{p}: {args:?}: {e}");
    }
}
