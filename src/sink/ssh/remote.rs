//! One host's remote root over SFTP: the primitive operations the owned-files protocol asks of a
//! sink ([`Store`]), with every file written as a temp file and renamed over the old one.
//!
//! SFTP has no `RESOLVE_IN_ROOT`: every path below the remote root is checked component by
//! component with `lstat`, and a symbolic link on the way is refused ([`SshError::Link`]), so a link
//! planted under the remote root never leads a read or a write outside it. A last component that
//! is a link is refused when it would be read or followed; a write renames over it (replacing the
//! link, not following it) and a removal unlinks the link itself. Folders found plain are
//! remembered for the rest of the contact.

use super::raw_sftp::RawSftp;
use super::{SshError, STATE_FILE};
use crate::fileset::File;
use crate::sink::owned::{self, Current, KeyRules, Manifest, Removal, Store, MAX_STATE_BYTES};
use crate::text::sha256_hex;
use libssh2_sys as raw;
use ssh2::{ErrorCode, OpenFlags, OpenType, Session, Sftp};
use std::io::{Read, Write};
use std::path::Path;

const FX_NO_SUCH_FILE: i32 = raw::LIBSSH2_FX_NO_SUCH_FILE;
const FX_OP_UNSUPPORTED: i32 = raw::LIBSSH2_FX_OP_UNSUPPORTED;
const FX_PERMISSION_DENIED: i32 = raw::LIBSSH2_FX_PERMISSION_DENIED;
/// Suffix of the temp file written next to its target before the rename.
pub const TEMP_SUFFIX: &str = ".mirrorconf-tmp";
/// Suffix of a file moved aside on a server without posix-rename.
const ASIDE_SUFFIX: &str = ".mirrorconf-old";
/// Entries of a remote state file must be paths a Windows host can hold.
const KEYS: KeyRules = KeyRules { windows: true, reserved: STATE_FILE };

pub(super) fn sftp_code(e: &ssh2::Error) -> Option<i32> {
    match e.code() {
        ErrorCode::SFTP(c) => Some(c),
        ErrorCode::Session(_) => None,
    }
}

/// An SFTP session on one host, rooted at the remote root.
pub(super) struct Remote<'s> {
    session: &'s Session,
    sftp: Sftp,
    root: String,
    /// Read every wanted file instead of trusting the state file's hashes (a verification pass:
    /// finds a file someone edited or removed since mirrorconf wrote it).
    verify: bool,
    /// Opened on the first rename: a current host never needs it.
    rename_channel: std::cell::OnceCell<RawSftp<'s>>,
    /// Set once the remote root is known to exist (made on the first change).
    root_ready: std::cell::OnceCell<()>,
    /// Folders below the root found by `lstat` to be folders, not links, during this contact.
    plain_dirs: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl<'s> Remote<'s> {
    pub(super) fn open(session: &'s Session, root: &str, verify: bool) -> Result<Self, SshError> {
        let sftp = session.sftp().map_err(|source| SshError::Sftp { op: "start SFTP", path: String::new(), source })?;
        let root = root.trim_end_matches('/').to_string();
        Ok(Remote {
            session,
            sftp,
            root,
            verify,
            rename_channel: std::cell::OnceCell::new(),
            root_ready: std::cell::OnceCell::new(),
            plain_dirs: Default::default(),
        })
    }

    /// The remote path of `rel` once no component below the root is a symbolic link (the last
    /// one included when `with_last`). A missing component ends the check: nothing below it exists.
    fn checked(&self, rel: &str, with_last: bool) -> Result<String, SshError> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let upto = if with_last { parts.len() } else { parts.len().saturating_sub(1) };
        for n in 1..=upto {
            let prefix = parts[..n].join("/");
            if self.plain_dirs.borrow().contains(&prefix) {
                continue;
            }
            let path = self.path(&prefix);
            match self.sftp.lstat(Path::new(&path)) {
                Ok(stat) if stat.file_type().is_symlink() => return Err(SshError::Link { path }),
                Ok(stat) if stat.is_dir() => {
                    self.plain_dirs.borrow_mut().insert(prefix);
                }
                Ok(_) => {}
                Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => break,
                Err(e) => return Err(Self::err("lstat", &path)(e)),
            }
        }
        Ok(self.path(rel))
    }

    pub(super) fn path(&self, rel: &str) -> String {
        if self.root.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    fn err<'p>(op: &'static str, path: &'p str) -> impl FnOnce(ssh2::Error) -> SshError + 'p {
        move |source| SshError::Sftp { op, path: path.to_string(), source }
    }

    pub(super) fn read_state(&self) -> Result<(Manifest, Vec<owned::DroppedKey>), SshError> {
        let path = self.checked(STATE_FILE, true)?;
        let Some(bytes) = self.read(&path, MAX_STATE_BYTES)? else { return Ok((Manifest::default(), Vec::new())) };
        let bytes = bytes.ok_or_else(|| SshError::State {
            path: path.clone(),
            reason: format!("larger than {MAX_STATE_BYTES} bytes (the limit)"),
        })?;
        Manifest::parse(&bytes, &KEYS).map_err(|e| SshError::State { path, reason: e.to_string() })
    }

    /// The file at `path`: `None` when there is none, `Some(None)` when it is larger than `limit`.
    fn read(&self, path: &str, limit: u64) -> Result<Option<Option<Vec<u8>>>, SshError> {
        let f = match self.sftp.open(Path::new(path)) {
            Ok(f) => f,
            Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => return Ok(None),
            Err(e) => return Err(Self::err("open", path)(e)),
        };
        let mut bytes = Vec::new();
        f.take(limit + 1).read_to_end(&mut bytes).map_err(|source| SshError::Io {
            op: "read",
            path: path.to_string(),
            source,
        })?;
        Ok(Some((bytes.len() as u64 <= limit).then_some(bytes)))
    }

    fn exists(&self, path: &str) -> Result<bool, SshError> {
        match self.sftp.stat(Path::new(path)) {
            Ok(_) => Ok(true),
            Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => Ok(false),
            Err(e) => Err(Self::err("stat", path)(e)),
        }
    }

    /// Creates the remote root and its missing parents (never recorded as owned: the root stays).
    fn ensure_root(&self) -> Result<(), SshError> {
        if self.root.is_empty() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cur = self.root.as_str();
        while !self.exists(cur)? {
            missing.push(cur.to_string());
            match cur.rfind('/') {
                Some(i) if i > 0 => cur = &cur[..i],
                _ => break,
            }
        }
        for dir in missing.iter().rev() {
            self.sftp.mkdir(Path::new(dir), 0o755).map_err(Self::err("mkdir", dir))?;
        }
        Ok(())
    }

    fn ready(&self) -> Result<(), SshError> {
        if self.root_ready.get().is_none() {
            self.ensure_root()?;
            let _ = self.root_ready.set(());
        }
        Ok(())
    }

    /// Temp file next to the target, written, fsynced where the server can, then renamed over it.
    fn write_file(&self, rel: &str, contents: &[u8], mode: u32) -> Result<(), SshError> {
        let target = self.checked(rel, false)?;
        let tmp = temp_path(&target);
        // Always a new file, so it gets exactly `mode` (an open of an existing file keeps that
        // file's mode). A temp file left by a push cut short is removed first.
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE;
        let create = || self.sftp.open_mode(Path::new(&tmp), flags, mode as i32, OpenType::File);
        let mut f = match create() {
            Ok(f) => f,
            Err(_) if self.sftp.unlink(Path::new(&tmp)).is_ok() => create().map_err(Self::err("create", &tmp))?,
            Err(e) => return Err(Self::err("create", &tmp)(e)),
        };
        f.write_all(contents).map_err(|source| SshError::Io { op: "write", path: tmp.clone(), source })?;
        match f.fsync() {
            Ok(()) => {}
            // fsync@openssh.com is an extension; a server without it still gets the rename.
            Err(e) if sftp_code(&e) == Some(FX_OP_UNSUPPORTED) => {}
            Err(e) => return Err(Self::err("fsync", &tmp)(e)),
        }
        drop(f);
        self.replace(&tmp, &target)
    }

    fn replace(&self, tmp: &str, target: &str) -> Result<(), SshError> {
        if self.rename_channel.get().is_none() {
            let raw = RawSftp::open(self.session).map_err(Self::err("start SFTP for posix-rename", target))?;
            let _ = self.rename_channel.set(raw);
        }
        let channel = self.rename_channel.get().expect("set above");
        match channel.posix_rename(tmp, target) {
            Ok(()) => Ok(()),
            // Unsupported, or refused by the server's policy (sftp-server -P): a plain rename may
            // still be allowed.
            Err(e) if matches!(sftp_code(&e), Some(FX_OP_UNSUPPORTED | FX_PERMISSION_DENIED)) => {
                self.replace_without_posix_rename(tmp, target)
            }
            Err(e) => Err(Self::err("rename", target)(e)),
        }
    }

    /// Servers without `posix-rename@openssh.com`: move the old file aside, move the new one in,
    /// delete the old. There is a moment with no file, never one with a partial file.
    fn replace_without_posix_rename(&self, tmp: &str, target: &str) -> Result<(), SshError> {
        let aside = format!("{target}{ASIDE_SUFFIX}");
        let had_old = self.exists(target)?;
        if had_old {
            let _ = self.sftp.unlink(Path::new(&aside));
            self.sftp.rename(Path::new(target), Path::new(&aside), None).map_err(Self::err("rename", target))?;
        }
        self.sftp.rename(Path::new(tmp), Path::new(target), None).map_err(Self::err("rename", tmp))?;
        if had_old {
            self.sftp.unlink(Path::new(&aside)).map_err(Self::err("remove", &aside))?;
        }
        Ok(())
    }
}

impl Store for Remote<'_> {
    type Error = SshError;

    fn compare(&self, rel: &str, wanted: &File, owned_hash: Option<&str>) -> Result<Current, SshError> {
        // The state file vouches for what mirrorconf wrote: a current host costs no read, unless
        // this contact is a verification.
        match owned_hash {
            Some(h) if h == sha256_hex(&wanted.contents) && !self.verify => return Ok(Current::Same),
            Some(h) if h != sha256_hex(&wanted.contents) => return Ok(Current::Differs),
            _ => {}
        }
        let path = self.checked(rel, true)?;
        Ok(match self.read(&path, wanted.contents.len() as u64)? {
            None => Current::Absent,
            Some(Some(bytes)) if bytes == wanted.contents => Current::Same,
            Some(_) => Current::Differs,
        })
    }

    fn dir_exists(&self, rel: &str) -> Result<bool, SshError> {
        self.exists(&self.checked(rel, true)?)
    }

    fn create_dir(&self, rel: &str) -> Result<(), SshError> {
        self.ready()?;
        let p = self.checked(rel, false)?;
        self.sftp.mkdir(Path::new(&p), 0o755).map_err(Self::err("mkdir", &p))
    }

    fn write(&self, rel: &str, file: &File) -> Result<(), SshError> {
        self.ready()?;
        self.write_file(rel, &file.contents, file.mode)
    }

    fn remove_file(&self, rel: &str) -> Result<Removal, SshError> {
        let p = match self.checked(rel, false) {
            Err(SshError::Link { path }) => return Ok(Removal::Refused(format!("{path} is a symbolic link"))),
            p => p?,
        };
        match self.sftp.unlink(Path::new(&p)) {
            Ok(()) => Ok(Removal::Removed),
            Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => Ok(Removal::Absent),
            Err(e) => Err(Self::err("remove", &p)(e)),
        }
    }

    fn remove_dir(&self, rel: &str) -> Result<Removal, SshError> {
        let p = match self.checked(rel, true) {
            Err(SshError::Link { path }) => return Ok(Removal::Refused(format!("{path} is a symbolic link"))),
            p => p?,
        };
        match self.sftp.rmdir(Path::new(&p)) {
            Ok(()) => Ok(Removal::Removed),
            Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => Ok(Removal::Absent),
            Err(_) => Ok(Removal::NotEmpty),
        }
    }

    fn write_state(&self, state: &Manifest) -> Result<(), SshError> {
        self.ready()?;
        self.write_file(STATE_FILE, &state.to_bytes(), 0o644)
    }

    fn sweep(&self, rel: &str) -> Result<Vec<String>, SshError> {
        let dir = if rel.is_empty() { self.root.clone() } else { self.checked(rel, true)? };
        let dir = if dir.is_empty() { ".".to_string() } else { dir };
        let entries = match self.sftp.readdir(Path::new(&dir)) {
            Ok(entries) => entries,
            Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => return Ok(Vec::new()),
            Err(e) => return Err(Self::err("list", &dir)(e)),
        };
        let mut swept = Vec::new();
        for (path, stat) in entries {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if !stat.is_file() || !is_temp_name(name) {
                continue;
            }
            let p = format!("{dir}/{name}");
            match self.sftp.unlink(Path::new(&p)) {
                Ok(()) => swept.push(if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") }),
                Err(e) if sftp_code(&e) == Some(FX_NO_SUCH_FILE) => {}
                Err(e) => return Err(Self::err("remove", &p)(e)),
            }
        }
        Ok(swept)
    }
}

/// Whether `name` is one of this sink's temp files: `.<name>.mirrorconf-tmp` (being written) or
/// `<name>.mirrorconf-old` (moved aside on a server without posix-rename).
pub fn is_temp_name(name: &str) -> bool {
    let temp = name.len() > 1 + TEMP_SUFFIX.len() && name.starts_with('.') && name.ends_with(TEMP_SUFFIX);
    let aside = name.len() > ASIDE_SUFFIX.len() && name.ends_with(ASIDE_SUFFIX);
    temp || aside
}

/// `dir/.name.mirrorconf-tmp` for `dir/name`: hidden, in the same folder, never named hosts.toml.
fn temp_path(target: &str) -> String {
    match target.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}{TEMP_SUFFIX}"),
        None => format!(".{target}{TEMP_SUFFIX}"),
    }
}
