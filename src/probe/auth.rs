//! Registry authentication as the runtimes do it: the `WWW-Authenticate` challenge of `GET /v2/`,
//! then `Basic` credentials on every request, or the token dance (`Bearer realm=...`: ask the realm
//! for a token, with the credentials when there are some, and send the token). Credentials and
//! tokens never reach a message: only where they came from is said.

use base64::Engine;
use std::collections::BTreeMap;

/// A user and password for one registry, and where they came from (for messages).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Never prints the values.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    /// From the base64 `user:password` of a docker config.json `auth` (or a `Basic` header).
    pub fn from_basic(encoded: &str) -> Option<Credentials> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(Credentials { user: user.to_string(), password: password.to_string() })
    }

    /// The `Authorization` value for `Basic`.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// One challenge of a `WWW-Authenticate` header: the scheme (lowercase) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parses `Bearer realm="https://a/token",service="reg", Basic realm="x"` into its challenges
/// (RFC 7235: a scheme, then comma-separated `name=token` or `name="quoted"` parameters; a bare
/// token after a comma starts the next challenge). Whatever does not fit is skipped; it never fails.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip = |i: &mut usize, f: &dyn Fn(char) -> bool| {
        while *i < chars.len() && f(chars[*i]) {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip(&mut i, &|c| c == ' ' || c == '\t' || c == ',');
        let start = i;
        skip(&mut i, &is_token_char);
        if i == start {
            i += 1; // Not a token: skip the character.
            continue;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        skip(&mut j, &|c| c == ' ' || c == '\t');
        if j < chars.len() && chars[j] == '=' && !out.is_empty() {
            // A parameter of the current challenge.
            j += 1;
            skip(&mut j, &|c| c == ' ' || c == '\t');
            let mut value = String::new();
            if j < chars.len() && chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    value.push(chars[j]);
                    j += 1;
                }
                j += 1; // The closing quote (or the end).
            } else {
                // Unquoted: up to the next comma or space (servers write bare URLs here too).
                let s = j;
                skip(&mut j, &|c| c != ',' && c != ' ' && c != '\t');
                value = chars[s..j].iter().collect();
            }
            if let Some(last) = out.last_mut() {
                last.params.insert(word.to_ascii_lowercase(), value);
            }
            i = j;
        } else {
            out.push(Challenge { scheme: word.to_ascii_lowercase(), params: BTreeMap::new() });
        }
    }
    out
}

/// What the registry asks for, as the runtimes choose: a Bearer challenge with a realm wins over
/// Basic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

pub fn choose(challenges: &[Challenge]) -> Option<Scheme> {
    let bearer = challenges.iter().find_map(|c| {
        (c.scheme == "bearer")
            .then(|| c.params.get("realm"))
            .flatten()
            .filter(|r| !r.is_empty())
            .map(|realm| Scheme::Bearer { realm: realm.clone(), service: c.params.get("service").cloned() })
    });
    bearer.or_else(|| challenges.iter().any(|c| c.scheme == "basic").then_some(Scheme::Basic))
}

/// Characters kept as they are in a query value; everything else is percent-encoded.
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token request's path and query on the realm: `service` and `scope` added to the realm's
/// own query. `None` when the realm is not an absolute http(s) URL.
pub fn token_request(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<(http::Uri, String)> {
    let uri: http::Uri = realm.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return None;
    }
    let mut query: Vec<String> = uri.query().filter(|q| !q.is_empty()).map(|q| vec![q.to_string()]).unwrap_or_default();
    query.extend(service.map(|s| format!("service={}", encode_query(s))));
    query.extend(scope.map(|s| format!("scope={}", encode_query(s))));
    let path = if uri.path().is_empty() { "/" } else { uri.path() };
    let path_and_query = if query.is_empty() { path.to_string() } else { format!("{path}?{}", query.join("&")) };
    Some((uri, path_and_query))
}

/// The token of a token endpoint's JSON answer (`token`, or the OAuth2 `access_token`).
pub fn token_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    a.token.filter(|t| !t.is_empty()).or(a.access_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_and_basic_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].params["realm"], "https://auth.example/token");
        assert_eq!(c[0].params["scope"], "repository:a/b:pull");
        assert_eq!(
            choose(&c),
            Some(Scheme::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        let c = parse_challenges(r#"Basic realm="Registry Realm", Bearer realm=https://t.example/x"#);
        assert_eq!(c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(), ["basic", "bearer"]);
        assert!(matches!(choose(&c), Some(Scheme::Bearer { .. })), "Bearer wins");
        assert_eq!(choose(&parse_challenges(r#"basic realm="x""#)), Some(Scheme::Basic));
        assert_eq!(choose(&parse_challenges("Negotiate")), None);
        assert_eq!(choose(&parse_challenges(r#"Bearer service="s""#)), None, "no realm: not usable");
        assert_eq!(parse_challenges(r#"Bearer realm="a\"b""#)[0].params["realm"], "a\"b");
    }

    #[test]
    fn the_token_request_adds_service_and_scope_to_the_realm() {
        let (uri, pq) =
            token_request("https://a.example:8443/token?x=1", Some("reg a"), Some("repository:t/app:pull")).unwrap();
        assert_eq!((uri.host(), uri.port_u16()), (Some("a.example"), Some(8443)));
        assert_eq!(pq, "/token?x=1&service=reg%20a&scope=repository%3At%2Fapp%3Apull");
        assert!(token_request("/token", None, None).is_none());
        assert!(token_request("ftp://a/token", None, None).is_none());
        assert_eq!(token_request("http://a", None, None).unwrap().1, "/");
    }

    #[test]
    fn tokens_and_credentials() {
        assert_eq!(token_of(br#"{"token":"t1","access_token":"t2"}"#).as_deref(), Some("t1"));
        assert_eq!(token_of(br#"{"access_token":"t2"}"#).as_deref(), Some("t2"));
        assert_eq!(token_of(br#"{"token":""}"#), None);
        assert_eq!(token_of(b"<html>"), None);
        let c = Credentials::from_basic("YWxpY2U6czNjcjN0OndpdGg6Y29sb25z").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cr3t:with:colons"));
        assert_eq!(c.basic_header(), "Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z");
        assert_eq!(format!("{c:?}"), "Credentials(..)");
        assert!(Credentials::from_basic("not base64!").is_none());
    }

    proptest! {
        #[test]
        fn any_header_parses_without_panicking(header in "\\PC{0,80}") {
            let _ = choose(&parse_challenges(&header));
        }
    }
}
