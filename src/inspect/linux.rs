//! Which endpoints containers/image (CRI-O, podman, skopeo) tries for a reference, read from a
//! registries.conf text the way containers/image reads it: the one `[[registry]]` with the longest
//! matching prefix; its mirrors in order, skipping those whose `pull-from-mirror` (or the registry's
//! `mirror-by-digest-only`) does not fit the reference; then the registry's own location unless
//! `blocked`. Each endpoint's reference is the endpoint location plus what follows the prefix.

use super::conf::{self, Registry};
use super::reference::ImageRef;
use super::{Endpoint, Resolution, Skipped};

/// Length of the match of `prefix` at the start of `reference`, as containers/image computes it
/// (including its known quirk: `example.com` also matches `example.com:5000/...`).
fn matching_prefix(reference: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        // `*.example.com`: the host part of the reference must end with `.example.com`.
        let host_end = reference.find(['/', '@', ':']).unwrap_or(reference.len());
        return reference[..host_end].ends_with(domain).then_some(host_end);
    }
    if !reference.starts_with(prefix) {
        return None;
    }
    match reference.as_bytes().get(prefix.len()) {
        None | Some(b'/' | b'@' | b':') => Some(prefix.len()),
        _ => None,
    }
}

pub fn resolve(
    reference: &ImageRef,
    registries_conf: &str,
    cas: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolution, String> {
    let full = reference.to_string();
    let regs = conf::parse(registries_conf).map_err(|e| format!("registries.conf {e}"))?.registries;
    // The longest prefix wins; on a tie the first table does (a strict comparison, as containers/image).
    let mut best: Option<(&Registry, usize)> = None;
    for r in &regs {
        if matching_prefix(&full, &r.scope).is_some() && best.is_none_or(|(b, _)| r.scope.len() > b.scope.len()) {
            best = Some((r, r.scope.len()));
        }
    }
    let mut res =
        Resolution { reference: full.clone(), matched: None, endpoints: vec![], skipped: vec![], refused: None };
    let Some((reg, _)) = best else {
        res.endpoints.push(Endpoint {
            pull: full.clone(),
            kind: "source".into(),
            why: "no [[registry]] matches: the reference as written".into(),
            insecure: false,
            ca: cas(&reference.registry),
        });
        return Ok(res);
    };
    res.matched = Some(format!("[[registry]] prefix {:?} (location {:?})", reg.scope, reg.location));
    let cut = matching_prefix(&full, &reg.scope).expect("matched above");
    let rewrite = |location: &str| {
        if location.is_empty() {
            full.clone()
        } else {
            format!("{location}{}", &full[cut..])
        }
    };
    let (endpoints, skipped) = table_endpoints(reg, &rewrite, Some(reference.is_digested()), cas);
    res.endpoints = endpoints;
    res.skipped = skipped;
    Ok(res)
}

/// The endpoints of one `[[registry]]` table, in the order containers/image tries them: its mirrors,
/// then its location unless `blocked`. `rewrite` turns a location into what is fetched there.
/// `digested` is the reference's kind, which filters mirrors by `pull-from-mirror` (and
/// `mirror-by-digest-only`); `None` keeps every mirror, for a listing of all a table may use.
fn table_endpoints(
    reg: &Registry,
    rewrite: &dyn Fn(&str) -> String,
    digested: Option<bool>,
    cas: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Endpoint>, Vec<Skipped>) {
    let (mut endpoints, mut skipped) = (vec![], vec![]);
    for m in &reg.mirrors {
        let pull = rewrite(&m.location);
        let skip = |why: &str| Skipped { pull: pull.clone(), why: why.into() };
        match (digested, m.pull_from_mirror.as_str()) {
            (Some(false), _) if reg.mirror_by_digest_only => {
                skipped.push(skip("the registry has mirror-by-digest-only and the reference has no digest"));
                continue;
            }
            (Some(false), "digest-only") => {
                skipped.push(skip("digest-only mirror (ImageDigestMirrorSet/ICSP) and the reference has no digest"));
                continue;
            }
            (Some(true), "tag-only") => {
                skipped.push(skip("tag-only mirror (ImageTagMirrorSet) and the reference has a digest"));
                continue;
            }
            _ => {}
        }
        let mode = if m.pull_from_mirror.is_empty() { "all" } else { m.pull_from_mirror.as_str() };
        let host = pull.split('/').next().unwrap_or_default().to_string();
        endpoints.push(Endpoint {
            pull,
            kind: "mirror".into(),
            why: format!("pull-from-mirror = {mode}"),
            insecure: m.insecure,
            ca: cas(&host),
        });
    }
    let source = rewrite(&reg.location);
    if reg.blocked {
        skipped.push(Skipped {
            pull: source,
            why: "the source is blocked (NeverContactSource or blockedRegistries)".into(),
        });
    } else {
        let host = source.split('/').next().unwrap_or_default().to_string();
        endpoints.push(Endpoint {
            pull: source,
            kind: "source".into(),
            why: "the registry's location".into(),
            insecure: reg.insecure,
            ca: cas(&host),
        });
    }
    (endpoints, skipped)
}

/// One `[[registry]]` table and every endpoint it may send a pull to, whatever the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEndpoints {
    /// The table's scope (`prefix`, else `location`).
    pub scope: String,
    /// Each location as written (no reference appended), in the order they are tried.
    pub endpoints: Vec<Endpoint>,
    pub skipped: Vec<Skipped>,
}

/// Every endpoint of every `[[registry]]` table, in file order: what `check` probes when no image
/// is named. A table without a location (a wildcard `prefix`) contacts the host each reference
/// names, which no listing can know: its source is left out, said in `skipped`.
pub fn every_endpoint(
    registries_conf: &str,
    cas: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<TableEndpoints>, String> {
    let regs = conf::parse(registries_conf).map_err(|e| format!("registries.conf {e}"))?.registries;
    Ok(regs
        .iter()
        .map(|reg| {
            let (mut endpoints, mut skipped) = table_endpoints(reg, &|location| location.to_string(), None, cas);
            if reg.location.is_empty() {
                endpoints.retain(|e| !(e.kind == "source" && e.pull.is_empty()));
                skipped.retain(|s| !s.pull.is_empty());
                if !reg.blocked {
                    skipped.push(Skipped {
                        pull: reg.scope.clone(),
                        why: "no location: the source is whatever host an image names".into(),
                    });
                }
            }
            TableEndpoints { scope: reg.scope.clone(), endpoints, skipped }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// Two scopes on one host (the longest wins), mirror modes, a wildcard scope.
    const CONF: &str = include_str!("testdata/resolve-scopes.conf");

    fn pulls(r: &Resolution) -> Vec<&str> {
        r.endpoints.iter().map(|e| e.pull.as_str()).collect()
    }

    #[test]
    fn the_longest_prefix_wins_and_modes_filter_mirrors() {
        let none = |_: &str| None;
        let r = resolve(&ImageRef::parse(&format!("quay.io/team/app@{D}")).unwrap(), CONF, &none).unwrap();
        assert_eq!(pulls(&r), vec![format!("m1.local/team/app@{D}")]);
        assert_eq!(r.skipped.len(), 2, "{r:?}"); // the tag-only mirror and the blocked source
        let r = resolve(&ImageRef::parse("quay.io/team/app:v1").unwrap(), CONF, &none).unwrap();
        assert_eq!(pulls(&r), vec!["m2.local/team/app:v1"]);
        assert!(r.endpoints[0].insecure);
        let r = resolve(&ImageRef::parse("quay.io/other/app:v1").unwrap(), CONF, &none).unwrap();
        assert_eq!(pulls(&r), vec!["all.local/other/app:v1", "quay.io/other/app:v1"]);
        // containers/image quirk: "quay.io" matches "quay.io:443/..." too.
        let r = resolve(&ImageRef::parse("quay.io:443/x/app:v1").unwrap(), CONF, &none).unwrap();
        assert_eq!(pulls(&r), vec!["all.local:443/x/app:v1", "quay.io:443/x/app:v1"]);
        let r = resolve(&ImageRef::parse("a.example.com/team/app:v1").unwrap(), CONF, &none).unwrap();
        assert_eq!(pulls(&r), vec!["wild.local/x/team/app:v1", "a.example.com/team/app:v1"]);
        let r = resolve(&ImageRef::parse("busybox").unwrap(), CONF, &none).unwrap();
        assert_eq!(pulls(&r), vec!["docker.io/library/busybox:latest"]);
        assert!(r.matched.is_none());
    }

    #[test]
    fn every_endpoint_lists_each_table_unfiltered_in_file_order() {
        let tables = every_endpoint(CONF, &|h: &str| (h == "m2.local").then(|| "ca".to_string())).unwrap();
        let listed: Vec<(&str, Vec<&str>)> =
            tables.iter().map(|t| (t.scope.as_str(), t.endpoints.iter().map(|e| e.pull.as_str()).collect())).collect();
        assert_eq!(
            listed,
            vec![
                ("quay.io/team", vec!["m1.local/team", "m2.local/team"]),
                ("quay.io", vec!["all.local", "quay.io"]),
                ("*.example.com", vec!["wild.local/x"]),
            ]
        );
        assert_eq!(tables[0].endpoints[1].ca.as_deref(), Some("ca"));
        assert!(tables[0].endpoints[1].insecure);
        assert_eq!(tables[0].skipped[0].pull, "quay.io/team", "the blocked source");
        assert_eq!(tables[2].skipped[0].pull, "*.example.com", "a wildcard has no source to list");
    }
}
