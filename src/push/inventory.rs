//! The Windows hosts to push to, from the `windows-instances` ConfigMap BYOH admins already keep
//! (key = DNS name or IPv4 address, value = `username=<user>`), as the Windows Machine Config
//! Operator reads it. A bad entry is reported and the others still count.

use crate::model::ConfigMap;
use std::fmt;
use std::net::Ipv4Addr;

/// The ConfigMap's name, as the Windows Machine Config Operator expects it.
pub const CONFIG_MAP_NAME: &str = "windows-instances";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host {
    /// DNS name or IPv4 address, as written in the inventory.
    pub address: String,
    pub user: String,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.address)
    }
}

/// A refused inventory entry: which key, what value, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ConfigMap/{config_map}: data[{key:?}] = {value:?}: {reason}")]
pub struct EntryError {
    pub config_map: String,
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Reads the inventory file: the one `windows-instances` ConfigMap in it.
pub fn load(path: &std::path::Path) -> Result<(Vec<Host>, Vec<EntryError>), crate::Error> {
    let inputs = crate::model::load_paths(&[path]).map_err(crate::Error::Load)?;
    let cm =
        inputs.config_maps.iter().find(|cm| cm.metadata.name.as_deref() == Some(CONFIG_MAP_NAME)).ok_or_else(|| {
            crate::Error::Usage(format!("--inventory {}: no ConfigMap named {CONFIG_MAP_NAME} in it", path.display()))
        })?;
    Ok(hosts(cm))
}

/// The hosts of `cm`, in key order, and every entry that had to be skipped.
pub fn hosts(cm: &ConfigMap) -> (Vec<Host>, Vec<EntryError>) {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in cm.data.iter().flatten() {
        let fail =
            |reason: String| EntryError { config_map: name.clone(), key: key.clone(), value: value.clone(), reason };
        if let Err(reason) = check_address(key) {
            errors.push(fail(reason));
            continue;
        }
        match parse_user(value) {
            Ok(user) => hosts.push(Host { address: key.clone(), user }),
            Err(reason) => errors.push(fail(reason)),
        }
    }
    (hosts, errors)
}

/// An IPv4 address or a DNS name (RFC 1123 labels). IPv6 is not accepted, as in the reference.
pub(crate) fn check_address(key: &str) -> Result<(), String> {
    if key.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let bad = || Err("the key must be an IPv4 address or a DNS name".to_string());
    if key.is_empty() || key.len() > 253 || key.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return bad();
    }
    for label in key.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// `username=<user>`; the user may not be empty or hold spaces or control characters.
fn parse_user(value: &str) -> Result<String, String> {
    let user = value.trim().strip_prefix("username=").ok_or_else(|| "the value must be username=<user>".to_string())?;
    check_user(user)?;
    Ok(user.to_string())
}

pub(crate) fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
        return Err("the user name is empty or holds a space, '@' or a control character".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cm(entries: &[(&str, &str)]) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(CONFIG_MAP_NAME.into());
        cm.data = Some(entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        cm
    }

    #[test]
    fn good_entries_are_hosts_and_bad_ones_are_named() {
        let (hosts, errors) = hosts(&cm(&[
            ("10.1.42.1", "username=Administrator"),
            ("win-node.example.com", "username=core"),
            ("bad_host!", "username=x"),
            ("10.1.42.2", "user=Administrator"),
            ("10.1.42.3", "username="),
            ("999.1.1.1", "username=a"),
        ]));
        assert_eq!(
            hosts,
            vec![
                Host { address: "10.1.42.1".into(), user: "Administrator".into() },
                Host { address: "win-node.example.com".into(), user: "core".into() },
            ]
        );
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["10.1.42.2", "10.1.42.3", "999.1.1.1", "bad_host!"]);
        let msg = errors[0].to_string();
        assert!(msg.contains("ConfigMap/windows-instances") && msg.contains("user=Administrator"), "{msg}");
    }
}
