//! The policy fingerprint: one digest of what the policy says, equal on every node that renders
//! from the same objects, whatever each node's own base files hold. Agents publish it on their
//! Node and `mirrorconf status` compares it with the digest of the objects the cluster holds now
//! (docs/design.md, "Where has a change landed").
//!
//! The files digest cannot serve: every node keeps its own base registries.conf, so equal policies
//! give different files. The fingerprint covers the merged mirror sets, the registry rules and the
//! CA contents, and the pull secret only for targets that render it (containerd and Windows put its
//! credentials in hosts.toml; CRI-O reads the kubelet's copy, so a Linux node's files do not move
//! when it changes). Object names and entry order across objects do not count: the merge makes them
//! irrelevant to what a runtime does.

use super::Policy;
use sha2::{Digest, Sha256};

/// Bumped when what the fingerprint covers changes, so that old and new agents never look equal.
const VERSION: &[u8] = b"mirrorconf-policy-fingerprint-v1";

/// `sha256:<hex>` of the policy, with the pull secret's credentials when `with_pull_secret`.
pub fn fingerprint(policy: &Policy, with_pull_secret: bool) -> String {
    let mut h = Hasher(Sha256::new());
    h.field(VERSION);
    for (group, sets) in [(b"digest".as_slice(), &policy.digest_sets), (b"tag".as_slice(), &policy.tag_sets)] {
        h.field(group);
        h.count(sets.len());
        for set in sets {
            h.field(set.source.as_bytes());
            h.list(&set.mirrors);
            h.field(if set.never_contact_source { b"never" } else { b"allow" });
        }
    }
    h.list(&policy.insecure_scopes);
    h.list(&policy.blocked_scopes);
    h.list(&policy.allowed_scopes);
    h.list(&policy.search_registries);
    h.count(policy.registry_cas.len());
    for (host, pem) in &policy.registry_cas {
        h.field(host.as_bytes());
        h.field(pem.as_bytes());
    }
    match (&policy.pull_secret, with_pull_secret) {
        (Some(secret), true) => {
            let entries: Vec<(&str, &str)> = secret.entries().collect();
            h.count(entries.len());
            for (registry, auth) in entries {
                h.field(registry.as_bytes());
                h.field(auth.as_bytes());
            }
        }
        _ => h.field(b"no pull secret"),
    }
    format!("sha256:{}", crate::text::hex(&h.0.finalize()))
}

/// Length-prefixed fields, so that no two different policies feed the same bytes.
struct Hasher(Sha256);

impl Hasher {
    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.0.update(bytes);
    }

    fn count(&mut self, n: usize) {
        self.0.update((n as u64).to_be_bytes());
    }

    fn list(&mut self, items: &[String]) {
        self.count(items.len());
        for i in items {
            self.field(i.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_text;
    use std::path::Path;

    fn policy(yaml: &str) -> Policy {
        Policy::from_inputs(&load_text(Path::new("t.yaml"), yaml).unwrap()).unwrap()
    }

    fn idms(name: &str, entries: &[(&str, &str)]) -> String {
        let mut out = format!(
            "---\napiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {{name: {name}}}\nspec:\n  imageDigestMirrors:\n"
        );
        for (source, mirror) in entries {
            out += &format!("  - source: {source}\n    mirrors: [{mirror}]\n");
        }
        out
    }

    const SECRET: &str = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: pull-secret, namespace: openshift-config}\nstringData:\n  .dockerconfigjson: '{\"auths\": {\"m.corp\": {\"auth\": \"dTpw\"}}}'\n";

    #[test]
    fn equal_policies_from_differently_cut_objects_are_equal() {
        let one = policy(&idms("a", &[("quay.io/a", "m.corp/a"), ("quay.io/b", "m.corp/b")]));
        let two = policy(&(idms("y", &[("quay.io/b", "m.corp/b")]) + &idms("x", &[("quay.io/a", "m.corp/a")])));
        assert_eq!(fingerprint(&one, false), fingerprint(&two, false));
        assert!(fingerprint(&one, false).starts_with("sha256:") && fingerprint(&one, false).len() == 71);
    }

    #[test]
    fn every_part_of_the_policy_counts() {
        let base = idms("a", &[("quay.io/a", "m.corp/a")]);
        let variants = [
            idms("a", &[("quay.io/a", "n.corp/a")]),
            idms("a", &[("quay.io/b", "m.corp/a")]),
            base.replace("ImageDigestMirrorSet", "ImageTagMirrorSet").replace("imageDigestMirrors", "imageTagMirrors"),
            base.clone() + "    mirrorSourcePolicy: NeverContactSource\n",
            base.clone()
                + "---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    insecureRegistries: [m.corp]\n",
            base.clone()
                + "---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    blockedRegistries: [bad.corp]\n",
            base.clone()
                + "---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    allowedRegistries: [m.corp, quay.io]\n",
            base.clone()
                + "---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec:\n  registrySources:\n    containerRuntimeSearchRegistries: [m.corp]\n",
        ];
        // The CA for a host, in the ConfigMap Image/cluster names.
        let with_ca = |host: &str, cert: &str| {
            let pem = cert.lines().map(|l| format!("    {l}\n")).collect::<String>();
            format!(
                "{base}---\napiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: cas}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cas, namespace: openshift-config}}\ndata:\n  {host}: |\n{pem}"
            )
        };
        let variants: Vec<String> = variants
            .into_iter()
            .chain([
                with_ca("m.corp", include_str!("../../tests/fixtures/certs/test-ca.crt")),
                with_ca("m.corp..5000", include_str!("../../tests/fixtures/certs/test-ca.crt")),
                with_ca("m.corp", include_str!("../../tests/fixtures/certs/other-ca.crt")),
            ])
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        assert!(seen.insert(fingerprint(&policy(&base), false)));
        for v in &variants {
            assert!(seen.insert(fingerprint(&policy(v), false)), "a change that did not count:\n{v}");
        }
    }

    #[test]
    fn the_pull_secret_counts_only_where_it_is_rendered() {
        let without = policy(&idms("a", &[("quay.io/a", "m.corp/a")]));
        let with = policy(&(idms("a", &[("quay.io/a", "m.corp/a")]) + SECRET));
        assert_eq!(fingerprint(&without, false), fingerprint(&with, false));
        assert_ne!(fingerprint(&without, true), fingerprint(&with, true));
        let other = policy(&(idms("a", &[("quay.io/a", "m.corp/a")]) + &SECRET.replace("dTpw", "dTpx")));
        assert_ne!(fingerprint(&with, true), fingerprint(&other, true));
    }
}
