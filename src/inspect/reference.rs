//! Image references as the runtimes read them (the docker reference grammar): `name[:tag][@digest]`,
//! with a registry host only when the first component has a `.` or `:` or is `localhost`; otherwise
//! `docker.io`, where one-component names live under `library/`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]`.
    pub registry: String,
    /// The repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {reference:?}: {reason}")]
pub struct RefError {
    pub reference: String,
    pub reason: &'static str,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, RefError> {
        let fail = |reason| Err(RefError { reference: input.to_string(), reason });
        let s = input.strip_prefix("docker://").unwrap_or(input);
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail("empty, or holds a space or a control character");
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                    !alg.is_empty()
                        && alg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                        && hex.len() >= 32
                        && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                });
                if !ok {
                    return fail("the digest must be algorithm:hex, e.g. sha256:<64 hex digits>");
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (&name_tag[..last_slash + i], Some(name_tag[last_slash + i + 1..].to_string())),
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !t.starts_with(['.', '-']);
            if !ok {
                return fail("the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -");
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" { "docker.io".to_string() } else { registry };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if registry.chars().any(|c| c.is_ascii_uppercase()) || registry.contains('/') {
            return fail("the registry host must be lowercase");
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return fail("the repository path must be lowercase components of [a-z0-9._-]");
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// `registry/repository`, as containers/image matches registries.conf prefixes against.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub fn is_digested(&self) -> bool {
        self.digest.is_some()
    }

    /// The part after the name: `:tag`, `@digest` or both.
    pub fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name(), self.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(ImageRef::parse("busybox").unwrap().to_string(), "docker.io/library/busybox:latest");
        assert_eq!(ImageRef::parse("team/app:v1").unwrap().to_string(), "docker.io/team/app:v1");
        assert_eq!(ImageRef::parse("index.docker.io/busybox").unwrap().to_string(), "docker.io/library/busybox:latest");
        assert_eq!(ImageRef::parse("localhost/app").unwrap().registry, "localhost");
    }

    #[test]
    fn ports_tags_and_digests() {
        let r = ImageRef::parse(&format!("reg.local:5000/team/app@{D}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("reg.local:5000", "team/app", None)
        );
        assert!(r.is_digested());
        let r = ImageRef::parse(&format!("reg.local:5000/team/app:v2@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.to_string(), format!("reg.local:5000/team/app:v2@{D}"));
    }

    #[test]
    fn bad_references_say_why() {
        for bad in ["", "Quay.io/x", "quay.io/Team/app", "quay.io/app@sha256:xyz", "quay.io/app:-bad", "a b"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
