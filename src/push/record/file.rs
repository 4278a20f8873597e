//! The record of `mirrorconf push` on disk. It is untrusted input like every state file: each
//! entry is checked field by field, and one that fails is ignored with a message naming the file,
//! the field and the value (the host is then simply contacted). It is written atomically (temp
//! file in the same folder, fsync, rename, fsync the folder) under a lock held for the whole run.

use super::{Entry, Key, Record};
use crate::error::Error;
use crate::push::inventory::{check_address, check_user};
use crate::sink::local::write_atomic;
use crate::sink::ssh::HostKey;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
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
        let lock = open_regular(fs::OpenOptions::new().create(true).truncate(false).write(true), &lock_path);
        let lock = lock.map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            eprintln!("waiting for another mirrorconf push that uses {}", path.display());
            lock.lock().map_err(io(&lock_path))?;
        }
        let shown = path.display().to_string();
        let (record, problems) = match read_record(path) {
            Ok(None) => (Record::default(), Vec::new()),
            Ok(Some(bytes)) => parse(&shown, &bytes, now),
            Err(e) => {
                let problem = format!("record {shown}: cannot read it: {e}; it is ignored and rewritten");
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

/// Opens `path` without following a symbolic link in its last component (root must not create or
/// truncate a file a link points at) and without blocking on a FIFO or a device (`O_NONBLOCK`:
/// a FIFO would hang the push, and the lock with it), and refuses anything but a regular file.
fn open_regular(options: &mut fs::OpenOptions, path: &Path) -> std::io::Result<fs::File> {
    use nix::libc;
    use std::os::unix::fs::OpenOptionsExt;
    let file = options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::new(e.kind(), "a symbolic link, which is not followed")
        } else {
            e
        }
    })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// The record's bytes (`None`: there is none yet), at most [`MAX_BYTES`].
fn read_record(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match open_regular(fs::OpenOptions::new().read(true), path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        let why = format!("larger than {MAX_BYTES} bytes (the limit)");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    Ok(Some(bytes))
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
    shown_text(v.to_string())
}

fn shown_text(mut s: String) -> String {
    if s.len() > 80 {
        crate::text::truncate_at_char(&mut s, 77);
        s.push_str("...");
    }
    s
}

/// At most this many entries of one file are named; the rest are counted. A 32 MiB file of tiny
/// bad entries is millions of them, and a message for each buried the one that mattered.
pub const MAX_MESSAGES: usize = 20;
/// A real entry is a few hundred bytes; one larger than this is refused without being parsed
/// into a tree (which costs many times its size).
const MAX_ENTRY_BYTES: usize = 64 << 10;

/// The messages about one file: the first [`MAX_MESSAGES`], then a count.
struct Problems {
    named: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, message: impl FnOnce() -> String) {
        if self.named.len() < MAX_MESSAGES {
            self.named.push(message());
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self, file: &str) -> Vec<String> {
        if self.more > 0 {
            self.named.push(format!(
                "record {file}: {} more entries ignored (only the first {MAX_MESSAGES} are named)",
                self.more
            ));
        }
        self.named
    }
}

/// The record in `bytes`, and a message for everything that was ignored. The entries are read
/// one at a time, so memory stays within a small multiple of the good entries whatever the file
/// holds.
pub fn parse(file: &str, bytes: &[u8], now: u64) -> (Record, Vec<String>) {
    let mut record = Record::default();
    let mut problems = Problems { named: Vec::new(), more: 0 };
    let mut on_entry = |i: usize, raw: &RawValue| {
        if raw.get().len() > MAX_ENTRY_BYTES {
            let size = raw.get().len();
            return problems.push(|| {
                format!("record {file}: hosts[{i}]: {size} bytes, more than an entry holds ({MAX_ENTRY_BYTES}); this entry is ignored")
            });
        }
        // Already checked as JSON by the reader: this cannot fail.
        let item = serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null);
        match entry(&item, now) {
            Ok((key, e)) => {
                let shown = format!("{}@{}:{} ({})", key.user, key.address, key.port, key.remote_root);
                if let std::collections::btree_map::Entry::Vacant(slot) = record.entries.entry(key) {
                    slot.insert(e);
                } else {
                    problems.push(|| format!("record {file}: hosts[{i}]: a second entry for {shown}; this entry is ignored"));
                }
            }
            Err((field, value, reason)) => problems.push(|| {
                format!(
                    "record {file}: hosts[{i}].{field} = {value}: {reason}; this entry is ignored (the host is contacted)"
                )
            }),
        }
    };
    let whole = |why: String| vec![format!("record {file}: {why}; it is ignored and rewritten")];
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let top = TopLevel { on_entry: &mut on_entry };
    let version = match top.deserialize(&mut json).and_then(|v| json.end().map(|()| v)) {
        Ok(version) => version,
        Err(e) if e.is_data() => return (Record::default(), whole(format!("not a record ({e})"))),
        Err(e) => return (Record::default(), whole(format!("not valid JSON ({e})"))),
    };
    match version.as_deref().map(|v| serde_json::from_str::<u64>(v.get())) {
        Some(Ok(VERSION)) => {}
        other => {
            let value = match (other, version) {
                (Some(_), Some(v)) => shown_text(v.get().to_string()),
                _ => "missing".to_string(),
            };
            return (Record::default(), whole(format!("version = {value}: only version {VERSION} is understood")));
        }
    }
    (record, problems.finish(file))
}

/// The top-level object: `version` kept raw, `hosts` handed to `on_entry` one at a time.
struct TopLevel<'f, F> {
    on_entry: &'f mut F,
}

impl<'de, F: FnMut(usize, &RawValue)> DeserializeSeed<'de> for TopLevel<'_, F> {
    type Value = Option<Box<RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(usize, &RawValue)> Visitor<'de> for TopLevel<'_, F> {
    type Value = Option<Box<RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with version and hosts")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut version, mut hosts) = (None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => version = Some(map.next_value::<Box<RawValue>>()?),
                "hosts" => {
                    map.next_value_seed(Entries { on_entry: &mut *self.on_entry })?;
                    hosts = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !hosts {
            return Err(serde::de::Error::missing_field("hosts"));
        }
        Ok(version)
    }
}

/// `hosts`, one entry at a time (a list of millions of tiny entries is never held whole).
struct Entries<'f, F> {
    on_entry: &'f mut F,
}

impl<'de, F: FnMut(usize, &RawValue)> DeserializeSeed<'de> for Entries<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(usize, &RawValue)> Visitor<'de> for Entries<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("hosts: a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            (self.on_entry)(i, &raw);
            i += 1;
        }
        Ok(())
    }
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
