//! The edit engine: one entry per scope (an admin's table in the base, or one the policy adds),
//! mirror sets appended, blocked and insecure scopes marked, and nested scopes given their
//! parent's mirrors (containers/image uses only the longest matching entry).

use super::entry::{Mirror, NewEntry};
use super::DIGEST_ONLY;
use crate::policy::{scope, MirrorSet};
use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;
use toml_edit::{value, ArrayOfTables, Item, Table};

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
pub(super) enum Flag {
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
pub(super) enum Slot {
    Base(usize),
    New(usize),
}

pub(super) struct Edit<'a, 'p> {
    base: &'a mut ArrayOfTables,
    pub(super) new: Vec<NewEntry<'p>>,
    /// scope -> its entry, so each lookup is O(1) even with tens of thousands of entries.
    index: HashMap<Cow<'p, str>, Slot>,
    pub(super) base_changed: bool,
}

impl<'a, 'p> Edit<'a, 'p> {
    pub(super) fn new(base: &'a mut ArrayOfTables) -> Self {
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
    pub(super) fn entry(&mut self, scope: &'p str) -> Slot {
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

    pub(super) fn add_mirror_set(&mut self, set: &'p MirrorSet, mode: &'static str) {
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
    pub(super) fn mark(&mut self, target: &'p str, f: Flag) {
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
    pub(super) fn inherit_nested_mirrors(&mut self, digest: &[MirrorSet], tag: &[MirrorSet]) {
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
