//! The fix for a refused registry name (a mirror, a source or a scope), said as what to change:
//! people paste image references (`m.corp/team/app:v1`, `https://m.corp`) where a repository is
//! meant.

/// What to change in `value` to make it a `host[:port][/path]` (or, when `wildcard` is allowed,
/// `*.domain`), one step per problem found; `None` when nothing specific can be said.
pub fn fix(value: &str, wildcard: bool) -> Option<String> {
    let mut steps = Vec::new();
    let mut rest = value;
    if rest.trim() != rest {
        steps.push("remove the spaces around it".to_string());
        rest = rest.trim();
    }
    if let Some((scheme, after)) = rest.split_once("://") {
        steps.push(format!("drop the scheme {}", code(&format!("{scheme}://"))));
        rest = after;
    }
    if let Some((before, digest)) = rest.split_once('@') {
        let algorithm = digest.split_once(':').map(|(a, _)| a).unwrap_or(digest);
        steps.push(format!("drop the digest {}", code(&format!("@{algorithm}:..."))));
        rest = before;
    }
    if let Some(slash) = rest.find('/') {
        if let Some(colon) = rest[slash..].rfind(':').map(|c| slash + c) {
            if !rest[colon..].contains('/') {
                steps.push(format!("drop the tag {}", code(&rest[colon..])));
                rest = &rest[..colon];
            }
        }
    }
    if rest.len() > 1 && rest.ends_with('/') {
        steps.push(format!("drop the trailing {}", code("/")));
        rest = rest.trim_end_matches('/');
    }
    if let Some(slash) = rest.find('/') {
        let path = &rest[slash..];
        if path.chars().any(|c| c.is_uppercase()) {
            steps.push(format!("write the path in lowercase: {}", code(&path.to_lowercase())));
        }
        if rest.starts_with("*.") {
            steps.push(format!("a wildcard is only `*.domain`: drop the path {}", code(path)));
        }
    }
    if rest.starts_with('*') && !wildcard {
        steps.push("a mirror cannot be a wildcard: name one registry host".to_string());
    }
    (!steps.is_empty()).then(|| steps.join(", "))
}

/// A piece of the value as a message quotes it: in backticks, escaped, cut short.
fn code(piece: &str) -> String {
    let cut: String = piece.chars().take(64).collect();
    let more = if cut.len() < piece.len() { "..." } else { "" };
    format!("`{}{more}`", cut.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::fix;

    #[test]
    fn each_common_mistake_gets_its_fix() {
        let cases = [
            ("m.corp/team/app:v1", "drop the tag `:v1`"),
            ("m.corp:5000/team/app:v1", "drop the tag `:v1`"),
            ("m.corp/app@sha256:0123abcd", "drop the digest `@sha256:...`"),
            ("m.corp/app:v1@sha256:0123abcd", "drop the digest `@sha256:...`, drop the tag `:v1`"),
            ("https://m.corp", "drop the scheme `https://`"),
            ("docker://quay.io/ns", "drop the scheme `docker://`"),
            ("m.corp/Team/App", "write the path in lowercase: `/team/app`"),
            ("m.corp/ns/", "drop the trailing `/`"),
            (" m.corp/ns", "remove the spaces around it"),
            ("*.corp/path", "a wildcard is only `*.domain`: drop the path `/path`"),
        ];
        for (value, want) in cases {
            assert_eq!(fix(value, true).as_deref(), Some(want), "{value}");
        }
        assert_eq!(
            fix("*.mirror.corp", false).as_deref(),
            Some("a mirror cannot be a wildcard: name one registry host")
        );
    }

    #[test]
    fn a_port_is_not_a_tag_and_nothing_is_said_without_a_known_mistake() {
        assert_eq!(fix("m.corp:5000/ns", false), None);
        assert_eq!(fix("m.corp:5000", false), None);
        assert_eq!(fix("Bad Source!", true), None);
        assert_eq!(fix("", true), None);
    }

    #[test]
    fn quoted_pieces_are_escaped() {
        assert_eq!(fix("m.corp/a:\u{1b}[2J", false).as_deref(), Some("drop the tag `:\\u{1b}[2J`"));
    }
}
