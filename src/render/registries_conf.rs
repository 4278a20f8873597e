//! `/etc/containers/registries.conf`: the node's own file (the base) plus the mirror policy.
//!
//! The base is parsed with `toml_edit` and only the admin's `[[registry]]` tables that the policy
//! touches are edited in place, so comments, formatting and every other setting survive byte for
//! byte. Entries the policy adds are plain data ([`NewEntry`]) written as text after the base: with
//! tens of thousands of mirror entries this is an order of magnitude faster than growing the
//! `toml_edit` document, and the result is parsed back by the tests.
//!
//! The edit follows OpenShift's MCO (DESIGN.md section 1): mirror sets, then blocked and insecure
//! scopes, then nested scopes inherit their parent's mirrors. It differs where the reference is wrong:
//! wildcard mirror sources with nested entries render correctly, and the base is kept, not replaced.

use crate::policy::{scope, MirrorSet, Policy};
use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;
use std::fmt::Write;
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

/// A `[[registry.mirror]]` as containers/image reads it. Strings borrow from the policy where they
/// can: at tens of thousands of entries, allocations are most of the cost.
#[derive(Debug, Clone)]
struct Mirror<'p> {
    location: Cow<'p, str>,
    insecure: bool,
    pull_from_mirror: Option<Cow<'p, str>>,
}

/// A `[[registry]]` the policy adds (the base had no table for its scope).
#[derive(Debug)]
struct NewEntry<'p> {
    scope: &'p str,
    insecure: bool,
    blocked: bool,
    mirrors: Vec<Mirror<'p>>,
}

impl NewEntry<'_> {
    fn write(&self, out: &mut String, first: bool) {
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

/// The scope a base `[[registry]]` table applies to: `prefix` if non-empty, else `location`.
fn scope_of(t: &Table) -> &str {
    let get = |k: &str| t.get(k).and_then(Item::as_str).unwrap_or("");
    match get("prefix") {
        "" => get("location"),
        p => p,
    }
}

fn base_mirrors(t: &Table) -> impl Iterator<Item = &Table> {
    t.get("mirror").and_then(Item::as_array_of_tables).into_iter().flat_map(ArrayOfTables::iter)
}

fn flag(t: &Table, key: &str) -> bool {
    t.get(key).and_then(Item::as_bool).unwrap_or(false)
}

#[derive(Clone, Copy)]
enum Flag {
    Insecure,
    Blocked,
}

impl Flag {
    fn key(self) -> &'static str {
        match self {
            Flag::Insecure => "insecure",
            Flag::Blocked => "blocked",
        }
    }
}

/// Where an entry lives: an admin's table in the base, or one the policy adds.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Base(usize),
    New(usize),
}

struct Edit<'a, 'p> {
    base: &'a mut ArrayOfTables,
    new: Vec<NewEntry<'p>>,
    /// scope -> its entry, so each lookup is O(1) even with tens of thousands of entries.
    index: HashMap<Cow<'p, str>, Slot>,
    base_changed: bool,
}

impl<'a, 'p> Edit<'a, 'p> {
    fn new(base: &'a mut ArrayOfTables) -> Self {
        let mut index = HashMap::with_capacity(base.len());
        for (i, t) in base.iter().enumerate() {
            // The first table for a scope wins, as in the reference.
            index.entry(Cow::Owned(scope_of(t).to_string())).or_insert(Slot::Base(i));
        }
        Edit { base, new: Vec::new(), index, base_changed: false }
    }

    fn base_ref(&self, i: usize) -> &Table {
        self.base.get(i).expect("indexes are kept in range")
    }

    fn base_table(&mut self, i: usize) -> &mut Table {
        self.base_changed = true;
        self.base.get_mut(i).expect("indexes are kept in range")
    }

    /// The entry for `scope`, added when missing.
    fn entry(&mut self, scope: &'p str) -> Slot {
        if let Some(s) = self.index.get(scope) {
            return *s;
        }
        self.new.push(NewEntry { scope, insecure: false, blocked: false, mirrors: Vec::new() });
        let slot = Slot::New(self.new.len() - 1);
        self.index.insert(Cow::Borrowed(scope), slot);
        slot
    }

    fn set_flag(&mut self, slot: Slot, f: Flag) {
        match slot {
            Slot::New(i) => match f {
                Flag::Insecure => self.new[i].insecure = true,
                Flag::Blocked => self.new[i].blocked = true,
            },
            Slot::Base(i) => {
                if !flag(self.base_ref(i), f.key()) {
                    self.base_table(i)[f.key()] = value(true);
                }
            }
        }
    }

    fn append_mirrors(&mut self, slot: Slot, mirrors: impl IntoIterator<Item = Mirror<'p>>) {
        match slot {
            Slot::New(i) => self.new[i].mirrors.extend(mirrors),
            Slot::Base(i) => {
                let t = self.base_table(i);
                for m in mirrors {
                    append_base_mirror(t, m);
                }
            }
        }
    }

    fn add_mirror_set(&mut self, set: &'p MirrorSet, mode: &'static str) {
        let slot = self.entry(&set.source);
        if set.never_contact_source {
            self.set_flag(slot, Flag::Blocked);
        }
        let mirrors = set.mirrors.iter().map(|m| Mirror {
            location: Cow::Borrowed(m.as_str()),
            insecure: false,
            pull_from_mirror: Some(Cow::Borrowed(mode)),
        });
        self.append_mirrors(slot, mirrors);
    }

    /// Sets `insecure` or `blocked` on `scope` and every entry nested inside it; `insecure` also on
    /// every mirror whose location is nested (mirrors are never blocked).
    fn mark(&mut self, target: &'p str, f: Flag) {
        let slot = self.entry(target);
        self.set_flag(slot, f);
        for i in 0..self.base.len() {
            if scope::is_nested(scope_of(self.base_ref(i)), target) {
                self.set_flag(Slot::Base(i), f);
            }
            if let Flag::Insecure = f {
                let nested: Vec<usize> = base_mirrors(self.base_ref(i))
                    .enumerate()
                    .filter(|(_, m)| {
                        scope::is_nested(m.get("location").and_then(Item::as_str).unwrap_or(""), target)
                            && !flag(m, "insecure")
                    })
                    .map(|(j, _)| j)
                    .collect();
                if !nested.is_empty() {
                    let ms = self.base_table(i)["mirror"].as_array_of_tables_mut().expect("checked when read");
                    for j in nested {
                        ms.get_mut(j).expect("in range")["insecure"] = value(true);
                    }
                }
            }
        }
        for e in &mut self.new {
            if scope::is_nested(e.scope, target) {
                match f {
                    Flag::Insecure => e.insecure = true,
                    Flag::Blocked => e.blocked = true,
                }
            }
            if let Flag::Insecure = f {
                for m in &mut e.mirrors {
                    if scope::is_nested(&m.location, target) {
                        m.insecure = true;
                    }
                }
            }
        }
    }

    fn scope(&self, slot: Slot) -> &str {
        match slot {
            Slot::Base(i) => scope_of(self.base_ref(i)),
            Slot::New(i) => self.new[i].scope,
        }
    }

    fn mirrors(&self, slot: Slot) -> Vec<Mirror<'p>> {
        match slot {
            Slot::New(i) => self.new[i].mirrors.clone(),
            Slot::Base(i) => base_mirrors(self.base_ref(i))
                .map(|m| Mirror {
                    location: Cow::Owned(m.get("location").and_then(Item::as_str).unwrap_or("").to_string()),
                    insecure: flag(m, "insecure"),
                    pull_from_mirror: m
                        .get("pull-from-mirror")
                        .and_then(Item::as_str)
                        .map(|p| Cow::Owned(p.to_string())),
                })
                .collect(),
        }
    }

    fn has_mirrors(&self, slot: Slot) -> bool {
        match slot {
            Slot::New(i) => !self.new[i].mirrors.is_empty(),
            Slot::Base(i) => base_mirrors(self.base_ref(i)).next().is_some(),
        }
    }

    /// containers/image uses only the longest matching entry, so an entry nested inside a mirrored
    /// source (say a blocked sub-namespace) would lose the parent's mirrors. Every entry without mirrors
    /// gets copies of its parent's, with the rest of its path appended. As in the reference, parents are
    /// taken in order (digest sources sorted, then tag sources sorted) and the first one wins.
    fn inherit_nested_mirrors(&mut self, digest: &[MirrorSet], tag: &[MirrorSet]) {
        let mut rank: HashMap<&str, usize> = HashMap::new();
        for (r, set) in digest.iter().chain(tag.iter()).enumerate() {
            rank.entry(set.source.as_str()).or_insert(r);
        }
        if rank.is_empty() {
            return;
        }
        let slots = (0..self.base.len()).map(Slot::Base).chain((0..self.new.len()).map(Slot::New));
        let mut copies: Vec<(Slot, Vec<Mirror<'p>>)> = Vec::new();
        for slot in slots {
            if self.has_mirrors(slot) {
                continue;
            }
            let sub = self.scope(slot);
            let parent = ancestors(sub).into_iter().filter_map(|a| rank.get(a.as_ref()).map(|r| (*r, a))).min();
            let Some((_, parent)) = parent else { continue };
            let suffix = scope::nested_suffix(sub, &parent).to_string();
            let adjusted = self
                .mirrors(self.index[parent.as_ref()])
                .into_iter()
                .map(|mut m| {
                    m.location.to_mut().push_str(&suffix);
                    m
                })
                .collect();
            copies.push((slot, adjusted));
        }
        for (slot, ms) in copies {
            self.append_mirrors(slot, ms);
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

/// Appends a mirror to an admin's table, keeping the file valid: containers/image refuses a registry
/// that has `mirror-by-digest-only` and a per-mirror `pull-from-mirror` at once, so an admin's
/// `mirror-by-digest-only = true` is converted to `pull-from-mirror = "digest-only"` on their mirrors.
fn append_base_mirror(t: &mut Table, m: Mirror<'_>) {
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
    let mut mt = Table::new();
    mt["location"] = value(m.location.as_ref());
    if m.insecure {
        mt["insecure"] = value(true);
    }
    if let Some(p) = m.pull_from_mirror {
        mt["pull-from-mirror"] = value(p.as_ref());
    }
    mt.decor_mut().set_prefix("\n");
    let item = t.entry("mirror").or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().expect("checked when the base was read").push(mt);
}

#[cfg(test)]
mod tests;
