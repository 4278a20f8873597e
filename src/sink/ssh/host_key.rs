//! Host key checking against an OpenSSH known_hosts file, and trust on first use.

use super::SshError;
use base64::Engine;
use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, Session};
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

/// The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise (OpenSSH).
pub(super) fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
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
}
