//! A registries.conf read for explaining it: the `[[registry]]` tables as containers/image sees them
//! (scope = `prefix`, else `location`), the search list, and every other setting kept as text so
//! that a comparison notices any change. Shared by `resolve` and `diff`'s disruption classes.

use toml_edit::{DocumentMut, Item, Table};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    /// `pull-from-mirror`; empty when unset (containers/image then uses the mirror for all pulls).
    pub pull_from_mirror: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `prefix` when set, else `location`: what references are matched against.
    pub scope: String,
    pub location: String,
    pub blocked: bool,
    pub insecure: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
    /// Every key but prefix, location, blocked, insecure and the mirrors, as `key=value` text.
    pub rest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// In file order.
    pub registries: Vec<Registry>,
    pub search: Vec<String>,
    /// Every other top-level setting, as `key=value` lines.
    pub rest: String,
}

fn string(t: &Table, key: &str) -> String {
    t.get(key).and_then(Item::as_str).unwrap_or_default().to_string()
}

fn boolean(t: &Table, key: &str) -> bool {
    t.get(key).and_then(Item::as_bool).unwrap_or(false)
}

fn as_text(t: &Table, skip: &[&str], sep: &str) -> String {
    t.iter()
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, v)| format!("{k}={}", v.to_string().trim()))
        .collect::<Vec<_>>()
        .join(sep)
}

pub fn parse(text: &str) -> Result<Conf, String> {
    let doc: DocumentMut =
        text.parse().map_err(|e| format!("does not parse ({})", crate::text::toml_error_text(text, &e)))?;
    let registries = doc
        .get("registry")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flatten()
        .map(|t| {
            let location = string(t, "location");
            let scope = Some(string(t, "prefix")).filter(|p| !p.is_empty()).unwrap_or_else(|| location.clone());
            let mirrors = t
                .get("mirror")
                .and_then(Item::as_array_of_tables)
                .into_iter()
                .flatten()
                .map(|m| Mirror {
                    location: string(m, "location"),
                    insecure: boolean(m, "insecure"),
                    pull_from_mirror: string(m, "pull-from-mirror"),
                })
                .collect();
            Registry {
                scope,
                location,
                blocked: boolean(t, "blocked"),
                insecure: boolean(t, "insecure"),
                mirror_by_digest_only: boolean(t, "mirror-by-digest-only"),
                mirrors,
                rest: as_text(t, &["prefix", "location", "blocked", "insecure", "mirror"], ","),
            }
        })
        .collect();
    let search = doc
        .get("unqualified-search-registries")
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let rest = as_text(doc.as_table(), &["registry", "unqualified-search-registries"], "\n");
    Ok(Conf { registries, search, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_mirrors_search_and_the_rest() {
        let conf = parse(include_str!("testdata/conf-scopes.conf")).unwrap();
        assert_eq!(conf.search, ["registry.example", "docker.io"]);
        assert_eq!(conf.rest, r#"short-name-mode="enforcing""#);
        let [team, example] = &conf.registries[..] else { panic!("{conf:?}") };
        assert_eq!((team.scope.as_str(), team.mirror_by_digest_only, team.blocked), ("quay.io/team", true, false));
        assert_eq!(
            team.mirrors,
            [Mirror { location: "mirror.local/team".into(), insecure: true, pull_from_mirror: "digest-only".into() }]
        );
        assert_eq!(team.rest, "mirror-by-digest-only=true");
        // No prefix: the location is the scope.
        assert_eq!((example.scope.as_str(), example.blocked, example.mirrors.len()), ("registry.example", true, 0));
    }

    #[test]
    fn a_broken_file_is_an_error_not_an_empty_policy() {
        let err = parse("[[registry]\nlocation = 1").unwrap_err();
        assert!(err.starts_with("does not parse"), "{err}");
    }
}
