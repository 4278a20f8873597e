//! The monitoring kit (deploy/components/monitoring) against the real tools and the real agent:
//! `promtool check rules` and `promtool test rules` (Debian's `prometheus` package; scripts/test.sh
//! installs it) with a unit test for every alert, the dashboard's queries as valid PromQL, and every
//! metric a rule or a panel uses present in the `/metrics` of a running agent.

mod common;

use common::{free_port, http_get, require_tool, wait_until, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The rule groups of the PrometheusRule, as a Prometheus rule file.
fn rule_file() -> Value {
    let text = fs::read_to_string(repo("deploy/components/monitoring/prometheusrule.yaml")).unwrap();
    let rule: Value = serde_yaml_ng::from_str(&text).unwrap();
    rule["spec"].clone()
}

fn rules(file: &Value) -> Vec<&Value> {
    file["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&fs::read_to_string(repo("deploy/components/monitoring/dashboard.json")).unwrap()).unwrap()
}

/// Every query of the dashboard with Grafana's variables filled in as Prometheus would get them.
fn panel_queries(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().replace("$__rate_interval", "5m").replace("$node", ".*"))
        .collect()
}

fn promtool(dir: &Path, args: &[&str]) {
    let out = Command::new(require_tool("promtool")).args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rules.yaml"), serde_yaml_ng::to_string(&rule_file()).unwrap()).unwrap();
    fs::copy(repo("tests/fixtures/monitoring/alerts.test.yaml"), dir.path().join("alerts.test.yaml")).unwrap();
    promtool(dir.path(), &["check", "rules", "rules.yaml"]);
    promtool(dir.path(), &["test", "rules", "alerts.test.yaml"]);
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() {
    let tests: Value =
        serde_yaml_ng::from_str(&fs::read_to_string(repo("tests/fixtures/monitoring/alerts.test.yaml")).unwrap())
            .unwrap();
    let checks: Vec<&Value> =
        tests["tests"].as_array().unwrap().iter().flat_map(|t| t["alert_rule_test"].as_array().unwrap()).collect();
    let file = rule_file();
    for rule in rules(&file) {
        let Some(alert) = rule["alert"].as_str() else { continue };
        let of_alert: Vec<&&Value> = checks.iter().filter(|c| c["alertname"] == alert).collect();
        assert!(of_alert.iter().any(|c| !c["exp_alerts"].as_array().unwrap().is_empty()), "{alert}: no test fires it");
        assert!(
            of_alert.iter().any(|c| c["exp_alerts"].as_array().unwrap().is_empty()),
            "{alert}: no test holds it back"
        );
        assert!(rule["for"].is_string(), "{alert}: a `for` keeps one bad scrape from paging");
    }
}

#[test]
fn the_dashboard_queries_are_promql() {
    // promtool parses every query when it checks a rule file; each query becomes a recording rule.
    let d = dashboard();
    let queries = panel_queries(&d);
    assert!(queries.len() >= 10, "{queries:?}");
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({"record": format!("panel:{i}"), "expr": q}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("panels.yaml"), serde_yaml_ng::to_string(&file).unwrap()).unwrap();
    promtool(dir.path(), &["check", "rules", "panels.yaml"]);
    assert_eq!(d["uid"], "mirrorconf");
    assert!(d["panels"].as_array().unwrap().iter().all(|p| p["datasource"]["uid"] == "${datasource}"));
}

/// The `mirrorconf_*` names in a query.
fn metric_names(query: &str, out: &mut BTreeSet<String>) {
    let re = regex::Regex::new(r"\bmirrorconf_[a-z_]+\b").unwrap();
    out.extend(re.find_iter(query).map(|m| m.as_str().to_string()));
}

#[test]
fn every_metric_a_rule_or_panel_uses_is_served_by_a_running_agent() {
    let mut used = BTreeSet::new();
    let file = rule_file();
    for rule in rules(&file) {
        metric_names(rule["expr"].as_str().unwrap(), &mut used);
    }
    let d = dashboard();
    for q in panel_queries(&d) {
        metric_names(&q, &mut used);
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        metric_names(v["definition"].as_str().unwrap_or_default(), &mut used);
    }
    // The endpoint probes come with a later release (--probe-interval); their alert group and
    // panel say so. Not served yet, so not claimed here: the last assertion keeps that honest.
    let not_yet = "mirrorconf_endpoint_up";
    assert!(used.remove(not_yet), "the probe alert and panel use {not_yet}");

    let (root, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorconf"));
    cmd.args(["run", "--manifests"]).arg(repo("examples/manifests")).arg("--root").arg(root.path());
    cmd.args(["--listen", &addr.to_string()]);
    let _agent = Server::spawn(cmd, logs.path().join("agent.log"));
    wait_until(30, "the agent's first render", || http_get(addr, "/readyz").is_some_and(|(s, _)| s == 200));
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let served: BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    for name in &used {
        assert!(served.contains(name.as_str()), "{name} is used by an alert or panel but not served:\n{body}");
    }
    assert!(!served.contains(not_yet), "{not_yet} is served now: drop it from `not_yet`");
}
