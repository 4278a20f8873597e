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
    let digested = reference.is_digested();
    for m in &reg.mirrors {
        let pull = rewrite(&m.location);
        let skip = |why: String| Skipped { pull: pull.clone(), why };
        if reg.mirror_by_digest_only && !digested {
            res.skipped.push(skip("the registry has mirror-by-digest-only and the reference has no digest".into()));
            continue;
        }
        match m.pull_from_mirror.as_str() {
            "digest-only" if !digested => {
                res.skipped.push(skip(
                    "digest-only mirror (ImageDigestMirrorSet/ICSP) and the reference has no digest".into(),
                ));
                continue;
            }
            "tag-only" if digested => {
                res.skipped.push(skip("tag-only mirror (ImageTagMirrorSet) and the reference has a digest".into()));
                continue;
            }
            _ => {}
        }
        let mode = if m.pull_from_mirror.is_empty() { "all" } else { m.pull_from_mirror.as_str() };
        let host = pull.split('/').next().unwrap_or_default().to_string();
        res.endpoints.push(Endpoint {
            pull,
            kind: "mirror".into(),
            why: format!("pull-from-mirror = {mode}"),
            insecure: m.insecure,
            ca: cas(&host),
        });
    }
    let source = rewrite(&reg.location);
    if reg.blocked {
        res.skipped.push(Skipped {
            pull: source,
            why: "the source is blocked (NeverContactSource or blockedRegistries)".into(),
        });
    } else {
        let host = source.split('/').next().unwrap_or_default().to_string();
        res.endpoints.push(Endpoint {
            pull: source,
            kind: "source".into(),
            why: "the registry's location".into(),
            insecure: reg.insecure,
            ca: cas(&host),
        });
    }
    Ok(res)
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
}
