//! registries.conf reduced to what it means, the golden cases' "compare by meaning" rule. It reads
//! the file independently of mirrorconf's own reader on purpose: an oracle that shares the code
//! under test could not catch its mistakes.

use std::collections::BTreeMap;

/// One mirror of a registries.conf entry, as the golden README compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorMeaning {
    pub location: String,
    pub insecure: bool,
    pub pull_from_mirror: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMeaning {
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<MirrorMeaning>,
}

/// registries.conf reduced to what it means: per scope (`prefix` if non-empty, else `location`) the
/// location, flags and ordered mirrors; absent booleans are false. Table order is not meaning.
pub fn registries_meaning(text: &str) -> BTreeMap<String, RegistryMeaning> {
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"));
    let mut out = BTreeMap::new();
    let Some(regs) = doc.get("registry").and_then(|r| r.as_array_of_tables()) else { return out };
    let s = |t: &toml_edit::Table, k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let b = |t: &toml_edit::Table, k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    for t in regs.iter() {
        let scope = if s(t, "prefix").is_empty() { s(t, "location") } else { s(t, "prefix") };
        let mirrors = t
            .get("mirror")
            .and_then(|m| m.as_array_of_tables())
            .map(|ms| {
                ms.iter()
                    .map(|m| MirrorMeaning {
                        location: s(m, "location"),
                        insecure: b(m, "insecure"),
                        pull_from_mirror: s(m, "pull-from-mirror"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let prev = out.insert(
            scope.clone(),
            RegistryMeaning {
                location: s(t, "location"),
                insecure: b(t, "insecure"),
                blocked: b(t, "blocked"),
                mirrors,
            },
        );
        assert!(prev.is_none(), "scope {scope} appears twice in\n{text}");
    }
    out
}
