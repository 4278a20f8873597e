//! The TLS client a runtime would use for one registry: the system roots plus the CA files it reads
//! for that host (containers/image and containerd both add them to the system pool), or no
//! verification at all for an insecure registry (`insecure`, `skip_verify`).

use std::sync::Arc;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// The machine's trust store, read once per run (or none, in tests that must not depend on it).
#[derive(Clone, Default)]
pub struct Roots(Arc<Vec<CertificateDer<'static>>>);

impl Roots {
    /// The system roots, as rustls-native-certs finds them (`SSL_CERT_FILE`/`SSL_CERT_DIR` first).
    /// Unreadable entries are skipped: the registry CAs still work without them.
    pub fn system() -> Roots {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::debug!("some system roots could not be read: {:?}", found.errors);
        }
        Roots(Arc::new(found.certs))
    }
}

/// Every certificate of a PEM text (blocks that are not certificates are skipped). `None` when it
/// holds none.
pub fn certificates(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
    (!certs.is_empty()).then_some(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A client configuration trusting `roots` and `cas` (PEM texts), or trusting anything when
/// `skip_verify`. HTTP/1.1 is offered by ALPN, as hyper speaks it.
pub fn config(roots: &Roots, cas: &[&[u8]], skip_verify: bool) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider()))).with_no_client_auth()
    } else {
        let mut store = RootCertStore::empty();
        // A root the parser refuses is skipped, as Go's pool skips what it cannot use.
        let _ = store.add_parsable_certificates(roots.0.iter().cloned());
        for pem in cas {
            let _ = store.add_parsable_certificates(certificates(pem).unwrap_or_default());
        }
        builder.with_root_certificates(store).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `insecure` / `skip_verify`: the runtime accepts any certificate; signatures of the handshake are
/// still checked, so the connection is TLS, only unauthenticated.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_certificates_is_none() {
        assert!(certificates(b"").is_none());
        assert!(certificates(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_none());
        assert!(certificates(&[0xff, 0xfe, b'-', 0]).is_none());
        assert!(config(&Roots::default(), &[b"garbage"], false).is_ok(), "a bad CA file is skipped, not fatal");
    }
}
