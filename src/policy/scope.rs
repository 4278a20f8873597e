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

/// Items the API server allows in each of `insecureRegistries`, `blockedRegistries` and
/// `allowedRegistries` (openshift/api config/v1, `MaxItems`).
pub const MAX_SCOPES: usize = 1024;

/// Characters the API server allows in one of those items (`MaxLength`).
pub const MAX_SCOPE_CHARS: usize = 256;

/// Whether `s` is acceptable as an insecure, blocked or allowed scope, exactly as the API server
/// checks it: 1 to 256 characters matching the IDMS `source` pattern (so `*.domain` is allowed, and
/// tags, digests, `..` and uppercase paths are not).
pub fn is_valid_registries_conf_scope(s: &str) -> bool {
    (1..=MAX_SCOPE_CHARS).contains(&s.chars().count()) && is_valid_source(s)
}

/// One character of a hostname label as kube-openapi's `hostname` format has it: an ASCII letter or
/// digit, or any Unicode letter or symbol.
fn is_host_char(c: char) -> bool {
    static LETTER_OR_SYMBOL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{S}]$").expect("valid pattern"));
    c.is_ascii_alphanumeric() || (!c.is_ascii() && LETTER_OR_SYMBOL.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Whether `s` passes the OpenAPI `format: hostname` check of the Kubernetes API server
/// (kube-openapi `strfmt.IsHostname`), which `containerRuntimeSearchRegistries` declares. That
/// check is its `HostnamePattern` plus at most 255 bytes in all and 63 per label. The pattern's
/// quirks are kept, since the point is to accept exactly what a cluster can hold: a name without
/// dots may contain only one `-` (`a-b` but not `a-b-c`), the last label of a dotted name needs two
/// characters (`10.0.0.10` but not `10.0.0.1`), and Unicode letters and symbols count as letters.
/// No port, path or wildcard.
pub fn is_hostname(s: &str) -> bool {
    if s.len() > 255 || s.split('.').any(|label| label.len() > 63) {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    let labels: Vec<&[char]> = chars.split(|c| *c == '.').collect();
    match labels.as_slice() {
        // `X(-?X{0,62})?`
        [single] => match single.split_first() {
            Some((first, rest)) => {
                let rest = rest.strip_prefix(&['-']).unwrap_or(rest);
                is_host_char(*first) && rest.len() <= 62 && rest.iter().all(|c| is_host_char(*c))
            }
            None => false,
        },
        // `(X([X-]{0,61}X)?\.)+X(-?X){1,62}`
        [labels @ .., last] => {
            let label_ok = |l: &[char]| match (l.first(), l.last()) {
                (Some(a), Some(z)) => {
                    l.len() <= 63
                        && is_host_char(*a)
                        && is_host_char(*z)
                        && l.iter().all(|c| *c == '-' || is_host_char(*c))
                }
                _ => false,
            };
            let last_ok = match last.split_first() {
                Some((first, rest)) => {
                    let dashes_ok = !rest.windows(2).any(|w| w == ['-', '-']) && rest.last().is_some_and(|c| *c != '-');
                    let units = rest.iter().filter(|c| **c != '-').count();
                    is_host_char(*first)
                        && dashes_ok
                        && (1..=62).contains(&units)
                        && rest.iter().all(|c| *c == '-' || is_host_char(*c))
                }
                None => false,
            };
            labels.iter().all(|l| label_ok(l)) && last_ok
        }
        [] => false,
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
        let longest = format!("q.io/{}", "a".repeat(MAX_SCOPE_CHARS - 5));
        for ok in ["quay.io", "quay.io/ns", "*.example.com", "reg.io:5000", "Quay.io/ns", "10.0.0.1:5000/x", &longest] {
            assert!(is_valid_registries_conf_scope(ok), "{ok}");
        }
        let too_long = format!("{longest}a");
        for bad in [
            "",
            "*",
            "*.",
            "*.a/b",
            "*.a:1",
            "a.*.com",
            "*.a@b",
            "**.a",
            "a b",
            "quay.io:latest",
            "quay.io/ns/app:latest",
            "quay.io/ns/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "..",
            "x/../../y",
            "a:b:c",
            "quay.io/Upper",
            "https://quay.io",
            &too_long,
        ] {
            assert!(!is_valid_registries_conf_scope(bad), "{bad}");
        }
    }

    #[test]
    fn hostnames_as_the_api_server_checks_them() {
        for ok in [
            "quay.io",
            "localhost",
            "registry.example.com",
            "a-",
            "a-bc",
            "a--b.io",
            "10.0.0.10",
            "☃.com",
            "reg-1.corp-2.io",
        ] {
            assert!(is_hostname(ok), "{ok}");
        }
        let long_label = format!("{}.io", "a".repeat(64));
        let long_name = format!("{}io", "abcdefgh.".repeat(29));
        for bad in [
            "",
            "quay.io:5000",
            "quay.io/ns",
            "*.example.com",
            "my-registry",
            "ab-c",
            "a.b",
            "10.0.0.1",
            "-a.io",
            "a.io-",
            "x.-a",
            "a..b",
            ".a",
            "a.",
            "a_b.io",
            "a b.io",
            &long_label,
            &long_name,
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }

    /// kube-openapi's own `HostnamePattern`, compiled only here (it is slow to build) to check the
    /// hand-written matcher against it.
    fn kube_openapi_hostname(s: &str) -> bool {
        static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([-a-zA-Z0-9\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z0-9\p{S}\p{L}])(-?[a-zA-Z0-9\p{S}\p{L}]){1,62})$")
                .expect("valid pattern")
        });
        PATTERN.is_match(s) && s.len() <= 255 && s.split('.').all(|l| l.len() <= 63)
    }

    proptest::proptest! {
        #[test]
        fn the_hostname_matcher_is_kube_openapis(s in "[a-c0-9.\\-é☃_:]{0,70}") {
            proptest::prop_assert_eq!(is_hostname(&s), kube_openapi_hostname(&s), "{:?}", s);
        }
    }
}
