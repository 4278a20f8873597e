//! The stages after the connection: the registry API (`GET /v2/`), authentication as the registry
//! asks for it, and with an image the manifest (`HEAD`). See [`super`] for the order.

use super::auth::{self, Credentials, Scheme};
use super::net::{self, Conn, Security};
use super::plan::Probe;
use super::{shown, tls, Failure, Stage};
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use std::net::SocketAddr;
use tokio::time::Instant;

/// What a manifest request accepts: image indexes and manifests, OCI and Docker, as runtimes ask.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// How far a probe got without failing.
pub(super) struct Reached {
    pub stage: Stage,
    pub address: SocketAddr,
    pub found: Option<bool>,
    pub digest: Option<String>,
}

/// `host:port` as containers/image names the certs.d folder, and the ConfigMap key for it.
fn authority(p: &Probe) -> (String, String) {
    if p.port == 443 {
        (p.host.clone(), p.host.clone())
    } else {
        (format!("{}:{}", p.host, p.port), format!("{}..{}", p.host, p.port))
    }
}

/// What to do about a certificate the node does not trust, naming the CA files it does use.
fn ca_hint(p: &Probe) -> String {
    let (at, key) = authority(p);
    let used = if p.cas.is_empty() {
        "the node trusts only the system roots for it".to_string()
    } else {
        let paths: Vec<&str> = p.cas.iter().map(|c| c.path.as_str()).collect();
        format!("the CA files the runtime uses for it ({}) do not sign its certificate", paths.join(", "))
    };
    format!("add the CA for {at} to the additionalTrustedCA ConfigMap (key {key}); {used}")
}

fn header(value: &str) -> Result<HeaderValue, Failure> {
    // Never quote the value: it holds credentials or a token.
    HeaderValue::from_str(value).map_err(|_| {
        Failure::new(Stage::Auth, "the credentials cannot be sent in an HTTP header (a control character)")
    })
}

pub(super) async fn run(
    p: &Probe,
    roots: &tls::Roots,
    deadline: Instant,
    notes: &mut Vec<String>,
) -> Result<Reached, Failure> {
    let cas: Vec<&[u8]> = p.cas.iter().map(|c| c.pem.as_slice()).collect();
    let config = tls::config(roots, &cas, p.skip_verify).map_err(|e| Failure::new(Stage::Tls, e))?;
    let security = if p.https { Security::Tls(config.clone()) } else { Security::Plain };
    let hint = ca_hint(p);
    let mut conn = match net::open(&p.host, p.port, &security, &hint, deadline).await {
        Err(f) if f.stage == Stage::Tls && p.http_fallback => {
            // containers/image falls back to plain HTTP for an insecure registry.
            notes.push(format!("plain HTTP: TLS failed ({}) and the registry is insecure", f.message));
            net::open(&p.host, p.port, &Security::Plain, "", deadline).await?
        }
        Ok(conn) if p.https && p.skip_verify => {
            notes.push("TLS not verified (insecure)".into());
            conn
        }
        other => other?,
    };
    let (at, _) = authority(p);
    let ping = conn.send(Method::GET, "/v2/", &[], Stage::Api, deadline).await?;
    let scope = p.manifest.as_ref().map(|m| format!("repository:{}:pull", m.repository));
    let mut authorization: Option<HeaderValue> = None;
    let mut stage = Stage::Api;
    match ping.status {
        StatusCode::OK => notes.push("the registry asks for no credentials".into()),
        StatusCode::UNAUTHORIZED => {
            let challenges: Vec<auth::Challenge> = ping
                .headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(auth::parse_challenges)
                .collect();
            let value = match auth::choose(&challenges) {
                None => {
                    return Err(Failure::new(
                        Stage::Api,
                        format!("GET /v2/ on {at} answered 401 without a usable WWW-Authenticate (Basic, or Bearer with a realm): a proxy answers instead of the registry, or it is no registry"),
                    ))
                }
                Some(Scheme::Basic) => {
                    let Some(c) = &p.credentials else {
                        return Err(missing(p, &at));
                    };
                    notes.push(format!("Basic authentication with the credentials {} holds", p.credentials_from));
                    header(&c.basic_header())?
                }
                Some(Scheme::Bearer { realm, service }) => {
                    let token = token(p, &config, &realm, service.as_deref(), scope.as_deref(), deadline, notes).await?;
                    header(&format!("Bearer {token}"))?
                }
            };
            stage = Stage::Auth;
            let again = conn.send(Method::GET, "/v2/", &[(AUTHORIZATION, value.clone())], Stage::Auth, deadline).await?;
            match again.status {
                StatusCode::OK => {}
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if p.credentials.is_some() => return Err(refused(p, &at, again.status)),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(missing(p, &at)),
                other => return Err(Failure::new(Stage::Auth, format!("GET /v2/ on {at} with credentials answered {other}: check the registry's authentication setup"))),
            }
            authorization = Some(value);
        }
        StatusCode::NOT_FOUND => {
            return Err(Failure::new(Stage::Api, format!("GET /v2/ on {at} answered 404: no registry API there; check the endpoint's host, port and path")))
        }
        other => {
            return Err(Failure::new(Stage::Api, format!("GET /v2/ on {at} answered {other} (a registry answers 200 or 401): the registry is failing, or something else listens there")))
        }
    }
    let mut reached = Reached { stage, address: conn.address, found: None, digest: None };
    if let Some(m) = &p.manifest {
        reached.stage = Stage::Manifest;
        let mut headers = vec![(ACCEPT, HeaderValue::from_static(MANIFEST_TYPES))];
        headers.extend(authorization.map(|a| (AUTHORIZATION, a)));
        let answer = conn.send(Method::HEAD, &m.path, &headers, Stage::Manifest, deadline).await?;
        let repo = &m.repository;
        match answer.status {
            StatusCode::OK => {
                reached.found = Some(true);
                reached.digest = answer
                    .headers
                    .get(HeaderName::from_static("docker-content-digest"))
                    .and_then(|v| v.to_str().ok())
                    .filter(|d| d.len() <= 200 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b":+._-".contains(&b)))
                    .map(str::to_string);
            }
            StatusCode::NOT_FOUND => {
                reached.found = Some(false);
                notes.push(format!("{at} has no manifest {}: a pull moves on to the next endpoint", shown(&m.path)));
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let fix = match &p.credentials {
                    Some(_) => format!("give the account {} holds for {at} pull access to {repo}", p.credentials_from),
                    None => format!("add credentials for {at} to {}", p.credentials_from),
                };
                return Err(Failure::new(
                    Stage::Manifest,
                    format!("{at} refuses to serve {repo} ({}): {fix}", answer.status),
                ));
            }
            other => {
                return Err(Failure::new(
                    Stage::Manifest,
                    format!("HEAD {} on {at} answered {other}: the registry is failing", shown(&m.path)),
                ))
            }
        }
    }
    Ok(reached)
}

fn missing(p: &Probe, at: &str) -> Failure {
    Failure::new(
        Stage::Auth,
        format!("{at} asks for credentials and {} has none for it: add an entry for {at}", p.credentials_from),
    )
}

fn refused(p: &Probe, at: &str, status: StatusCode) -> Failure {
    Failure::new(
        Stage::Auth,
        format!("{at} refused the credentials {} holds for it ({status}): correct that entry", p.credentials_from),
    )
}

/// The token dance: ask the realm for a token for `scope` (none: just to log in), with the
/// credentials when there are some. The credentials never go to a plain-HTTP realm of a registry
/// reached over TLS.
async fn token(
    p: &Probe,
    config: &std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
    realm: &str,
    service: Option<&str>,
    scope: Option<&str>,
    deadline: Instant,
    notes: &mut Vec<String>,
) -> Result<String, Failure> {
    let (at, _) = authority(p);
    let shown_realm = shown(realm.split('?').next().unwrap_or_default());
    let Some((uri, path_and_query)) = auth::token_request(realm, service, scope) else {
        return Err(Failure::new(
            Stage::Auth,
            format!(
                "{at} names a token service that is no http(s) URL ({shown_realm:?}): fix the registry's token realm"
            ),
        ));
    };
    let https = uri.scheme_str() == Some("https");
    if !https && p.https && p.credentials.is_some() {
        return Err(Failure::new(Stage::Auth, format!("the token service of {at} ({shown_realm}) is plain HTTP: mirrorconf does not send credentials in clear; serve it over HTTPS")));
    }
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let security = if https { Security::Tls(config.clone()) } else { Security::Plain };
    let as_auth = |f: Failure| Failure::new(Stage::Auth, format!("token service {shown_realm}: {}", f.message));
    let mut conn: Conn = net::open(&host, port, &security, &ca_hint(p), deadline).await.map_err(as_auth)?;
    let mut headers = vec![];
    if let Some(c) = &p.credentials {
        headers.push((AUTHORIZATION, header(&Credentials::basic_header(c))?));
    }
    let answer = conn.send(Method::GET, &path_and_query, &headers, Stage::Auth, deadline).await.map_err(as_auth)?;
    match answer.status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if p.credentials.is_some() => {
            return Err(Failure::new(Stage::Auth, format!("the token service of {at} ({shown_realm}) refused the credentials {} holds for {at} ({}): correct that entry", p.credentials_from, answer.status)))
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(Failure::new(Stage::Auth, format!("the token service of {at} ({shown_realm}) gives no anonymous token and {} has no credentials for {at}: add an entry for {at}", p.credentials_from)))
        }
        other => return Err(Failure::new(Stage::Auth, format!("the token service of {at} ({shown_realm}) answered {other}: it is failing"))),
    }
    let token = auth::token_of(&answer.body).ok_or_else(|| {
        Failure::new(Stage::Auth, format!("the token service of {at} ({shown_realm}) answered without a token"))
    })?;
    let who = if p.credentials.is_some() {
        format!("with the credentials {} holds", p.credentials_from)
    } else {
        "anonymously".into()
    };
    notes.push(format!("Bearer token from {shown_realm}, {who}"));
    Ok(token)
}
