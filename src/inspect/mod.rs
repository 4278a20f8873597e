//! Admin tools that explain rather than write: `resolve` (which endpoints a runtime tries for an
//! image, and why) and `diff` (what `render` would change, and what the MCO would have done for it).
//! Everything here is pure: rendered files in, explanations out.

pub mod conf;
pub mod containerd;
pub mod diff;
pub mod disruption;
pub mod fleet;
pub mod linux;
pub mod reference;

use serde::Serialize;
use std::fmt::Write as _;

/// One endpoint a runtime tries, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// What is fetched: the rewritten reference (Linux) or the manifest URL (containerd).
    pub pull: String,
    /// `mirror`, `source` or `server`.
    pub kind: String,
    pub why: String,
    /// TLS verification is off (`insecure` / `skip_verify`).
    pub insecure: bool,
    /// The CA file the runtime uses for it, when mirrorconf renders one.
    pub ca: Option<String>,
}

/// An endpoint the configuration names but the runtime does not try for this reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub pull: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The normalised reference.
    pub reference: String,
    /// The registries.conf table or hosts.toml file that applies, if any.
    pub matched: Option<String>,
    pub endpoints: Vec<Endpoint>,
    pub skipped: Vec<Skipped>,
    /// Why the pull is refused whatever the endpoints (allowed or blocked registries), if it is.
    pub refused: Option<String>,
}

impl Resolution {
    /// The human-readable explanation `resolve` prints.
    pub fn text(&self, target: &str) -> String {
        let mut out = format!("{} ({target})\n", self.reference);
        match &self.matched {
            Some(m) => writeln!(out, "matched: {m}").unwrap(),
            None => writeln!(out, "matched: nothing; the runtime's defaults apply").unwrap(),
        }
        if let Some(why) = &self.refused {
            writeln!(out, "REFUSED: {why}").unwrap();
        }
        if self.endpoints.is_empty() {
            writeln!(out, "tries nothing: the pull fails (every endpoint is skipped or blocked)").unwrap();
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let mut notes = vec![e.kind.clone(), e.why.clone()];
            if e.insecure {
                notes.push("TLS not verified (insecure)".into());
            }
            if let Some(ca) = &e.ca {
                notes.push(format!("CA {ca}"));
            }
            writeln!(out, "  {}. {}\n     {}", i + 1, e.pull, notes.join("; ")).unwrap();
        }
        for s in &self.skipped {
            writeln!(out, "  skipped: {}\n     {}", s.pull, s.why).unwrap();
        }
        out
    }
}
