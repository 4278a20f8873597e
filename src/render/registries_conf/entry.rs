//! The `[[registry]]` tables the policy adds, written as plain text after the base (an order of
//! magnitude faster than growing the `toml_edit` document at tens of thousands of entries).

use crate::policy::scope;
use std::borrow::Cow;
use std::fmt::Write;
use toml_edit::Value;

/// A `[[registry.mirror]]` as containers/image reads it. Strings borrow from the policy where they
/// can: at tens of thousands of entries, allocations are most of the cost.
#[derive(Debug, Clone)]
pub(super) struct Mirror<'p> {
    pub(super) location: Cow<'p, str>,
    pub(super) insecure: bool,
    pub(super) pull_from_mirror: Option<Cow<'p, str>>,
}

/// A `[[registry]]` the policy adds (the base had no table for its scope).
#[derive(Debug)]
pub(super) struct NewEntry<'p> {
    pub(super) scope: &'p str,
    pub(super) insecure: bool,
    pub(super) blocked: bool,
    pub(super) mirrors: Vec<Mirror<'p>>,
}

impl NewEntry<'_> {
    pub(super) fn write(&self, out: &mut String, first: bool) {
        if !first {
            out.push('\n');
        }
        out.push_str("[[registry]]\n");
        out.push_str(if scope::is_wildcard(self.scope) { "prefix = " } else { "location = " });
        push_toml_string(out, self.scope);
        out.push('\n');
        if self.insecure {
            out.push_str("insecure = true\n");
        }
        if self.blocked {
            out.push_str("blocked = true\n");
        }
        for m in &self.mirrors {
            out.push_str("\n[[registry.mirror]]\nlocation = ");
            push_toml_string(out, &m.location);
            out.push('\n');
            if m.insecure {
                out.push_str("insecure = true\n");
            }
            if let Some(p) = &m.pull_from_mirror {
                out.push_str("pull-from-mirror = ");
                push_toml_string(out, p);
                out.push('\n');
            }
        }
    }
}

/// Appends `s` as a TOML string. Validated scopes need no escaping; anything else goes through
/// toml_edit's encoder.
fn push_toml_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/@*+".contains(&b)) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        let _ = write!(out, "{}", Value::from(s));
    }
}
