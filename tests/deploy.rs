//! The packaging is part of the product. Every kustomize variant under deploy/ is built with the real
//! `kubectl kustomize` (tests/common/kustomize.rs says which kubectl), and what it prints is checked:
//! the kinds each variant installs, the arguments as the binary parses them, the host folders each
//! DaemonSet mounts against what the agent writes for its target, and the image. RBAC is checked in
//! tests/deploy_rbac.rs.

mod common;

use clap::Parser;
use common::kustomize::{build, build_overlay, docs, of_kind, pods, repo, strings};
use mirrorconf::cli::{Cli, Command, RunArgs};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every variant: its folder, whether it installs the CRDs, and its workloads.
const VARIANTS: &[(&str, bool, &[&str])] = &[
    ("kubernetes/crio", true, &["mirrorconf"]),
    ("kubernetes/containerd", true, &["mirrorconf-containerd"]),
    ("kubernetes/k3s", true, &["mirrorconf-containerd"]),
    ("kubernetes/rke2", true, &["mirrorconf-containerd"]),
    ("openshift", false, &["mirrorconf-windows-push"]),
];

fn variant(dir: &str) -> Vec<Value> {
    build(&repo("deploy").join(dir))
}

/// The arguments as the image's entrypoint, `mirrorconf`, parses them. (`--help` is no check: clap
/// prints help before it looks for conflicting or missing flags.)
fn parse_args(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("mirrorconf").chain(args.iter().copied()))
}

/// The container's arguments parse to `run`; an unknown, missing or conflicting flag would stop the
/// pod at once. Flags only checked when the job starts (the pusher's SSH files) are checked too.
fn run_args(container: &Value) -> RunArgs {
    let args = strings(&container["args"]);
    let run = match parse_args(&args) {
        Ok(Cli { command: Command::Run(run), .. }) => run,
        Ok(other) => panic!("{args:?} parses, but not to `run`: {other:?}"),
        Err(e) => panic!("{args:?} does not parse:\n{e}"),
    };
    if let Err(e) = run.config() {
        panic!("{args:?}: {e}");
    }
    run
}

/// Every file below `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn every_kustomization_under_deploy_is_a_tested_variant_or_a_part() {
    let parts = ["base", "api"];
    let mut found = Vec::new();
    for p in files_under(&repo("deploy")) {
        if p.file_name().unwrap() == "kustomization.yaml" {
            let rel = p.parent().unwrap().strip_prefix(repo("deploy")).unwrap().to_string_lossy().into_owned();
            let kind = docs(&std::fs::read_to_string(&p).unwrap())[0]["kind"].as_str().unwrap().to_string();
            found.push((rel, kind));
        }
    }
    for (rel, kind) in &found {
        let known = match kind.as_str() {
            "Component" => rel.starts_with("components/"),
            _ => parts.contains(&rel.as_str()) || VARIANTS.iter().any(|v| v.0 == rel),
        };
        assert!(known, "deploy/{rel} ({kind}) is neither a variant in VARIANTS nor a part");
    }
    assert!(!repo("deploy/kustomization.yaml").exists(), "deploy/ itself is no variant: which runtime would it pick?");
}

#[test]
fn each_variant_installs_what_it_says() {
    for (dir, crds, workloads) in VARIANTS {
        let all = variant(dir);
        let crd_names: BTreeSet<&str> =
            of_kind(&all, "CustomResourceDefinition").iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
        if *crds {
            let want = [
                "imagecontentsourcepolicies.operator.openshift.io",
                "imagedigestmirrorsets.config.openshift.io",
                "images.config.openshift.io",
                "imagetagmirrorsets.config.openshift.io",
            ];
            assert_eq!(crd_names, want.into_iter().collect(), "{dir}");
        } else {
            assert!(crd_names.is_empty(), "{dir}: OpenShift has these CRDs; its own must not be replaced");
        }
        let names: Vec<&str> = pods(&all).iter().map(|(n, _)| *n).collect();
        assert_eq!(&names, workloads, "{dir}: the workloads (the Windows pusher is off unless asked for)");
        for kind in ["PodMonitor", "PrometheusRule", "Secret"] {
            assert!(
                of_kind(&all, kind).is_empty(),
                "{dir}: {kind} is opt-in (it needs something the cluster may lack)"
            );
        }
        // What each object names in a namespace, the variant creates (or OpenShift has).
        let created: BTreeSet<&str> =
            of_kind(&all, "Namespace").iter().map(|n| n["metadata"]["name"].as_str().unwrap()).collect();
        for o in &all {
            if let Some(ns) = o["metadata"]["namespace"].as_str() {
                let openshift_has = !*crds && ns.starts_with("openshift-");
                assert!(
                    created.contains(ns) || openshift_has,
                    "{dir}: {} in namespace {ns}, which it does not create",
                    o["kind"]
                );
            }
        }
    }
}

#[test]
fn the_daemonsets_mount_exactly_what_the_agent_writes_for_their_target() {
    let inputs = [
        "examples/manifests",
        "tests/fixtures/cases/cas-all-targets/manifests.yaml",
        "tests/fixtures/cases/linux-search-registries/manifests.yaml",
        "tests/fixtures/cases/linux-policy-json-allowed-over-node-file/manifests.yaml",
    ];
    for (dir, _, _) in VARIANTS {
        let all = variant(dir);
        for ds in of_kind(&all, "DaemonSet") {
            let pod = &ds["spec"]["template"]["spec"];
            let c = &pod["containers"][0];
            let run = run_args(c);
            assert_eq!(run.root.as_deref(), Some(Path::new("/host")), "{dir}");
            assert_eq!(pod["tolerations"][0]["operator"], "Exists", "{dir}: runs on every node whatever its taints");
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{dir}");
            assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false, "{dir}");
            assert_eq!(c["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{dir}");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{dir}");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{dir}");
            assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName", "{dir}");
            // The CRI-O reload needs the host's PID namespace; nothing else does.
            assert_eq!(pod["hostPID"] == true, run.reload_crio, "{dir}: hostPID only with --reload-crio");

            // Every file the agent writes for these targets lies under a mount, and every mount is
            // written: render each input with the same flags into a scratch root.
            let mut targets = Vec::new();
            for t in &run.targets {
                let name = clap::ValueEnum::to_possible_value(t).unwrap().get_name().to_string();
                targets.extend(["--target".to_string(), name]);
            }
            let mut written = BTreeSet::new();
            for input in inputs {
                let root = tempfile::tempdir().unwrap();
                let mut args = vec!["render".to_string(), "--manifests".into(), repo(input).display().to_string()];
                args.extend(["--root".into(), root.path().display().to_string()]);
                args.extend(targets.iter().cloned());
                let out = common::mirrorconf(&args.iter().map(String::as_str).collect::<Vec<_>>());
                assert!(out.status.success(), "{dir}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
                written.extend(common::tree(root.path()).into_iter().map(|f| format!("/host/{f}")));
            }
            let mounts: Vec<&str> =
                c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
            for f in &written {
                assert!(
                    mounts.iter().any(|m| f.starts_with(&format!("{m}/"))),
                    "{dir}: {f} is written but not mounted"
                );
            }
            for m in &mounts {
                assert!(
                    written.iter().any(|f| f.starts_with(&format!("{m}/"))),
                    "{dir}: {m} is mounted, never written"
                );
            }
            // Each mount is the host folder of the same path, except where a distribution's
            // containerd reads hosts.toml elsewhere.
            for m in c["volumeMounts"].as_array().unwrap() {
                let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == m["name"]).unwrap();
                let host = volume["hostPath"]["path"].as_str().unwrap();
                let inside = m["mountPath"].as_str().unwrap().strip_prefix("/host").unwrap();
                let want = match (*dir, inside) {
                    ("kubernetes/k3s", "/etc/containerd/certs.d") => {
                        "/var/lib/rancher/k3s/agent/etc/containerd/certs.d"
                    }
                    ("kubernetes/rke2", "/etc/containerd/certs.d") => {
                        "/var/lib/rancher/rke2/agent/etc/containerd/certs.d"
                    }
                    _ => inside,
                };
                assert_eq!(host, want, "{dir}: the host folder behind {inside}");
            }
        }
    }
}

#[test]
fn the_windows_pusher_is_one_replica_needing_only_its_secret() {
    let with_pusher = |resource: &str| {
        build_overlay(&format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [\"{{deploy}}/{resource}\"]\ncomponents: [\"{{deploy}}/components/windows-push\"]\n"
        ))
    };
    let readme = std::fs::read_to_string(repo("deploy/README.md")).unwrap();
    let mut builds = vec![("openshift", variant("openshift"))];
    for v in ["kubernetes/crio", "kubernetes/containerd"] {
        builds.push((v, with_pusher(v)));
    }
    for (dir, all) in builds {
        let d = of_kind(&all, "Deployment")[0];
        assert_eq!(d["spec"]["replicas"], 1, "{dir}");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{dir}");
        assert!(pod["volumes"].as_array().unwrap().iter().all(|v| v["hostPath"].is_null()), "{dir}: no node files");
        let run = run_args(&pod["containers"][0]);
        assert!(run.kube && run.windows_push.enabled, "{dir}");
        assert!(!run.ssh.take_over, "{dir}: never replaces files it did not write");
        let secret = pod["volumes"][0]["secret"]["secretName"].as_str().unwrap();
        assert_eq!(secret, "mirrorconf-windows-ssh", "{dir}");
        assert!(readme.contains(secret), "deploy/README.md says how to create {secret}");
        // The inventory it reads is the one its Role lets it read.
        let inventory = of_kind(&all, "Role")
            .into_iter()
            .find(|r| strings(&r["rules"][0]["resourceNames"]) == ["windows-instances"])
            .unwrap();
        assert_eq!(inventory["metadata"]["namespace"], run.windows_push.inventory_namespace.as_str(), "{dir}");
    }
    let openshift = variant("openshift");
    let pod = &of_kind(&openshift, "Deployment")[0]["spec"]["template"]["spec"];
    assert!(pod["securityContext"]["runAsUser"].is_null(), "restricted-v2 picks the user on OpenShift");
    assert_eq!(
        run_args(&pod["containers"][0]).windows_push.inventory_namespace,
        "openshift-windows-machine-config-operator"
    );
}

#[test]
fn every_image_is_the_local_build_until_an_overlay_names_a_registry() {
    let local = format!("localhost/mirrorconf:{}", env!("CARGO_PKG_VERSION"));
    let mut builds: Vec<(String, Vec<Value>)> = VARIANTS.iter().map(|v| (v.0.to_string(), variant(v.0))).collect();
    // The overlay deploy/README.md shows for a registry of one's own, as written there.
    let readme = std::fs::read_to_string(repo("deploy/README.md")).unwrap();
    let block = readme.split("<!-- own-registry-overlay").nth(1).expect("the marked overlay in deploy/README.md");
    let yaml = block.split("```yaml\n").nth(1).unwrap().split("```").next().unwrap();
    let own = build_overlay(&yaml.replace("../mirrorconf/deploy", "{deploy}"));
    for (dir, all) in builds.drain(..).chain([("README overlay".to_string(), own)]) {
        for (name, pod) in pods(&all) {
            for c in pod["containers"].as_array().unwrap() {
                let want: &str =
                    if dir == "README overlay" { "registry.corp.example/platform/mirrorconf:0.1.0" } else { &local };
                assert_eq!(c["image"], want, "{dir}: {name}");
                assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{dir}: {name}");
            }
        }
    }
}

/// The arguments checks above catch real mistakes: the shipped arguments plus one flag that clashes
/// with them are refused as a conflict (each of these passed the old `--help` check).
#[test]
fn a_conflicting_flag_in_a_manifest_fails_the_argument_check() {
    let container_args = |dir: &str, kind: &str| -> Vec<String> {
        let all = variant(dir);
        let c = &of_kind(&all, kind)[0]["spec"]["template"]["spec"]["containers"][0];
        strings(&c["args"]).into_iter().map(String::from).collect()
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        ("openshift", "Deployment", &["--reload-crio"]),
        ("openshift", "Deployment", &["--on-change", "true"]),
        ("kubernetes/crio", "DaemonSet", &["--manifests", "/etc/mirrorconf/manifests"]),
        ("kubernetes/containerd", "DaemonSet", &["--windows-push"]),
    ];
    for (dir, kind, extra) in cases {
        let mut args = container_args(dir, kind);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = parse_args(&args).expect_err(&format!("{dir}: {args:?} was accepted"));
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{dir}: {args:?}: {e}");
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_runs_the_agent() {
    let unit = std::fs::read_to_string(repo("systemd/mirrorconf.service")).unwrap();
    for line in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=mirrorconf",
        "ReadWritePaths=/etc/containers -/etc/docker/certs.d",
        "Before=crio.service kubelet.service",
        // The man page `mirrorconf man` writes, not a web address.
        "Documentation=man:mirrorconf(1)",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line:?}");
    }
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let run = match parse_args(&args) {
        Ok(Cli { command: Command::Run(run), .. }) => run,
        other => panic!("{exec}: {other:?}"),
    };
    assert_eq!(run.root.as_deref(), Some(Path::new("/")), "{exec}");
}

/// What a newcomer copies must exist: no image or page of a registry or project site that does
/// not (the manifests name the local build; the unit names its man page).
#[test]
fn nothing_points_at_a_registry_or_site_that_does_not_exist() {
    let mut files = vec![repo("Containerfile"), repo("README.md"), repo("systemd/mirrorconf.service")];
    files.extend(files_under(&repo("deploy")));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for bad in ["ghcr.io", "quay.io/mirrorconf", "github.com/mirrorconf", "mirrorconf.io/docs"] {
            assert!(!text.contains(bad), "{} names {bad}", f.display());
        }
    }
    assert!(repo(".containerignore").is_file(), "the build context leaves target/ and .git out");
}
