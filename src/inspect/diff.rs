//! `diff`: the unified diff of what `render` would change under a root, and for registries.conf the
//! disruption the MCO would cause for the same change next to what mirrorconf does.

use super::disruption::{self, Classification, Disruption};
use crate::render::registries_conf;
use serde::Serialize;
use similar::TextDiff;

/// One file `render` would write or remove, as the local sink's preview gives it.
pub use crate::fileset::Change;

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_redacted_but_changes_still_show() {
        let a = "[host.\"https://m\".header]\n    authorization = \"Basic c2VjcmV0\"\n";
        let r = super::redact(a);
        assert!(!r.contains("c2VjcmV0") && r.contains("authorization = \"<redacted, sha256 "), "{r}");
        assert_ne!(r, super::redact(&a.replace("c2VjcmV0", "b3RoZXI=")));
        assert!(r.ends_with('\n'));
    }

    /// TOML lets the key be quoted, cased or dotted, and the value span lines: none of it shows.
    #[test]
    fn every_spelling_of_an_authorization_header_is_redacted() {
        for text in [
            "  \"authorization\" = \"Basic c2VjcmV0\"\n",
            "  'authorization' = \"Basic c2VjcmV0\"\n",
            "  Authorization=\"Basic c2VjcmV0\"\n",
            "  header.\"Authorization\" = [\"Basic c2VjcmV0\"]\n",
            "  header = { authorization = \"Basic c2VjcmV0\" }\n",
            "  authorization = \"\"\"\nBasic c2VjcmV0\n\"\"\"\nserver = \"https://s\"\n",
            "  authorization = '''Basic\nc2VjcmV0'''\n",
        ] {
            let r = super::redact(text);
            assert!(!r.contains("c2VjcmV0") && r.contains("<redacted, sha256 "), "{text:?} became {r:?}");
            assert!(!r.contains("Basic"), "{r:?}");
        }
        let multi = super::redact("authorization = \"\"\"\nBasic c2VjcmV0\n\"\"\"\nserver = \"https://s\"\n");
        assert!(multi.ends_with("\nserver = \"https://s\"\n"), "the line after the value is kept: {multi:?}");
        assert_eq!(super::redact("server = \"https://s\"\n"), "server = \"https://s\"\n");
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// `added`, `modified` or `removed`.
    pub change: &'static str,
    /// Unified diff; for a file that is not text, a one-line note.
    pub diff: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: Vec<FileDiff>,
    /// For registries.conf and its search drop-in, when either changes.
    pub registries_conf: Option<RegistriesConfImpact>,
    /// For policy.json (allowed and blocked registries), when it changes.
    pub policy_json: Option<RegistriesConfImpact>,
    /// Files someone else wrote that `render` would leave as they are.
    pub kept_foreign: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistriesConfImpact {
    /// What the Machine Config Operator would do.
    pub mco: Disruption,
    pub reasons: Vec<String>,
    /// What mirrorconf does: write the file atomically and reload CRI-O (with `run --reload-crio`).
    pub mirrorconf: &'static str,
}

fn text(b: &Option<Vec<u8>>) -> Option<&str> {
    b.as_deref().map(|b| std::str::from_utf8(b).ok()).unwrap_or(Some(""))
}

/// Pull-secret credentials never reach the terminal: on every line that names an authorization
/// header, however its key is written (`authorization`, `"authorization"`, `'Authorization'`,
/// `header.authorization`, an inline table), everything after the first `=` is replaced by a
/// digest of it, so a changed credential still shows as a changed line. A multi-line string
/// value is folded into the digest up to its closing quotes.
fn redact(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some((key, value)) = line.split_once('=').filter(|_| line.to_ascii_lowercase().contains("authorization"))
        else {
            out.push(line.to_string());
            continue;
        };
        let mut secret = value.trim().to_string();
        if let Some(quotes) = ["\"\"\"", "'''"].into_iter().find(|q| secret.starts_with(q)) {
            // Open until a line holds the closing quotes.
            let mut open = secret.matches(quotes).count() % 2 == 1;
            while open {
                let Some(next) = lines.next() else { break };
                secret.push('\n');
                secret.push_str(next);
                open = !next.contains(quotes);
            }
        }
        let digest = crate::text::sha256_hex(secret.as_bytes());
        out.push(format!("{key}= \"<redacted, sha256 {}>\"", &digest[..12]));
    }
    out.join("\n") + if text.ends_with('\n') { "\n" } else { "" }
}

pub fn report(changes: &[Change], kept_foreign: Vec<String>) -> Result<Report, String> {
    let mut files = Vec::new();
    for c in changes {
        let change = match (&c.old, &c.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "modified",
        };
        let diff = match (text(&c.old), text(&c.new)) {
            (Some(old), Some(new)) => TextDiff::from_lines(&redact(old), &redact(new))
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{}", c.path), &format!("b/{}", c.path))
                .to_string(),
            _ => format!("binary file {} {change}\n", c.path),
        };
        files.push(FileDiff { path: c.path.clone(), change, diff });
    }
    let conf = |path: &str| changes.iter().find(|c| c.path == path);
    let mut impact: Option<Classification> = None;
    for path in [registries_conf::PATH, registries_conf::SEARCH_DROP_IN_PATH] {
        if let Some(c) = conf(path) {
            let old = text(&c.old).unwrap_or_default();
            let new = text(&c.new).unwrap_or_default();
            let mut cls = disruption::classify(old, new).map_err(|e| format!("{path}: {e}"))?;
            if path == registries_conf::SEARCH_DROP_IN_PATH && c.new.is_none() {
                cls = Classification {
                    mco: Disruption::DrainAndReboot,
                    reasons: vec!["removes the search-registries drop-in".into()],
                };
            }
            impact = Some(match impact {
                None => cls,
                Some(mut prev) => {
                    if cls.mco == Disruption::DrainAndReboot || prev.mco == Disruption::None {
                        prev.mco = cls.mco;
                    }
                    prev.reasons.extend(cls.reasons);
                    prev
                }
            });
        }
    }
    // The MCO applies a policy.json change with a CRI-O reload, without a drain.
    let policy_json = conf(crate::render::policy_json::PATH).map(|c| RegistriesConfImpact {
        mco: Disruption::Reload,
        reasons: vec![format!(
            "{} the signature policy (allowed and blocked registries)",
            if c.new.is_none() { "removes" } else { "changes" }
        )],
        mirrorconf: "writes the file atomically and reloads CRI-O (SIGHUP): no drain, no reboot",
    });
    Ok(Report {
        files,
        policy_json,
        registries_conf: impact.map(|c| RegistriesConfImpact {
            mco: c.mco,
            reasons: c.reasons,
            mirrorconf: "writes the file atomically and reloads CRI-O (SIGHUP): no drain, no reboot",
        }),
        kept_foreign,
    })
}

impl Report {
    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            out.push_str(&f.diff);
        }
        for p in &self.kept_foreign {
            out.push_str(&format!("kept {p}: mirrorconf did not write it and does not replace it\n"));
        }
        if let Some(i) = &self.registries_conf {
            let mco = match i.mco {
                Disruption::None => "nothing",
                Disruption::Reload => "a CRI-O reload, no drain",
                Disruption::DrainAndReboot => "cordon, drain and reboot every node",
            };
            out.push_str(&format!("\nregistries.conf: the Machine Config Operator would do: {mco}\n"));
            for r in &i.reasons {
                out.push_str(&format!("  - {r}\n"));
            }
            out.push_str(&format!("mirrorconf: {}\n", i.mirrorconf));
        }
        if let Some(i) = &self.policy_json {
            out.push_str("\npolicy.json: the Machine Config Operator would do: a CRI-O reload, no drain\n");
            for r in &i.reasons {
                out.push_str(&format!("  - {r}\n"));
            }
            out.push_str(&format!("mirrorconf: {}\n", i.mirrorconf));
        }
        if self.files.is_empty() {
            out.push_str("no changes\n");
        }
        out
    }
}
