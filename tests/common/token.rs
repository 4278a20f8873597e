//! A token service for docker-registry's `auth: token` (the Bearer token dance real registries
//! use), over TLS on loopback. No Debian package provides one, so it is this small server: it
//! answers a request carrying the expected Basic credentials with one JWT, made at start with the
//! openssl command (RS256, its signing certificate in `x5c`, which the registry checks against
//! its `rootcertbundle`), and anything else with 401. It records what it saw, never the secrets.

use super::{openssl, TlsFiles};
use base64::Engine;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_rustls::rustls;

pub const ISSUER: &str = "mirrorconf-test-issuer";
pub const SERVICE: &str = "mirrorconf-test-registry";

/// One request the token service got: its path and query, and whether it carried the expected
/// credentials (`Some(true)`), others (`Some(false)`) or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub credentials: Option<bool>,
}

pub struct TokenServer {
    pub addr: SocketAddr,
    /// The signing certificate: the registry's `rootcertbundle`.
    pub signing_cert: PathBuf,
    pub token: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT the registry accepts for `repositories` (pull and push), signed with openssl.
fn make_token(dir: &Path, user: &str, repositories: &[&str]) -> (PathBuf, String) {
    let run = |args: &[&str]| openssl(dir, args);
    let subject = ["-subj", "/CN=token signer", "-keyout", "sign.key", "-out", "sign.crt"];
    run(&[&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"][..], &subject].concat());
    let der = run(&["x509", "-in", "sign.crt", "-outform", "DER"]);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(der)]});
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let access: Vec<_> = repositories
        .iter()
        .map(|r| serde_json::json!({"type": "repository", "name": r, "actions": ["pull", "push"]}))
        .collect();
    let claims = serde_json::json!({"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 3600,
        "nbf": now - 10, "iat": now, "jti": "mirrorconf-test", "access": access});
    let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    std::fs::write(dir.join("input"), &signing_input).unwrap();
    let signature = run(&["dgst", "-sha256", "-sign", "sign.key", "input"]);
    (dir.join("sign.crt"), format!("{signing_input}.{}", b64url(&signature)))
}

impl TokenServer {
    /// Serves on `ip` with the TLS certificate of `tls`; `basic` is the expected `Basic` value.
    pub fn start(ip: &str, tls: &TlsFiles, basic: &str, user: &str, repositories: &[&str]) -> TokenServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = tempfile::tempdir().unwrap();
        let (signing_cert, token) = make_token(dir.path(), user, repositories);
        let certs: Vec<CertificateDer> =
            CertificateDer::pem_file_iter(&tls.server_cert).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(&tls.server_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (seen2, stop2, token2, expected) =
            (Arc::clone(&seen), Arc::clone(&stop), token.clone(), format!("Basic {basic}"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve(stream, &config, &expected, &token2, &seen2);
                }
            }
        });
        TokenServer { addr, signing_cert, token, seen, stop, _dir: dir }
    }

    pub fn realm(&self) -> String {
        format!("https://{}/token", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)); // Wakes the accept.
    }
}

fn serve(
    tcp: TcpStream,
    config: &Arc<rustls::ServerConfig>,
    expected: &str,
    token: &str,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if tls.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default().to_string();
    let credentials = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")))
        .map(|(_, v)| v.trim() == expected);
    seen.lock().unwrap().push(Seen { path, credentials });
    let (status, body) = match credentials {
        Some(true) => ("200 OK", format!(r#"{{"token":"{token}","expires_in":3600}}"#)),
        _ => ("401 Unauthorized", r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_string()),
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}
