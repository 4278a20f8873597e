//! One connection to an endpoint, stage by stage (name resolution, TCP, TLS), and HTTP/1.1 requests
//! over it with hyper. Every step is bounded by the probe's deadline; every failure is one sentence
//! naming the cause and the fix.

use super::{Failure, Stage};
use http::header::{HeaderMap, HeaderName, HeaderValue, HOST, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig};

/// Every response body is read up to this size; more is an error (a token is a few KiB).
const MAX_BODY_BYTES: usize = 256 * 1024;
const AGENT: &str = concat!("mirrorconf-check/", env!("CARGO_PKG_VERSION"));

/// Runs `fut` until `deadline`; past it, a failure at `stage`.
pub(super) async fn within<T>(
    deadline: Instant,
    stage: Stage,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    tokio::time::timeout_at(deadline, fut).await.map_err(|_| {
        Failure::new(
            stage,
            format!(
                "no answer in time ({what} timed out): the host or a firewall drops the traffic, or the registry hangs"
            ),
        )
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a connection is secured.
#[derive(Clone)]
pub(super) enum Security {
    Plain,
    /// TLS with this client configuration (its roots, or no verification).
    Tls(Arc<ClientConfig>),
}

/// An open HTTP/1.1 connection to one host.
pub(super) struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<&'static [u8]>>,
    authority: String,
    pub address: SocketAddr,
}

/// A response, its body read within [`MAX_BODY_BYTES`].
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Resolves `host` and connects to the first address that answers.
pub(super) async fn connect(host: &str, port: u16, deadline: Instant) -> Result<(TcpStream, SocketAddr), Failure> {
    let addrs: Vec<SocketAddr> = within(deadline, Stage::Dns, "name resolution", tokio::net::lookup_host((host, port)))
        .await?
        .map_err(|e| {
            Failure::new(Stage::Dns, format!("cannot resolve {host} ({e}): check the name, or the node's DNS"))
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match within(deadline, Stage::Connect, "TCP connect", TcpStream::connect(addr)).await? {
            Ok(stream) => return Ok((stream, *addr)),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Failure::new(
            Stage::Connect,
            format!("nothing listens on {host}:{port} ({addr}: connection refused): the registry is down or the port is wrong"),
        ),
        Some((addr, e)) => Failure::new(Stage::Connect, format!("cannot connect to {host}:{port} ({addr}: {e}): check the route and firewalls to it")),
        None => Failure::new(Stage::Dns, format!("{host} resolves to no address: check the name, or the node's DNS")),
    })
}

/// Connects, secures the connection and starts HTTP/1.1 on it. `tls_hint` is said with a
/// certificate the node does not trust (which CA to add, where).
pub(super) async fn open(
    host: &str,
    port: u16,
    security: &Security,
    tls_hint: &str,
    deadline: Instant,
) -> Result<Conn, Failure> {
    let (tcp, address) = connect(host, port, deadline).await?;
    let io: Box<dyn Io> = match security {
        Security::Plain => Box::new(tcp),
        Security::Tls(config) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| Failure::new(Stage::Tls, format!("{host:?} is not a name TLS can verify")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let tls = within(deadline, Stage::Tls, "TLS handshake", connector.connect(name, tcp))
                .await?
                .map_err(|e| Failure::new(Stage::Tls, tls_message(host, port, &e, tls_hint)))?;
            Box::new(tls)
        }
    };
    let (sender, driver) =
        within(deadline, Stage::Api, "HTTP handshake", hyper::client::conn::http1::handshake(TokioIo::new(io)))
            .await?
            .map_err(|e| Failure::new(Stage::Api, format!("HTTP/1.1 failed on {host}:{port}: {e}")))?;
    // The connection lives while it has requests; never past the probe's deadline.
    tokio::spawn(async move {
        let _ = tokio::time::timeout_at(deadline, driver).await;
    });
    let authority = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
    Ok(Conn { sender, authority, address })
}

/// The sentence for a failed handshake: rustls says why in its error type.
fn tls_message(host: &str, port: u16, e: &std::io::Error, hint: &str) -> String {
    use rustls::{CertificateError as C, Error as R};
    let at = format!("{host}:{port}");
    match e.get_ref().and_then(|inner| inner.downcast_ref::<R>()) {
        Some(R::InvalidCertificate(C::UnknownIssuer)) => {
            format!("certificate signed by unknown authority: {hint}")
        }
        Some(R::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })) => format!(
            "the certificate of {at} is not valid for the name {host}: reissue it with {host} in its subjectAltName, or use the name it was issued for"
        ),
        Some(R::InvalidCertificate(C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. })) => {
            format!("the certificate of {at} has expired or is not valid yet: renew it (or check the node's clock)")
        }
        Some(R::InvalidMessage(_)) => format!(
            "{at} does not speak TLS (plain HTTP?): serve the registry over TLS, or list it in insecureRegistries if it must stay plain HTTP"
        ),
        Some(other) => format!("TLS handshake with {at} failed ({other}): check the registry's TLS setup"),
        None => format!("TLS handshake with {at} failed ({e}): the registry closed the connection; check its TLS setup"),
    }
}

impl Conn {
    /// Sends one request and reads the answer (the body only for GET), within the deadline.
    pub(super) async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        stage: Stage,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path_and_query)
            .header(HOST, &self.authority)
            .header(USER_AGENT, AGENT);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Empty::new())
            .map_err(|e| Failure::new(stage, format!("cannot build the request for {path_and_query:?}: {e}")))?;
        let what = format!("{method} {}", short(path_and_query));
        within(deadline, stage, &what, self.sender.ready())
            .await?
            .map_err(|e| Failure::new(stage, format!("the connection to {} closed: {e}", self.authority)))?;
        let response = within(deadline, stage, &what, self.sender.send_request(request))
            .await?
            .map_err(|e| Failure::new(stage, format!("{what} on {} failed: {e}", self.authority)))?;
        let (parts, body) = response.into_parts();
        let body = if method == Method::HEAD {
            Vec::new()
        } else {
            within(deadline, stage, &what, Limited::new(body, MAX_BODY_BYTES).collect())
                .await?
                .map_err(|e| {
                    Failure::new(stage, format!("reading the answer to {what} from {} failed: {e}", self.authority))
                })?
                .to_bytes()
                .to_vec()
        };
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

/// A path for a message: the query (which may carry an account name) is left out.
fn short(path_and_query: &str) -> &str {
    path_and_query.split('?').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_fails_at_connect_and_says_so() {
        // A port that was free a moment ago: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let e = connect("127.0.0.1", port, deadline).await.unwrap_err();
        assert_eq!(e.stage, Stage::Connect);
        assert!(e.message.contains("connection refused") && e.message.contains("down"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_silent_server_is_cut_at_the_deadline() {
        // Accepts TCP and never answers the TLS hello.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let keep = tokio::spawn(async move {
            let held = listener.accept().await;
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            drop(held);
        });
        let config = super::super::tls::config(&super::super::tls::Roots::default(), &[], true).unwrap();
        let started = std::time::Instant::now();
        let deadline = Instant::now() + std::time::Duration::from_millis(300);
        let e = open("127.0.0.1", port, &Security::Tls(config), "", deadline).await.err().unwrap();
        assert_eq!(e.stage, Stage::Tls);
        assert!(e.message.contains("timed out"), "{}", e.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        keep.abort();
    }
}
