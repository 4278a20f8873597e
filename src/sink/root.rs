//! The one way mirrorconf opens a path under a root (`--root`: `/` on a node, `/host` in the
//! DaemonSet, any folder in tests): every path is resolved beneath the root, as if the root were
//! `/`, with the kernel's `openat2(RESOLVE_IN_ROOT)`. An absolute symlink found under the root
//! resolves inside it (in the DaemonSet, `/host/etc/containers -> /etc/x` means the host's
//! `/etc/x`, i.e. `/host/etc/x`, not the container's), `..` stops at the root, and magic links
//! (`/proc/self/fd/...`) are refused. So nothing outside the root is read, written or quoted, even
//! when someone plants a link under it.
//!
//! Only final components are handled by name (`mkdirat`, `renameat`, `unlinkat` in a folder opened
//! beneath the root), so a symlink as the last component is replaced or removed, never followed out.
//! Files are read only when regular (a FIFO would hang a read, a device never end it).

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Temp files are `.mirrorconf-XXXXXX.tmp`: hidden, never a name a runtime reads.
pub const TEMP_PREFIX: &str = ".mirrorconf-";
pub const TEMP_SUFFIX: &str = ".tmp";
pub const TEMP_RANDOM: usize = 6;

/// A folder whose paths are all resolved beneath it. Cheap: it holds only the path, and each call
/// opens the root afresh (a root created or replaced meanwhile is simply the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    path: PathBuf,
}

/// What is at a path: a regular file, a folder, a symbolic link, or something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Root {
        Root { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `rel` is, for messages only (never opened as such).
    pub fn shown(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Opens `rel` (relative, `/`-separated; empty for the root) beneath the root.
    fn open(&self, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let root = rfs::open(&self.path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let rel = if rel.is_empty() { "." } else { rel };
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a rename elsewhere under the root raced the lookup; the kernel asks to retry.
        // openat2 refuses O_NOCTTY beside O_PATH (EINVAL), where it would mean nothing anyway.
        let flags = if flags.contains(OFlags::PATH) { flags } else { flags | OFlags::NOCTTY };
        let mut tries = 0;
        loop {
            match rfs::openat2(&root, rel, flags | OFlags::CLOEXEC, mode, how) {
                Err(rustix::io::Errno::AGAIN) if tries < 8 => tries += 1,
                Err(rustix::io::Errno::NOSYS) => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "openat2 is not available (Linux 5.6 or later is needed to keep paths under the root)",
                    ))
                }
                r => return r.map_err(io::Error::from),
            }
        }
    }

    /// The folder holding `rel`, opened beneath the root, and the last component's name.
    fn parent<'r>(&self, rel: &'r str) -> io::Result<(OwnedFd, &'r str)> {
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{rel:?} names no file")));
        }
        Ok((self.open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?, name))
    }

    /// Opens the regular file `rel` for reading; anything else (a FIFO, a device) is refused.
    pub fn open_file(&self, rel: &str) -> io::Result<fs::File> {
        let file = fs::File::from(self.open(rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(file)
    }

    /// What `rel` is after following links beneath the root; `None` when nothing is there.
    pub fn kind(&self, rel: &str) -> io::Result<Option<Kind>> {
        match self.open(rel, OFlags::PATH, Mode::empty()) {
            Ok(fd) => Ok(Some(Kind::of(FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the last component of `rel` itself is (a link is [`Kind::Symlink`]); `None` when absent.
    pub fn kind_no_follow(&self, rel: &str) -> io::Result<Option<Kind>> {
        let (dir, name) = match self.parent(rel) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Kind::of(FileType::from_raw_mode(st.st_mode)))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn is_dir(&self, rel: &str) -> bool {
        matches!(self.kind(rel), Ok(Some(Kind::Dir)))
    }

    /// The entries of the folder `rel` (names and what each is, links not followed), unsorted.
    pub fn read_dir(&self, rel: &str) -> io::Result<Vec<(OsString, Kind)>> {
        let fd = self.open(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = <OsString as std::os::unix::ffi::OsStringExt>::from_vec(name.to_vec());
            out.push((name, Kind::of(entry.file_type())));
        }
        Ok(out)
    }

    /// Creates the folder `rel` (its parent must exist); an existing folder is no error.
    pub fn create_dir(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(rfs::fsync(&dir)?),
            Err(rustix::io::Errno::EXIST) if self.is_dir(rel) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the root and every folder on the way to `rel` that is missing.
    pub fn create_dir_all(&self, rel: &str) -> io::Result<()> {
        fs::create_dir_all(&self.path)?;
        let mut upto = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !upto.is_empty() {
                upto.push('/');
            }
            upto.push_str(part);
            if !self.is_dir(&upto) {
                self.create_dir(&upto)?;
            }
        }
        Ok(())
    }

    /// Writes `contents` to `rel` atomically: a temp file in the same folder, fsync, rename over
    /// the old one (a link there is replaced, not followed), fsync the folder.
    pub fn write_atomic(&self, rel: &str, contents: &[u8], mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let (tmp_name, tmp) = loop {
            let random: String = (0..TEMP_RANDOM).map(|_| fastrand::alphanumeric()).collect();
            let tmp_name = format!("{TEMP_PREFIX}{random}{TEMP_SUFFIX}");
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rfs::openat(&dir, tmp_name.as_str(), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => break (tmp_name, fs::File::from(fd)),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let written = (|| {
            let mut tmp = tmp;
            tmp.write_all(contents)?;
            rfs::fchmod(&tmp, Mode::from_raw_mode(mode))?;
            tmp.sync_all()?;
            rfs::renameat(&dir, tmp_name.as_str(), &dir, name)?;
            Ok::<_, io::Error>(())
        })();
        if let Err(e) = written {
            let _ = rfs::unlinkat(&dir, tmp_name.as_str(), AtFlags::empty());
            return Err(e);
        }
        Ok(rfs::fsync(&dir)?)
    }

    /// Sets the permission bits of the regular file `rel` (links beneath the root followed).
    pub fn set_mode(&self, rel: &str, mode: u32) -> io::Result<()> {
        Ok(rfs::fchmod(self.open_file(rel)?, Mode::from_raw_mode(mode))?)
    }

    /// The mode bits of the regular file `rel`.
    pub fn mode(&self, rel: &str) -> io::Result<u32> {
        Ok(rfs::fstat(self.open_file(rel)?)?.st_mode & 0o7777)
    }

    /// Removes the file (or link) `rel` itself, then fsyncs its folder.
    pub fn remove_file(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        rfs::unlinkat(&dir, name, AtFlags::empty())?;
        Ok(rfs::fsync(&dir)?)
    }

    /// Removes the empty folder `rel`.
    pub fn remove_dir(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        rfs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?;
        Ok(rfs::fsync(&dir)?)
    }

    /// Opens (creating it) a file to hold a lock on; a link there is refused, not followed.
    pub fn open_lock(&self, rel: &str) -> io::Result<fs::File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW;
        Ok(fs::File::from(self.open(rel, flags, Mode::from_raw_mode(0o644))?))
    }
}

#[cfg(test)]
mod tests;
