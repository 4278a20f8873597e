//! known_hosts read once, to check many recorded host keys without connecting: a key the record
//! holds for a host vouches for it only while known_hosts still pins that host to it.
//!
//! A quiet round of 10,000 hosts asks this 10,000 times; libssh2's own check walks every line
//! each time (2.3 s of a 2.4 s round with a 10,000-line file; with hashed names, 57 s). So plain
//! lines (`name`, `[name]:port`, comma lists; no marker, pattern or hash) are indexed by name, and
//! the other lines (hashed names, wildcards) are grouped by their key and go through libssh2,
//! which is what the connection itself uses to decide, only for the lines holding the key asked
//! about. A host pinned here is still checked in full when it is contacted.

use super::host_key::{known_hosts_name, HostKey};
use super::KnownHostsFile;
use base64::Engine;
use ssh2::{CheckResult, KnownHostFileKind, KnownHosts, Session};
use std::collections::HashMap;

pub struct Pins {
    plain: HashMap<String, Vec<Vec<u8>>>,
    /// Every other line, by the key it holds (a line can only pin a host to its own key).
    by_key: HashMap<Vec<u8>, KnownHosts>,
}

impl Pins {
    /// An unreadable or missing file pins nothing (every host is then contacted, and the
    /// connection reports the problem).
    pub fn load(file: &KnownHostsFile) -> Pins {
        let text = std::fs::read_to_string(&file.path).unwrap_or_default();
        Pins::parse(&text)
    }

    fn parse(text: &str) -> Pins {
        let mut plain: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        let mut by_key: HashMap<Vec<u8>, KnownHosts> = HashMap::new();
        let mut session: Option<Session> = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let names = parts.next().unwrap_or("");
            let key = if names.starts_with('@') { parts.nth(2) } else { parts.nth(1) };
            // A line without a readable key pins nothing.
            let Some(blob) = key.and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok()) else {
                continue;
            };
            let simple = !names.starts_with(['@', '|']) && !names.contains(['*', '?', '!']);
            if simple {
                for name in names.split(',').filter(|n| !n.is_empty()) {
                    plain.entry(name.to_string()).or_default().push(blob.clone());
                }
                continue;
            }
            if !by_key.contains_key(&blob) {
                // One libssh2 session for every group: a session costs about 80 KiB.
                if session.is_none() {
                    session = Session::new().ok();
                }
                match session.as_ref().and_then(|s| s.known_hosts().ok()) {
                    Some(k) => by_key.insert(blob.clone(), k),
                    None => continue,
                };
            }
            if let Some(k) = by_key.get_mut(&blob) {
                let _ = k.read_str(line, KnownHostFileKind::OpenSSH);
            }
        }
        Pins { plain, by_key }
    }

    pub fn pins(&self, address: &str, port: u16, key: &HostKey) -> bool {
        let indexed = self
            .plain
            .get(&known_hosts_name(address, port))
            .is_some_and(|keys| keys.iter().any(|k| k.as_slice() == key.blob()));
        indexed
            || self
                .by_key
                .get(key.blob())
                .is_some_and(|k| matches!(k.check_port(address, port, key.blob()), CheckResult::Match))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJatafNMIB1DCQyOyPdwU15njb1RqNsNMU9N2L1O0jVm";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMDMXN23Ancq5rFmv/qafziTuR0rRR43zJiGaAgROxfuv1c10gqS9qwnfLg0+Qpw0faEMLbPprxljMsSLzg++t8=";

    /// The same answers as libssh2 gives for the whole file, for plain, bracketed, listed and
    /// hashed names (the hashed ones, made by `ssh-keygen -H`, are `[127.0.0.3]:2222` and
    /// `127.0.0.4`).
    #[test]
    fn plain_lines_by_index_and_hashed_ones_by_libssh2_agree_with_libssh2() {
        let text = format!(
            "# comment\n\
             [127.0.0.2]:2222 ssh-ed25519 {ED25519}\n\
             |1|trFy4o/PLB8DOm2D/cGTO2A1UTw=|vbUrKDznfhHp4NmQC+KaNN9MXq4= ecdsa-sha2-nistp256 {ECDSA}\n\
             |1|Ujkc148CZavJnCsjUcj9FsHhlEs=|sYKUaTuN2yA0dqj07uFb/6b/t5o= ssh-ed25519 {ED25519}\n\
             other.example.com,127.0.0.5 ecdsa-sha2-nistp256 {ECDSA}\n\
             *.wild.example ssh-ed25519 {ED25519}\n\
             broken-line-without-a-key\n"
        );
        let pins = Pins::parse(&text);
        let whole = {
            let mut k = Session::new().unwrap().known_hosts().unwrap();
            for line in text.lines() {
                let _ = k.read_str(line, KnownHostFileKind::OpenSSH);
            }
            k
        };
        let key = |b64: &str| {
            HostKey::parse(&format!("{} {b64}", if b64 == ED25519 { "ssh-ed25519" } else { "ecdsa-sha2-nistp256" }))
                .unwrap()
        };
        let cases = [
            ("127.0.0.2", 2222, ED25519, true),
            ("127.0.0.2", 2222, ECDSA, false),
            ("127.0.0.2", 22, ED25519, false),
            ("127.0.0.3", 2222, ECDSA, true),
            ("127.0.0.4", 22, ED25519, true),
            ("127.0.0.4", 22, ECDSA, false),
            ("127.0.0.5", 22, ECDSA, true),
            ("other.example.com", 22, ECDSA, true),
            // libssh2 does not match wildcards; neither does the index (it leaves them to libssh2).
            ("a.wild.example", 22, ED25519, false),
            ("127.0.0.9", 22, ED25519, false),
        ];
        for (address, port, k, want) in cases {
            let libssh2 = matches!(whole.check_port(address, port, key(k).blob()), CheckResult::Match);
            assert_eq!(libssh2, want, "libssh2 itself on {address}:{port}");
            assert_eq!(pins.pins(address, port, &key(k)), want, "{address}:{port}");
        }
        assert!(Pins::parse("").plain.is_empty());
    }
}
