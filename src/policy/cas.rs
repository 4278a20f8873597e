//! Registry CAs: the ConfigMap named by `Image/cluster` `spec.additionalTrustedCA.name` (in
//! `openshift-config`), and the merged form OpenShift publishes
//! (`openshift-image-registry/image-registry-certificates`) when it is among the inputs.
//!
//! Each key is a registry `host[:port]` with `:` written as `..` (a ConfigMap key cannot hold `:`);
//! each value is PEM with one or more certificates. Unlike node-ca, which copies bytes unchecked, every
//! value must parse as X.509 certificates and every key must decode to a plain `host[:port]`, so no
//! key can name a path outside its folder.

use super::ValidationError;
use crate::model::{object_ref, ConfigMap, Inputs};
use base64::Engine;
use std::collections::BTreeMap;

pub const CA_NAMESPACE: &str = "openshift-config";
pub const MERGED_NAMESPACE: &str = "openshift-image-registry";
pub const MERGED_NAME: &str = "image-registry-certificates";

/// Decodes a ConfigMap key to `host[:port]`: `..` means `:`. Refuses anything that is not a plain
/// DNS name or IPv4 address with an optional port 1-65535.
pub fn decode_key(key: &str) -> Result<String, String> {
    // Checked before decoding, so that no key can carry a path separator or anything else odd.
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(
            "does not decode to a registry host[:port]: a key may hold only letters, digits, '-' and '.' (with ':' written as '..')"
                .to_string(),
        );
    }
    let decoded = key.replacen("..", ":", 1);
    let (host, port) = match decoded.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (decoded.as_str(), None),
    };
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && matches!(p.parse::<u32>(), Ok(1..=65535));
        if !ok {
            return Err(format!("decodes to {decoded:?}, whose port is not a number from 1 to 65535"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(
            "does not decode to a registry host[:port] (letters, digits, '-' and '.', with ':' written as '..')"
                .to_string(),
        );
    }
    Ok(decoded)
}

/// Parses a PEM bundle: one or more CERTIFICATE blocks, each valid X.509. Returns the DER of each.
///
/// Errors never quote the value: a refused value may be a pasted private key. They say which block
/// and what is wrong with it (a PEM label is shown only when it is a well-known one).
pub fn parse_bundle(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const KNOWN_LABELS: &[&str] =
        &["PUBLIC KEY", "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST", "X509 CRL", "TRUSTED CERTIFICATE"];
    let mut certs = Vec::new();
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(pem).enumerate() {
        let n = i + 1;
        // The reader's error can name a byte of the value (a base64 decode error does).
        let block =
            block.map_err(|_| format!("PEM block {n} cannot be read (not a PEM block with base64 contents)"))?;
        if block.label.contains("PRIVATE KEY") {
            return Err(format!("PEM block {n} holds a PRIVATE KEY block; a CA bundle must hold only certificates, and a private key does not belong in a ConfigMap"));
        }
        if block.label != "CERTIFICATE" {
            let what = KNOWN_LABELS
                .iter()
                .find(|l| **l == block.label)
                .map_or("not a CERTIFICATE".to_string(), |l| format!("a {l} block"));
            return Err(format!("PEM block {n} is {what}; a CA bundle must hold only certificates"));
        }
        block.parse_x509().map_err(|e| format!("PEM block {} is not a valid X.509 certificate: {e}", i + 1))?;
        certs.push(block.contents);
    }
    if certs.is_empty() {
        return Err("no PEM certificate found".to_string());
    }
    Ok(certs)
}

/// Certificates as PEM, 64 columns, one block after another.
pub fn to_pem(certs: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

fn find<'a>(inputs: &'a Inputs, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
    inputs.config_maps.iter().find(|c| {
        c.metadata.name.as_deref() == Some(name) && c.metadata.namespace.as_deref().is_none_or(|n| n == namespace)
    })
}

/// host -> PEM of its CAs (certificates from both ConfigMaps, without repeats), plus problems.
pub fn registry_cas(
    inputs: &Inputs,
    trusted_ca_config_map: Option<&str>,
    errors: &mut Vec<ValidationError>,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut sources: Vec<&ConfigMap> = Vec::new();
    if let Some(name) = trusted_ca_config_map {
        match find(inputs, CA_NAMESPACE, name) {
            Some(cm) => sources.push(cm),
            None => warnings.push(format!(
                "Image/cluster spec.additionalTrustedCA.name names ConfigMap {CA_NAMESPACE}/{name}, which is not among the inputs; no registry CAs are installed from it"
            )),
        }
    }
    if let Some(cm) = find(inputs, MERGED_NAMESPACE, MERGED_NAME) {
        sources.push(cm);
    }
    let mut by_host: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for cm in sources {
        let object = object_ref("ConfigMap", &cm.metadata);
        let text = cm.data.iter().flatten().map(|(k, v)| (k, v.as_bytes().to_vec()));
        let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k, v.0.clone()));
        for (key, value) in text.chain(binary) {
            let field = format!("data[{key}]");
            let host = match decode_key(key) {
                Ok(h) => h,
                Err(why) => {
                    errors.push(ValidationError {
                        object: object.clone(),
                        field,
                        value: key.clone(),
                        message: why,
                        ..Default::default()
                    });
                    continue;
                }
            };
            match parse_bundle(&value) {
                Ok(certs) => {
                    let all = by_host.entry(host).or_default();
                    for c in certs {
                        if !all.contains(&c) {
                            all.push(c);
                        }
                    }
                }
                Err(why) => {
                    // Never the bytes: a refused value may be a pasted private key.
                    let size = format!("<{} bytes, not shown>", value.len());
                    errors.push(ValidationError {
                        object: object.clone(),
                        field,
                        value: size,
                        message: why,
                        ..Default::default()
                    });
                }
            }
        }
    }
    by_host.into_iter().map(|(h, certs)| (h, to_pem(&certs))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real self-signed certificate (CN=mirrorconf-test, made once with openssl for these tests).
    pub const CERT: &str = include_str!("../../tests/fixtures/certs/test-ca.crt");

    #[test]
    fn keys_decode_to_host_and_port() {
        assert_eq!(decode_key("registry.example.com..5000").unwrap(), "registry.example.com:5000");
        assert_eq!(decode_key("registry.example.com").unwrap(), "registry.example.com");
        assert_eq!(decode_key("127.0.0.1..443").unwrap(), "127.0.0.1:443");
        assert_eq!(decode_key("localhost").unwrap(), "localhost");
    }

    #[test]
    fn bad_keys_and_traversal_attempts_are_refused() {
        for bad in [
            "",
            "..",
            "....",
            "a..",
            "a..0",
            "a..65536",
            "a..12x",
            "a....5000",
            "../etc",
            "a/b",
            "a\\b",
            "a..5000/x",
            "-a.io",
            "a-.io",
            "a..b..c",
            ".a",
            "a.",
            "a..5000..1",
            "a b",
            "a*b",
            "ä.io",
        ] {
            assert!(decode_key(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bundles_parse_and_garbage_does_not() {
        assert_eq!(parse_bundle(CERT.as_bytes()).unwrap().len(), 1);
        let bundle = format!("# comment lines around blocks are fine\n{CERT}\n{CERT}");
        assert_eq!(parse_bundle(bundle.as_bytes()).unwrap().len(), 2);
        assert!(parse_bundle(b"").unwrap_err().contains("no PEM certificate"));
        assert!(parse_bundle(b"hello").is_err());
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
        assert!(parse_bundle(key.as_bytes()).unwrap_err().contains("holds a PRIVATE KEY block"));
        let broken = CERT.replace("MII", "XII");
        assert!(parse_bundle(broken.as_bytes()).is_err());
    }

    #[test]
    fn pem_round_trips() {
        let der = parse_bundle(CERT.as_bytes()).unwrap();
        assert_eq!(parse_bundle(to_pem(&der).as_bytes()).unwrap(), der);
    }

    /// A ConfigMap `cas` in openshift-config with one key holding `value`, named by `Image/cluster`.
    fn inputs_with_ca(key: &str, value: &str) -> Inputs {
        let yaml = format!(
            "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {{name: cluster}}\nspec:\n  additionalTrustedCA: {{name: cas}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cas, namespace: openshift-config}}\ndata:\n  {key}: |\n{}",
            value.lines().map(|l| format!("    {l}\n")).collect::<String>()
        );
        crate::model::load_text(std::path::Path::new("t.yaml"), &yaml).unwrap()
    }

    #[test]
    fn refused_values_are_never_quoted() {
        let secret = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
        let key = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n");
        for (value, says) in [
            (key.clone(), "PEM block 1 holds a PRIVATE KEY block"),
            (format!("{CERT}{key}"), "PEM block 2 holds a PRIVATE KEY block"),
            (key.replace("PRIVATE KEY", "RSA PRIVATE KEY"), "holds a PRIVATE KEY block"),
            (
                format!("-----BEGIN CERTIFICATE-----\n{secret}!!\n-----END CERTIFICATE-----\n"),
                "PEM block 1 cannot be read",
            ),
            (format!("-----BEGIN {secret}-----\nAAAA\n-----END {secret}-----\n"), "PEM block 1 is not a CERTIFICATE"),
            (secret.to_string(), "no PEM certificate found"),
        ] {
            let mut errors = Vec::new();
            registry_cas(&inputs_with_ca("reg.io", &value), Some("cas"), &mut errors, &mut Vec::new());
            assert_eq!(errors.len(), 1, "{value}");
            let shown = errors[0].to_string();
            assert!(!shown.contains(&secret[..12]), "{shown}");
            assert!(shown.contains(says), "{shown}");
            assert!(shown.starts_with("ConfigMap/cas: data[reg.io] = \"<"), "{shown}");
            assert!(shown.contains(" bytes, not shown>"), "{shown}");
        }
    }
}
