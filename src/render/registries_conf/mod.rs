//! `/etc/containers/registries.conf`: the node's own file (the base) plus the mirror policy.
//!
//! The base is parsed with `toml_edit` and only the admin's `[[registry]]` tables that the policy
//! touches are edited in place, so comments, formatting and every other setting survive byte for
//! byte. Entries the policy adds are plain data (`entry::NewEntry`) written as text after the base: with
//! tens of thousands of mirror entries this is an order of magnitude faster than growing the
//! `toml_edit` document, and the result is parsed back by the tests.
//!
//! The edit follows OpenShift's MCO (docs/design.md, "registries.conf"): mirror sets, then blocked
//! and insecure scopes, then nested scopes inherit their parent's mirrors. It differs where the reference is wrong:
//! wildcard mirror sources with nested entries render correctly, and the base is kept, not replaced.

use crate::policy::Policy;
use edit::{Edit, Flag};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item};

pub const PATH: &str = "etc/containers/registries.conf";
pub const SEARCH_DROP_IN_PATH: &str = "etc/containers/registries.conf.d/01-image-searchRegistries.conf";

const DIGEST_ONLY: &str = "digest-only";
const TAG_ONLY: &str = "tag-only";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the base registries.conf is not valid TOML: {0}")]
    BaseSyntax(#[from] toml_edit::TomlError),
    #[error("the base registries.conf uses the v1 format ([registries.search], [registries.insecure], [registries.block]), which cannot be combined with [[registry]] tables; convert it to the v2 format (containers-registries.conf(5))")]
    BaseV1Format,
    #[error("the base registries.conf has `registry` as {0}; it must be [[registry]] tables")]
    BaseRegistryShape(&'static str),
    #[error("the base registries.conf has a [[registry]] table whose `mirror` is {0}; it must be [[registry.mirror]] tables")]
    BaseMirrorShape(&'static str),
}

/// Renders registries.conf for `policy` on top of `base` (the node's original file; may be empty).
/// With nothing to apply, the base comes back unchanged, byte for byte.
pub fn render(policy: &Policy, base: &str) -> Result<String, RenderError> {
    let mut doc: DocumentMut = base.parse()?;
    if !policy.touches_registries_conf() {
        return Ok(base.to_string());
    }
    if doc.contains_key("registries") {
        return Err(RenderError::BaseV1Format);
    }
    // `registry = []` would clash with the [[registry]] tables appended below.
    if doc.get("registry").and_then(Item::as_array).is_some_and(|a| a.is_empty()) {
        doc.remove("registry");
    }
    let mut empty = ArrayOfTables::new();
    let base_tables = match doc.get_mut("registry") {
        None => &mut empty,
        Some(Item::ArrayOfTables(a)) => a,
        Some(other) => return Err(RenderError::BaseRegistryShape(other.type_name())),
    };
    for t in base_tables.iter() {
        if let Some(m) = t.get("mirror") {
            if !m.is_array_of_tables() {
                return Err(RenderError::BaseMirrorShape(m.type_name()));
            }
        }
    }

    let mut edit = Edit::new(base_tables);
    for (sets, mode) in [(&policy.digest_sets, DIGEST_ONLY), (&policy.tag_sets, TAG_ONLY)] {
        for set in sets.iter() {
            edit.add_mirror_set(set, mode);
        }
    }
    for s in &policy.blocked_scopes {
        edit.entry(s);
    }
    for s in &policy.insecure_scopes {
        edit.mark(s, Flag::Insecure);
    }
    for s in &policy.blocked_scopes {
        edit.mark(s, Flag::Blocked);
    }
    edit.inherit_nested_mirrors(&policy.digest_sets, &policy.tag_sets);
    let (base_changed, new) = (edit.base_changed, edit.new);

    let mut out = if base_changed { doc.to_string() } else { base.to_string() };
    out.reserve(new.len() * 160);
    let mut first = out.trim().is_empty();
    if first {
        out.clear();
    } else if !out.ends_with('\n') {
        out.push('\n');
    }
    for e in &new {
        e.write(&mut out, first);
        first = false;
    }
    Ok(out)
}

/// The search-registries drop-in, or `None` when `containerRuntimeSearchRegistries` is unset.
pub fn render_search_drop_in(policy: &Policy) -> Option<String> {
    if policy.search_registries.is_empty() {
        return None;
    }
    let mut doc = DocumentMut::new();
    let list: toml_edit::Array = policy.search_registries.iter().map(String::as_str).collect();
    doc["unqualified-search-registries"] = value(list);
    Some(format!(
        "# Written by mirrorconf from Image/cluster spec.registrySources.containerRuntimeSearchRegistries.\n{doc}"
    ))
}

mod edit;
mod entry;

#[cfg(test)]
mod tests;
