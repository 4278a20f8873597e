//! `check`'s answer: per endpoint what the probe found, which endpoint would serve the image, where
//! mirrors disagree, and whether a pull has everything it needs. A table for people, JSON for
//! scripts.

use super::plan::Plan;
use super::{Outcome, Stage};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub registry: String,
    pub endpoint: String,
    pub kind: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub image: Option<String>,
    /// Every endpoint a pull needs is usable (see [`Report::new`]).
    pub ok: bool,
    /// With an image: the first endpoint, in the runtime's order, that has it.
    pub served_by: Option<String>,
    pub endpoints: Vec<EndpointReport>,
    /// Endpoints named but never contacted, and why.
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    /// Without an image every endpoint must be usable. With one, an endpoint must have it, and
    /// every endpoint tried before it must be usable (one that lacks the image is: the runtime moves
    /// on); endpoints after it are reported but do not decide.
    pub fn new(target: &str, image: Option<String>, plan: Plan, outcomes: Vec<Outcome>) -> Report {
        let endpoints: Vec<EndpointReport> = plan
            .rows
            .into_iter()
            .zip(outcomes)
            .map(|(row, outcome)| EndpointReport {
                registry: row.registry,
                endpoint: row.endpoint,
                kind: row.kind,
                outcome,
            })
            .collect();
        let served = endpoints.iter().position(|e| e.outcome.found == Some(true));
        let ok = match (&image, served) {
            (None, _) => endpoints.iter().all(|e| e.outcome.ok),
            (Some(_), Some(i)) => endpoints[..=i].iter().all(|e| e.outcome.ok),
            (Some(_), None) => false,
        };
        let mut warnings = vec![];
        if let Some(reference) = &image {
            let digests: Vec<(&str, &str)> =
                endpoints.iter().filter_map(|e| Some((e.endpoint.as_str(), e.outcome.digest.as_deref()?))).collect();
            let first = digests.first().map(|(_, d)| *d);
            if digests.iter().any(|(_, d)| Some(*d) != first) {
                let each: Vec<String> = digests.iter().map(|(e, d)| format!("{e} has {d}")).collect();
                warnings.push(format!(
                    "the endpoints disagree on the digest of {reference}: {}; a pull gets whichever answers first",
                    each.join(", ")
                ));
            }
        }
        Report {
            target: target.to_string(),
            served_by: served.map(|i| endpoints[i].endpoint.clone()),
            image,
            ok,
            endpoints,
            skipped: plan.skipped,
            warnings,
        }
    }

    /// The table people read.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let with_image = self.image.is_some();
        let mut rows: Vec<Vec<String>> =
            vec![["REGISTRY", "ENDPOINT", "KIND", "RESULT", "STAGE", "MS"].map(String::from).to_vec()];
        if with_image {
            rows[0].push("IMAGE".into());
        }
        for e in &self.endpoints {
            let o = &e.outcome;
            let mut row = vec![
                e.registry.clone(),
                e.endpoint.clone(),
                e.kind.clone(),
                if o.ok { "ok".into() } else { "FAILED".into() },
                o.stage.to_string(),
                o.ms.to_string(),
            ];
            if with_image {
                row.push(match (o.found, &o.digest) {
                    (Some(true), Some(d)) => format!("present {}", short_digest(d)),
                    (Some(true), None) => "present".into(),
                    (Some(false), _) => "absent".into(),
                    (None, _) => "-".into(),
                });
            }
            rows.push(row);
        }
        let widths: Vec<usize> =
            (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for (i, row) in rows.iter().enumerate() {
            let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            writeln!(out, "{}", line.join("  ").trim_end()).unwrap();
            if let Some(e) = i.checked_sub(1).map(|j| &self.endpoints[j]) {
                if let Some(error) = &e.outcome.error {
                    writeln!(out, "    {} failed: {error}", stage_name(e.outcome.stage)).unwrap();
                }
                for note in &e.outcome.notes {
                    writeln!(out, "    note: {note}").unwrap();
                }
            }
        }
        if self.endpoints.is_empty() {
            writeln!(out, "no endpoint to check: the files name no mirror or registry").unwrap();
        }
        for s in &self.skipped {
            writeln!(out, "not contacted: {s}").unwrap();
        }
        if let Some(image) = &self.image {
            match &self.served_by {
                Some(e) => writeln!(out, "served by: {e}").unwrap(),
                None => writeln!(out, "served by: nothing; no endpoint has {image}, so the pull fails").unwrap(),
            }
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}").unwrap();
        }
        let failed = self.endpoints.iter().filter(|e| !e.outcome.ok).count();
        let verdict = if self.ok { "usable" } else { "NOT usable" };
        writeln!(out, "{verdict}: {} endpoint(s), {failed} failing", self.endpoints.len()).unwrap();
        out
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Dns => "name resolution",
        Stage::Connect => "TCP connect",
        Stage::Tls => "TLS",
        Stage::Api => "registry API",
        Stage::Auth => "authentication",
        Stage::Manifest => "manifest",
    }
}

/// `sha256:0123456789ab` (12 hex digits), enough to tell digests apart in a table.
fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.chars().take(12).collect::<String>()),
        None => d.chars().take(20).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::plan::{Probe, Row};

    fn row(endpoint: &str) -> Row {
        let probe = Probe {
            https: true,
            host: endpoint.into(),
            port: 443,
            skip_verify: false,
            http_fallback: false,
            cas: vec![],
            credentials: None,
            credentials_from: "the pull secret".into(),
            manifest: None,
        };
        Row { registry: "quay.io/a".into(), endpoint: endpoint.into(), kind: "mirror".into(), probe }
    }

    fn outcome(ok: bool, found: Option<bool>, digest: Option<&str>) -> Outcome {
        Outcome {
            ok,
            stage: if ok { Stage::Manifest } else { Stage::Connect },
            error: (!ok).then(|| "nothing listens".into()),
            ms: 1,
            address: None,
            notes: vec![],
            found,
            digest: digest.map(String::from),
        }
    }

    fn report(image: bool, outcomes: Vec<Outcome>) -> Report {
        let plan = Plan { rows: (0..outcomes.len()).map(|i| row(&format!("m{i}"))).collect(), skipped: vec![] };
        Report::new("linux", image.then(|| "quay.io/a:v1".into()), plan, outcomes)
    }

    #[test]
    fn a_pull_needs_the_endpoints_up_to_the_one_that_serves_it() {
        let r = report(
            true,
            vec![
                outcome(true, Some(false), None),
                outcome(true, Some(true), Some("sha256:1")),
                outcome(false, None, None),
            ],
        );
        assert_eq!(
            (r.ok, r.served_by.as_deref()),
            (true, Some("m1")),
            "a broken endpoint after the server does not decide"
        );
        let r = report(true, vec![outcome(false, None, None), outcome(true, Some(true), Some("sha256:1"))]);
        assert!(!r.ok, "a broken mirror tried first fails the check");
        let r = report(true, vec![outcome(true, Some(false), None)]);
        assert_eq!((r.ok, r.served_by.as_deref()), (false, None));
        assert!(r.text().contains("served by: nothing"));
        let r = report(false, vec![outcome(true, None, None), outcome(false, None, None)]);
        assert!(!r.ok && r.text().contains("connect failed: nothing listens"), "{}", r.text());
        assert!(report(false, vec![]).ok);
    }

    #[test]
    fn mirrors_that_disagree_on_a_digest_are_a_warning() {
        let r = report(
            true,
            vec![outcome(true, Some(true), Some("sha256:1")), outcome(true, Some(true), Some("sha256:2"))],
        );
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("m0 has sha256:1, m1 has sha256:2"), "{:?}", r.warnings);
        let r = report(
            true,
            vec![outcome(true, Some(true), Some("sha256:1")), outcome(true, Some(true), Some("sha256:1"))],
        );
        assert!(r.warnings.is_empty());
        let json = serde_json::to_value(&r).unwrap();
        for key in ["registry", "endpoint", "ok", "stage", "error", "ms"] {
            assert!(json["endpoints"][0].get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(json["served_by"], "m0");
    }
}
