//! The record of `mirrorconf push` on disk. It is untrusted input like every state file: each
//! entry is checked field by field, and one that fails is ignored with a message naming the file,
//! the field and the value (the host is then simply contacted). It is written atomically (temp
//! file in the same folder, fsync, rename, fsync the folder) under a lock held for the whole run.

use super::{Entry, Key, Record};
use crate::error::Error;
use crate::push::inventory::{check_address, check_user};
use crate::sink::local::{read_bounded, write_atomic};
use crate::sink::ssh::HostKey;
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "push-record.json";
/// 10,000 hosts take about 3 MB.
pub const MAX_BYTES: u64 = 32 << 20;
/// A time this far ahead of the clock is taken as a bad entry (it would put verification off).
const FUTURE_SLACK: u64 = 300;
const VERSION: u64 = 1;
const PENDING: &str = "pending";

/// `$XDG_STATE_HOME/mirrorconf/push-record.json`, else `~/.local/state/mirrorconf/...` (the XDG
/// default), else `/var/lib/mirrorconf/...` for a service without a home.
pub fn default_path() -> PathBuf {
    let var = |name| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let dir = var("XDG_STATE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    dir.join("mirrorconf").join(FILE_NAME)
}

/// The record file, locked for as long as this value lives.
pub struct RecordFile {
    path: PathBuf,
    _lock: fs::File,
}

impl RecordFile {
    /// Takes the lock (waiting, with a message, while another push holds it) and reads the record.
    /// Returns one message per entry (or whole file) that was ignored.
    pub fn open(path: &Path, now: u64) -> Result<(RecordFile, Record, Vec<String>), Error> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Write { path: p, source }
        };
        // A bare file name is in the working folder; the atomic write needs that folder named.
        let path = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => path.to_path_buf(),
            _ => Path::new(".").join(path),
        };
        let path = path.as_path();
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = path.with_extension("lock");
        let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
        let lock = lock.map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            eprintln!("waiting for another mirrorconf push that uses {}", path.display());
            lock.lock().map_err(io(&lock_path))?;
        }
        let shown = path.display().to_string();
        let (record, problems) = match read_bounded(path, MAX_BYTES) {
            Ok(None) => (Record::default(), Vec::new()),
            Ok(Some(bytes)) => parse(&shown, &bytes, now),
            Err(e) => {
                let problem = format!("record {shown}: cannot read it: {}; it is ignored and rewritten", e.source);
                (Record::default(), vec![problem])
            }
        };
        Ok((RecordFile { path: path.to_path_buf(), _lock: lock }, record, problems))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn save(&self, record: &Record) -> Result<(), Error> {
        let hosts: Vec<Value> = record.entries.iter().map(|(k, e)| to_json(k, e)).collect();
        let mut bytes = serde_json::to_vec_pretty(&json!({"version": VERSION, "hosts": hosts}))
            .expect("a record always serialises");
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes, 0o644).map_err(|source| Error::Write { path: self.path.clone(), source })
    }
}

fn to_json(k: &Key, e: &Entry) -> Value {
    json!({
        "address": k.address, "port": k.port, "user": k.user, "remote_root": k.remote_root,
        "host_key": e.host_key.openssh(), "tree": e.tree.as_deref().unwrap_or(PENDING),
        "confirmed_at": e.confirmed_at, "verified_at": e.verified_at,
    })
}

/// A value as it may appear in a message: JSON, cut short.
fn shown(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        crate::text::truncate_at_char(&mut s, 77);
        s.push_str("...");
    }
    s
}

/// The record in `bytes`, and a message for everything that was ignored.
pub fn parse(file: &str, bytes: &[u8], now: u64) -> (Record, Vec<String>) {
    let mut record = Record::default();
    let whole = |why: String| vec![format!("record {file}: {why}; it is ignored and rewritten")];
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return (record, whole(format!("not valid JSON ({e})"))),
    };
    match v.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        other => {
            let value = other.map_or("missing".to_string(), shown);
            return (record, whole(format!("version = {value}: only version {VERSION} is understood")));
        }
    }
    let Some(hosts) = v.get("hosts").and_then(Value::as_array) else {
        return (record, whole("hosts: not a list".to_string()));
    };
    let mut problems = Vec::new();
    for (i, item) in hosts.iter().enumerate() {
        match entry(item, now) {
            Ok((key, e)) => {
                let shown = format!("{}@{}:{} ({})", key.user, key.address, key.port, key.remote_root);
                if let std::collections::btree_map::Entry::Vacant(slot) = record.entries.entry(key) {
                    slot.insert(e);
                } else {
                    problems
                        .push(format!("record {file}: hosts[{i}]: a second entry for {shown}; this entry is ignored"));
                }
            }
            Err((field, value, reason)) => problems.push(format!(
                "record {file}: hosts[{i}].{field} = {value}: {reason}; this entry is ignored (the host is contacted)"
            )),
        }
    }
    (record, problems)
}

type Refusal = (&'static str, String, String);

fn entry(item: &Value, now: u64) -> Result<(Key, Entry), Refusal> {
    let empty = Map::new();
    let obj = item.as_object().unwrap_or(&empty);
    let field = |name: &'static str| obj.get(name).unwrap_or(&Value::Null);
    let refuse = |name: &'static str, reason: &str| (name, shown(field(name)), reason.to_string());
    let text = |name: &'static str| field(name).as_str().ok_or_else(|| refuse(name, "not a string"));
    let time = |name: &'static str| match field(name).as_u64() {
        Some(t) if t <= now.saturating_add(FUTURE_SLACK) => Ok(t),
        Some(_) => Err(refuse(name, "in the future")),
        None => Err(refuse(name, "not a whole number of seconds")),
    };
    let address = text("address")?;
    check_address(address).map_err(|r| refuse("address", &r))?;
    let port = match field("port").as_u64() {
        Some(p @ 1..=65535) => p as u16,
        _ => return Err(refuse("port", "not a port number (1 to 65535)")),
    };
    let user = text("user")?;
    check_user(user).map_err(|r| refuse("user", &r))?;
    let remote_root = text("remote_root")?;
    if remote_root.len() > 4096 || remote_root.chars().any(char::is_control) {
        return Err(refuse("remote_root", "longer than 4096 bytes or holds a control character"));
    }
    let host_key = HostKey::parse(text("host_key")?).map_err(|r| refuse("host_key", &r))?;
    let tree = match text("tree")? {
        PENDING => None,
        t if t.len() == 64 && t.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Some(t.to_string())
        }
        _ => return Err(refuse("tree", "neither a SHA-256 (64 lowercase hex digits) nor \"pending\"")),
    };
    let key = Key { address: address.to_string(), port, user: user.to_string(), remote_root: remote_root.to_string() };
    Ok((key, Entry { host_key, tree, confirmed_at: time("confirmed_at")?, verified_at: time("verified_at")? }))
}
