//! Registry scopes: the patterns the API accepts, and when one scope is nested inside another.

use std::sync::LazyLock;

use regex::Regex;

// The OpenShift API patterns for `source` (wildcards allowed) and `mirrors` (none).
const COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";

fn plain_pattern() -> String {
    format!(
        r"^((?:{c})(?:(?:\.(?:{c}))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$",
        c = COMPONENT
    )
}

static SOURCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^\*(?:\.(?:{c}))+$|{p}", c = COMPONENT, p = plain_pattern())).expect("valid pattern")
});
static MIRROR_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(&plain_pattern()).expect("valid pattern"));

/// Whether `s` is a valid IDMS/ITMS/ICSP `source` (`host[:port][/path]` or `*.domain`).
pub fn is_valid_source(s: &str) -> bool {
    SOURCE_RE.is_match(s)
}

/// Whether `s` is a valid mirror (`host[:port][/path]`, no wildcard).
pub fn is_valid_mirror(s: &str) -> bool {
    MIRROR_RE.is_match(s)
}

/// Whether `s` is acceptable as an insecure, blocked or allowed scope: non-empty, and a `*` only as a
/// leading `*.` with no `/`, `@`, `:` or `*` after it.
pub fn is_valid_registries_conf_scope(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if !s.contains('*') {
        return true;
    }
    match s.strip_prefix("*.") {
        Some(rest) => !rest.is_empty() && !rest.contains(['/', '@', ':', '*']),
        None => false,
    }
}

pub fn is_wildcard(scope: &str) -> bool {
    scope.starts_with("*.")
}

/// The host part of a scope: everything before the first `:` or `/`.
pub fn host_part(scope: &str) -> &str {
    scope.split([':', '/']).next().unwrap_or(scope)
}

/// The registry host with its port, if any: everything before the first `/`.
pub fn host_and_port(scope: &str) -> &str {
    scope.split('/').next().unwrap_or(scope)
}

/// `sub` is inside `sup` if they are equal, if `sup` followed by `/` is a prefix of `sub`, or, for
/// `sup = *.x`, if the host part of `sub` ends in `.x`. `quay.io:443` and `quay.io2` are not inside
/// `quay.io`.
pub fn is_nested(sub: &str, sup: &str) -> bool {
    if sub == sup {
        return true;
    }
    if let Some(rest) = sub.strip_prefix(sup) {
        if rest.starts_with('/') {
            return true;
        }
    }
    match sup.strip_prefix('*') {
        Some(suffix) if sup.starts_with("*.") => host_part(sub).ends_with(suffix),
        _ => false,
    }
}

/// The path to append to a parent's mirrors so they serve the nested scope `sub` unchanged in meaning.
/// For a plain parent it is what follows the parent; for a wildcard parent (which matches on the host
/// alone) it is the path after `sub`'s host.
pub fn nested_suffix<'a>(sub: &'a str, sup: &str) -> &'a str {
    if is_wildcard(sup) {
        if is_wildcard(sub) {
            ""
        } else {
            &sub[host_and_port(sub).len()..]
        }
    } else {
        &sub[sup.len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_respects_path_boundaries_and_ports() {
        assert!(is_nested("quay.io", "quay.io"));
        assert!(is_nested("quay.io/ns/repo", "quay.io/ns"));
        assert!(!is_nested("quay.io:443", "quay.io"));
        assert!(!is_nested("quay.io2", "quay.io"));
        assert!(!is_nested("quay.io/ns2", "quay.io/ns"));
        assert!(!is_nested("quay.io", "quay.io/ns"));
        assert!(is_nested("reg.io:5000/x", "reg.io:5000"));
    }

    #[test]
    fn nesting_in_wildcards_looks_at_the_host_only() {
        assert!(is_nested("foo.example.com", "*.example.com"));
        assert!(is_nested("foo.example.com/bar", "*.example.com"));
        assert!(is_nested("foo.example.com:5000/bar", "*.example.com"));
        assert!(is_nested("*.foo.example.com", "*.example.com"));
        assert!(!is_nested("example.com", "*.example.com"));
        assert!(!is_nested("quay.io/bar.example.com", "*.example.com"));
        assert!(!is_nested("quay.io:400/x.example.com", "*.example.com"));
        assert!(!is_nested("fooexample.com", "*.example.com"));
    }

    #[test]
    fn suffixes_for_nested_scopes() {
        assert_eq!(nested_suffix("primary.com/top/blocked", "primary.com/top"), "/blocked");
        assert_eq!(nested_suffix("foo.example.com/bar", "*.example.com"), "/bar");
        assert_eq!(nested_suffix("foo.example.com:5000/bar", "*.example.com"), "/bar");
        assert_eq!(nested_suffix("foo.example.com", "*.example.com"), "");
        assert_eq!(nested_suffix("*.foo.example.com", "*.example.com"), "");
    }

    #[test]
    fn source_and_mirror_patterns() {
        for ok in ["quay.io", "quay.io/ns/repo", "localhost:5000/a_b/c-d", "*.example.com", "a.b.c:443", "reg/x__y"] {
            assert!(is_valid_source(ok), "{ok}");
        }
        for bad in [
            "",
            "docker://quay.io",
            "quay.io/NS",
            "quay.io/",
            "*.example.com/x",
            "*example.com",
            "-a.io",
            "a.io:port",
            "a io",
        ] {
            assert!(!is_valid_source(bad), "{bad}");
        }
        assert!(is_valid_mirror("m.io:8443/x"));
        assert!(!is_valid_mirror("*.example.com"));
    }

    #[test]
    fn registries_conf_scopes() {
        for ok in ["quay.io", "quay.io/ns", "*.example.com", "reg.io:5000"] {
            assert!(is_valid_registries_conf_scope(ok), "{ok}");
        }
        for bad in ["", "*", "*.", "*.a/b", "*.a:1", "a.*.com", "*.a@b", "**.a", "a b"] {
            assert!(!is_valid_registries_conf_scope(bad), "{bad}");
        }
    }
}
