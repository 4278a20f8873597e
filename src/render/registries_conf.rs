//! `/etc/containers/registries.conf`: the node's own file (the base) plus the mirror policy, edited
//! with `toml_edit` so that the admin's comments, formatting and settings survive byte for byte.
//!
//! The edit follows OpenShift's MCO (DESIGN.md section 1): mirror sets, then blocked and insecure
//! scopes, then nested scopes inherit their parent's mirrors. It differs where the reference is wrong:
//! wildcard mirror sources with nested entries render correctly, and the base is kept, not replaced.

use crate::policy::{scope, MirrorSet, Policy};
use std::borrow::Cow;
use std::collections::HashMap;
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table, Value};

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
    let item = doc.entry("registry").or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    let registries = match item {
        Item::ArrayOfTables(a) => a,
        Item::Value(Value::Array(a)) if a.is_empty() => {
            *item = Item::ArrayOfTables(ArrayOfTables::new());
            item.as_array_of_tables_mut().expect("just set")
        }
        other => return Err(RenderError::BaseRegistryShape(other.type_name())),
    };
    for t in registries.iter() {
        if let Some(m) = t.get("mirror") {
            if !m.is_array_of_tables() {
                return Err(RenderError::BaseMirrorShape(m.type_name()));
            }
        }
    }
    let mut edit = Edit::new(registries, base.trim().is_empty());

    for (sets, mode) in [(&policy.digest_sets, DIGEST_ONLY), (&policy.tag_sets, TAG_ONLY)] {
        for set in sets.iter() {
            edit.add_mirror_set(set, mode);
        }
    }
    for s in &policy.blocked_scopes {
        edit.entry(s);
    }
    for s in &policy.insecure_scopes {
        edit.mark_insecure(s);
    }
    for s in &policy.blocked_scopes {
        edit.mark_blocked(s);
    }
    edit.inherit_nested_mirrors(&policy.digest_sets, &policy.tag_sets);
    Ok(doc.to_string())
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

/// The scope a `[[registry]]` table applies to: `prefix` if non-empty, else `location`.
fn scope_of(t: &Table) -> &str {
    let get = |k: &str| t.get(k).and_then(Item::as_str).unwrap_or("");
    match get("prefix") {
        "" => get("location"),
        p => p,
    }
}

fn mirrors(t: &Table) -> Option<&ArrayOfTables> {
    t.get("mirror").and_then(Item::as_array_of_tables)
}

fn mirror_count(t: &Table) -> usize {
    mirrors(t).map_or(0, ArrayOfTables::len)
}

struct Edit<'a> {
    registries: &'a mut ArrayOfTables,
    /// scope -> index of its table, so each lookup is O(1) even with tens of thousands of entries.
    index: HashMap<String, usize>,
    /// No blank line before the first table of an otherwise empty file.
    empty_file: bool,
}

impl<'a> Edit<'a> {
    fn new(registries: &'a mut ArrayOfTables, empty_file: bool) -> Self {
        let mut index = HashMap::with_capacity(registries.len());
        for (i, t) in registries.iter().enumerate() {
            // The first table for a scope wins, as in the reference.
            index.entry(scope_of(t).to_string()).or_insert(i);
        }
        Edit { registries, index, empty_file }
    }

    fn table(&mut self, i: usize) -> &mut Table {
        self.registries.get_mut(i).expect("indexes are kept in range")
    }

    /// The table for `scope`, appended when missing.
    fn entry(&mut self, scope: &str) -> usize {
        if let Some(i) = self.index.get(scope) {
            return *i;
        }
        let mut t = Table::new();
        if scope::is_wildcard(scope) {
            t["prefix"] = value(scope);
        } else {
            t["location"] = value(scope);
        }
        let first = self.empty_file && self.registries.is_empty();
        t.decor_mut().set_prefix(if first { "" } else { "\n" });
        self.registries.push(t);
        let i = self.registries.len() - 1;
        self.index.insert(scope.to_string(), i);
        i
    }

    fn add_mirror_set(&mut self, set: &MirrorSet, mode: &str) {
        let i = self.entry(&set.source);
        let t = self.table(i);
        if set.never_contact_source {
            t["blocked"] = value(true);
        }
        for m in &set.mirrors {
            let mut mt = Table::new();
            mt["location"] = value(m.as_str());
            mt["pull-from-mirror"] = value(mode);
            append_mirror(t, mt);
        }
    }

    fn mark_insecure(&mut self, insecure: &str) {
        let i = self.entry(insecure);
        self.table(i)["insecure"] = value(true);
        for t in self.registries.iter_mut() {
            if scope::is_nested(scope_of(t), insecure) && !t.get("insecure").and_then(Item::as_bool).unwrap_or(false) {
                t["insecure"] = value(true);
            }
            if let Some(ms) = t.get_mut("mirror").and_then(Item::as_array_of_tables_mut) {
                for m in ms.iter_mut() {
                    let loc = m.get("location").and_then(Item::as_str).unwrap_or("");
                    if scope::is_nested(loc, insecure) && !m.get("insecure").and_then(Item::as_bool).unwrap_or(false) {
                        m["insecure"] = value(true);
                    }
                }
            }
        }
    }

    fn mark_blocked(&mut self, blocked: &str) {
        let i = self.entry(blocked);
        self.table(i)["blocked"] = value(true);
        for t in self.registries.iter_mut() {
            if scope::is_nested(scope_of(t), blocked) && !t.get("blocked").and_then(Item::as_bool).unwrap_or(false) {
                t["blocked"] = value(true);
            }
        }
    }

    /// containers/image uses only the longest matching entry, so an entry nested inside a mirrored
    /// source (say a blocked sub-namespace) would lose the parent's mirrors. Every entry without mirrors
    /// gets copies of its parent's, with the rest of its path appended. As in the reference, parents are
    /// taken in order (digest sources sorted, then tag sources sorted) and the first one wins.
    fn inherit_nested_mirrors(&mut self, digest: &[MirrorSet], tag: &[MirrorSet]) {
        // rank of each mirrored source in the reference's processing order.
        let mut rank: HashMap<&str, usize> = HashMap::new();
        for (r, set) in digest.iter().chain(tag.iter()).enumerate() {
            rank.entry(set.source.as_str()).or_insert(r);
        }
        if rank.is_empty() {
            return;
        }
        let mut copies: Vec<(usize, Vec<Table>)> = Vec::new();
        for (i, t) in self.registries.iter().enumerate() {
            if mirror_count(t) > 0 {
                continue;
            }
            let sub = scope_of(t);
            let parent = ancestors(sub).into_iter().filter_map(|a| rank.get(a.as_ref()).map(|r| (*r, a))).min();
            let Some((_, parent)) = parent else { continue };
            let parent = parent.as_ref();
            let parent_table = self.registries.get(self.index[parent]).expect("every source has a table");
            let suffix = scope::nested_suffix(sub, parent);
            let adjusted = mirrors(parent_table)
                .into_iter()
                .flat_map(ArrayOfTables::iter)
                .map(|m| {
                    let mut m = m.clone();
                    let loc = format!("{}{suffix}", m.get("location").and_then(Item::as_str).unwrap_or(""));
                    m["location"] = value(loc);
                    m
                })
                .collect();
            copies.push((i, adjusted));
        }
        for (i, ms) in copies {
            let t = self.table(i);
            for m in ms {
                append_mirror(t, m);
            }
        }
    }
}

/// Every scope `sub` is strictly nested in that could be a mirrored source: its path prefixes and the
/// wildcards matching its host.
fn ancestors(sub: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    if !scope::is_wildcard(sub) {
        out.extend(sub.match_indices('/').map(|(i, _)| Cow::Borrowed(&sub[..i])));
    }
    let host = scope::host_part(sub);
    for (i, _) in host.match_indices('.') {
        let candidate = format!("*{}", &host[i..]);
        if candidate != sub {
            out.push(Cow::Owned(candidate));
        }
    }
    out
}

/// Appends a mirror table to a registry, keeping the file valid: containers/image refuses a registry
/// that has `mirror-by-digest-only` and a per-mirror `pull-from-mirror` at once, so an admin's
/// `mirror-by-digest-only = true` is converted to `pull-from-mirror = "digest-only"` on their mirrors.
fn append_mirror(t: &mut Table, mut m: Table) {
    if let Some(by_digest) = t.remove("mirror-by-digest-only") {
        if by_digest.as_bool() == Some(true) {
            if let Some(ms) = t.get_mut("mirror").and_then(Item::as_array_of_tables_mut) {
                for existing in ms.iter_mut() {
                    if !existing.contains_key("pull-from-mirror") {
                        existing["pull-from-mirror"] = value(DIGEST_ONLY);
                    }
                }
            }
        }
    }
    m.decor_mut().set_prefix("\n");
    let item = t.entry("mirror").or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().expect("checked when the base was read").push(m);
}

#[cfg(test)]
mod tests;
