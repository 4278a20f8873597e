//! The cluster pull secret (`openshift-config/pull-secret`, type `kubernetes.io/dockerconfigjson`):
//! which registry gets which `Authorization` header.

use super::{Inputs, Secret};
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const NAMESPACE: &str = "openshift-config";
pub const NAME: &str = "pull-secret";
pub const KEY: &str = ".dockerconfigjson";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Secret/{NAME}: data[{KEY}]: {message}")]
pub struct PullSecretError {
    pub message: String,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Registry (`host[:port][/path]`) -> base64 `user:password`, as `Basic` credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PullSecret {
    auths: BTreeMap<String, String>,
}

/// Names the registries only: a policy (which holds the pull secret) may be debug-printed.
impl std::fmt::Debug for PullSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSecret").field("registries", &self.auths.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl PullSecret {
    /// Finds the pull secret among the inputs (in `openshift-config`, or with no namespace in a
    /// manifests folder). `Ok(None)` when there is none.
    pub fn from_inputs(inputs: &Inputs) -> Result<Option<PullSecret>, PullSecretError> {
        let found = inputs.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(NAME)
                && matches!(s.metadata.namespace.as_deref(), None | Some(NAMESPACE))
        });
        found.map(Self::from_secret).transpose()
    }

    pub fn from_secret(secret: &Secret) -> Result<PullSecret, PullSecretError> {
        let fail = |message: String| PullSecretError { message };
        let bytes: Vec<u8> = if let Some(b) = secret.data.as_ref().and_then(|d| d.get(KEY)) {
            b.0.clone()
        } else if let Some(s) = secret.string_data.as_ref().and_then(|d| d.get(KEY)) {
            s.as_bytes().to_vec()
        } else {
            return Err(fail("missing".into()));
        };
        Self::from_json(&bytes)
    }

    /// A docker `config.json` as text (what the Secret holds; on a node, the kubelet's
    /// `/var/lib/kubelet/config.json`, which CRI-O reads).
    pub fn from_json(bytes: &[u8]) -> Result<PullSecret, PullSecretError> {
        let fail = |message: String| PullSecretError { message };
        let config: DockerConfig =
            // serde_json's message can quote the value it choked on, here a credential: say where only.
            serde_json::from_slice(bytes).map_err(|e| {
                fail(format!("not a docker config.json ({:?} error at line {}, column {})", e.classify(), e.line(), e.column()))
            })?;
        let mut auths = BTreeMap::new();
        for (registry, entry) in config.auths {
            let auth = match (entry.auth, entry.username, entry.password) {
                (Some(a), _, _) if !a.is_empty() => a,
                (_, Some(u), Some(p)) => base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")),
                _ => continue,
            };
            // Keys may be written as URLs (`https://quay.io/v1/`); keep host[:port][/path].
            let key = registry.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            auths.insert(key.to_string(), auth);
        }
        Ok(PullSecret { auths })
    }

    /// The credentials for a registry location: the most specific key that is the location or a
    /// path-prefix of it.
    /// Every registry with its credentials, sorted by registry (for the policy fingerprint, which
    /// hashes them and never shows them).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.auths.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn auth_for(&self, location: &str) -> Option<&str> {
        let mut candidate = location;
        loop {
            if let Some(a) = self.auths.get(candidate) {
                return Some(a);
            }
            candidate = &candidate[..candidate.rfind('/')?];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(json: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(NAME.into());
        s.data = Some([(KEY.to_string(), ByteString(json.as_bytes().to_vec()))].into());
        s
    }

    #[test]
    fn errors_never_quote_the_credentials() {
        let e = PullSecret::from_secret(&secret(r#"{"auths":"c3VwZXJzZWNyZXQ="}"#)).unwrap_err().to_string();
        assert!(!e.contains("c3VwZXJzZWNyZXQ") && e.contains("line 1"), "{e}");
        let e = PullSecret::from_secret(&secret(r#"{"auths":{"m.io":{"auth":12345678}}}"#)).unwrap_err().to_string();
        assert!(!e.contains("12345678"), "{e}");
    }

    #[test]
    fn finds_the_most_specific_entry() {
        let p = PullSecret::from_secret(&secret(
            r#"{"auths":{"m.io":{"auth":"aG9zdA=="},"m.io/team":{"auth":"dGVhbQ=="},"https://u.io/":{"username":"u","password":"p"}}}"#,
        ))
        .unwrap();
        assert_eq!(p.auth_for("m.io/team/app"), Some("dGVhbQ=="));
        assert_eq!(p.auth_for("m.io/other"), Some("aG9zdA=="));
        assert_eq!(p.auth_for("m.io"), Some("aG9zdA=="));
        assert_eq!(p.auth_for("u.io/x"), Some("dTpw"));
        assert_eq!(p.auth_for("m.io2"), None);
    }

    #[test]
    fn debug_output_names_registries_only() {
        let p = PullSecret::from_secret(&secret(r#"{"auths":{"m.io":{"auth":"c3VwZXJzZWNyZXQ="}}}"#)).unwrap();
        let shown = format!("{p:?}");
        assert!(shown.contains("m.io") && !shown.contains("c3VwZXJzZWNyZXQ"), "{shown}");
    }

    #[test]
    fn a_broken_secret_is_an_error_naming_it() {
        let e = PullSecret::from_secret(&secret("{not json")).unwrap_err();
        assert!(
            e.to_string().starts_with("Secret/pull-secret: data[.dockerconfigjson]: not a docker config.json"),
            "{e}"
        );
    }
}
