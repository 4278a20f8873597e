//! Host key checking against an OpenSSH known_hosts file, and trust on first use.
//!
//! A host may hold several host keys (Windows OpenSSH makes ECDSA, ed25519 and RSA ones) while
//! known_hosts pins only some of them. The server sends the key of whichever algorithm the
//! handshake agrees on, and that is the client's first choice among the ones the server offers.
//! So before the handshake, the algorithms of the key types recorded for the host come first; with
//! libssh2's own order, a host pinned by one key type would otherwise present another and be
//! refused as a changed host.

use super::SshError;
use base64::Engine;
use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, MethodType, Session};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The known_hosts file; appends (trust on first use) from several threads go through the lock.
pub struct KnownHostsFile {
    pub path: PathBuf,
    pub trust_on_first_use: bool,
    append: Mutex<()>,
}

impl KnownHostsFile {
    pub fn new(path: impl Into<PathBuf>, trust_on_first_use: bool) -> Self {
        KnownHostsFile { path: path.into(), trust_on_first_use, append: Mutex::new(()) }
    }
}

/// A host's public key as the server showed it (the SSH wire blob). Public: safe to record and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    blob: Vec<u8>,
}

impl HostKey {
    pub(super) fn of(session: &Session) -> Result<HostKey, SshError> {
        let (blob, _) = session.host_key().ok_or_else(|| SshError::Handshake(ssh2::Error::unknown()))?;
        Ok(HostKey { blob: blob.to_vec() })
    }

    /// `<type> <base64>`, as in known_hosts.
    pub fn openssh(&self) -> String {
        let kind = key_type_of_blob(&self.blob).unwrap_or("unknown");
        format!("{kind} {}", base64::engine::general_purpose::STANDARD.encode(&self.blob))
    }

    pub(super) fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&self.blob);
        format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest))
    }

    /// Reads `<type> <base64>` back; the type must be one mirrorconf can check and must be the
    /// one the blob itself names.
    pub fn parse(text: &str) -> Result<HostKey, String> {
        let (kind, b64) = text.split_once(' ').ok_or("not \"<type> <base64>\"")?;
        if algorithms_for(kind).is_empty() {
            return Err(format!("unknown key type {kind:?}"));
        }
        let blob = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "the key is not base64")?;
        if key_type_of_blob(&blob) != Some(kind) {
            return Err("the key does not hold a key of that type".into());
        }
        Ok(HostKey { blob })
    }
}

/// The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise (OpenSSH).
pub(super) fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// Before the handshake: asks for the host key algorithms of the key types known_hosts records for
/// this host first (in libssh2's default order), then libssh2's other defaults. A host without an
/// entry (trust on first use), or a file that cannot be read, keeps the default order; reading
/// errors are reported by [`verify_host_key`], which still decides whether the key matches.
pub(super) fn prefer_recorded_key_types(
    session: &Session,
    address: &str,
    port: u16,
    file: &KnownHostsFile,
) -> Result<(), SshError> {
    let recorded = recorded_key_types(session, address, port, file);
    if recorded.is_empty() {
        return Ok(());
    }
    let wanted: Vec<&str> = recorded.iter().flat_map(|t| algorithms_for(t)).copied().collect();
    let defaults = session.supported_algs(MethodType::HostKey).map_err(SshError::Handshake)?;
    let (first, rest): (Vec<&str>, Vec<&str>) = defaults.into_iter().partition(|a| wanted.contains(a));
    if first.is_empty() {
        return Ok(()); // only key types libssh2 cannot use: nothing to prefer
    }
    let prefs = [first, rest].concat().join(",");
    tracing::debug!(host = %known_hosts_name(address, port), %prefs, "host key algorithms");
    session.method_pref(MethodType::HostKey, &prefs).map_err(SshError::Handshake)
}

/// The key types (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...) of the known_hosts entries for this
/// host, in file order. Each line goes through libssh2's own parser and host matching, the same
/// that [`verify_host_key`] relies on: plain names, `[host]:port`, hashed `|1|salt|hash` names.
fn recorded_key_types(session: &Session, address: &str, port: u16, file: &KnownHostsFile) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(&file.path) else { return Vec::new() };
    let mut types = Vec::new();
    for line in text.lines() {
        let Ok(mut one) = session.known_hosts() else { return Vec::new() };
        if one.read_str(line, KnownHostFileKind::OpenSSH).is_err() {
            continue; // verify_host_key reports a file libssh2 cannot read
        }
        let Some(entry) = one.hosts().ok().and_then(|h| h.into_iter().next()) else { continue };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(entry.key()) else { continue };
        if !matches!(one.check_port(address, port, &blob), CheckResult::Match) {
            continue;
        }
        if let Some(t) = key_type_of_blob(&blob) {
            if !types.iter().any(|known| known == t) {
                types.push(t.to_string());
            }
        }
    }
    types
}

/// The type name at the start of an SSH public key blob (a length-prefixed string).
fn key_type_of_blob(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// The host key algorithms that present a key of this type.
fn algorithms_for(key_type: &str) -> &'static [&'static str] {
    match key_type {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "ssh-dss" => &["ssh-dss"],
        _ => &[],
    }
}

pub(super) fn verify_host_key(
    session: &Session,
    address: &str,
    port: u16,
    file: &KnownHostsFile,
) -> Result<(), SshError> {
    let kh_err = |reason: String| SshError::KnownHosts { file: file.path.clone(), reason };
    let (key, key_type) = session.host_key().ok_or_else(|| kh_err("the server sent no host key".into()))?;
    let fingerprint = session
        .host_key_hash(HashType::Sha256)
        .map(|h| format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(h)))
        .unwrap_or_default();
    let mut known = session.known_hosts().map_err(|e| kh_err(e.to_string()))?;
    match known.read_file(&file.path, KnownHostFileKind::OpenSSH) {
        Ok(_) => {}
        Err(_) if !file.path.exists() && file.trust_on_first_use => {}
        Err(e) => return Err(kh_err(format!("cannot read it: {e}"))),
    }
    let host = known_hosts_name(address, port);
    match known.check_port(address, port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SshError::HostKeyMismatch { host, fingerprint, file: file.path.clone() }),
        CheckResult::NotFound if file.trust_on_first_use => {
            let type_name =
                key_type_name(key_type).ok_or_else(|| kh_err(format!("unsupported host key type for {host}")))?;
            let line = format!("{host} {type_name} {}\n", base64::engine::general_purpose::STANDARD.encode(key));
            let _guard = file.append.lock().unwrap_or_else(|p| p.into_inner());
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file.path)
                .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()))
                .map_err(|e| kh_err(format!("cannot record the key of {host}: {e}")))?;
            tracing::warn!(host = %host, %fingerprint, file = %file.path.display(), "trusted a new host key on first use");
            Ok(())
        }
        CheckResult::NotFound => Err(SshError::UnknownHostKey { host, fingerprint, file: file.path.clone() }),
        CheckResult::Failure => Err(kh_err(format!("libssh2 could not check the key of {host}"))),
    }
}

fn key_type_name(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_names_follow_openssh() {
        assert_eq!(known_hosts_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(known_hosts_name("win.example.com", 2222), "[win.example.com]:2222");
    }

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJatafNMIB1DCQyOyPdwU15njb1RqNsNMU9N2L1O0jVm";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMDMXN23Ancq5rFmv/qafziTuR0rRR43zJiGaAgROxfuv1c10gqS9qwnfLg0+Qpw0faEMLbPprxljMsSLzg++t8=";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDSxIBvhgosmtWQfLsRX41wNCmqltnAPpj9nZTzH+x62h2Jv+AHwmmi0bQfXSaGmi57hVwxfLZfQWFgb2OJfHfE03fqHd57FdPg/LK+q4GAYG0poDagXVR2cFKuX75y0JVn3LyHWCjzlW8qNmaK90jucGD+78Np/uLuuvjAbSyNiw==";

    /// Which key types count as recorded for a host, read the way libssh2 matches names. The hashed
    /// lines were made by `ssh-keygen -H` (`[127.0.0.3]:2222` and `127.0.0.4`).
    #[test]
    fn recorded_key_types_match_plain_bracketed_and_hashed_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let text = format!(
            "# a comment\n\
             [127.0.0.2]:2222 ssh-ed25519 {ED25519}\n\
             |1|trFy4o/PLB8DOm2D/cGTO2A1UTw=|vbUrKDznfhHp4NmQC+KaNN9MXq4= ecdsa-sha2-nistp256 {ECDSA}\n\
             127.0.0.4 ssh-rsa {RSA}\n\
             |1|Ujkc148CZavJnCsjUcj9FsHhlEs=|sYKUaTuN2yA0dqj07uFb/6b/t5o= ssh-ed25519 {ED25519}\n\
             other.example.com,127.0.0.5 ecdsa-sha2-nistp256 {ECDSA}\n"
        );
        std::fs::write(&path, text).unwrap();
        let file = KnownHostsFile::new(&path, false);
        let session = Session::new().unwrap();
        let types = |address: &str, port: u16| recorded_key_types(&session, address, port, &file);
        assert_eq!(types("127.0.0.2", 2222), ["ssh-ed25519"]);
        assert_eq!(types("127.0.0.3", 2222), ["ecdsa-sha2-nistp256"], "hashed [host]:port");
        assert_eq!(types("127.0.0.4", 22), ["ssh-rsa", "ssh-ed25519"], "plain and hashed, in file order");
        assert_eq!(types("127.0.0.5", 22), ["ecdsa-sha2-nistp256"], "one of several names");
        assert!(types("127.0.0.3", 22).is_empty(), "the entry is for port 2222 only");
        assert!(types("127.0.0.9", 2222).is_empty());
        assert!(recorded_key_types(&session, "127.0.0.2", 2222, &KnownHostsFile::new(dir.path().join("none"), true))
            .is_empty());
    }

    #[test]
    fn a_key_blob_names_its_type() {
        let blob = |b64: &str| base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(key_type_of_blob(&blob(ED25519)), Some("ssh-ed25519"));
        assert_eq!(key_type_of_blob(&blob(ECDSA)), Some("ecdsa-sha2-nistp256"));
        assert_eq!(key_type_of_blob(&blob(RSA)), Some("ssh-rsa"));
        assert_eq!(key_type_of_blob(&[0, 0, 0, 9, b'x']), None, "cut short");
        assert_eq!(key_type_of_blob(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(algorithms_for("ssh-rsa"), ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    }
}
