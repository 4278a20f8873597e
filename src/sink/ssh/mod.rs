//! Applying a [`FileSet`] to a remote host over SSH, by SFTP only (no remote shell), following the
//! owned-files protocol of [`super::owned`] with the state file in the remote root.
//!
//! One connection per host: verify the host key against known_hosts, log in with a private key,
//! read the state file; a current host costs nothing more. Otherwise ownership of new paths is
//! claimed in the state file first, every changed file is written as a temp file and renamed over
//! the old one (`posix-rename@openssh.com`, since a plain SFTP v3 rename never replaces a file),
//! files and folders no longer wanted are removed only after that, and the final state is written
//! last. containerd never sees an empty registry folder or half a file.

use super::owned::{self, ApplyReport};
use crate::fileset::FileSet;
use ssh2::Session;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod host_key;
mod raw_sftp;
mod remote;

use host_key::verify_host_key;
pub use host_key::KnownHostsFile;
use remote::Remote;
pub use remote::{is_temp_name, TEMP_SUFFIX};

/// The state file, relative to the remote root. containerd only reads `<root>/<host>/hosts.toml`,
/// so a file at the top of the root is never mistaken for registry configuration.
pub const STATE_FILE: &str = ".mirrorconf-state.json";

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("SSH handshake failed: {0}")]
    Handshake(ssh2::Error),
    #[error("host key {fingerprint} of {host} is not in {file} (check it, add it, or pass --trust-on-first-use); nothing was written")]
    UnknownHostKey { host: String, fingerprint: String, file: PathBuf },
    #[error("host key {fingerprint} of {host} does NOT match {file} (a changed host or a man in the middle); nothing was written")]
    HostKeyMismatch { host: String, fingerprint: String, file: PathBuf },
    #[error("known_hosts {file}: {reason}")]
    KnownHosts { file: PathBuf, reason: String },
    #[error("login as {user:?} with key {identity} refused: {source}")]
    Auth { user: String, identity: PathBuf, source: ssh2::Error },
    #[error("{op} {path}: {source}")]
    Sftp { op: &'static str, path: String, source: ssh2::Error },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: io::Error },
    #[error("state file {path}: {reason} (move it away to start over)")]
    State { path: String, reason: String },
}

impl SshError {
    /// Failures a retry cannot fix: the host key, the login, a broken state file.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SshError::UnknownHostKey { .. }
                | SshError::HostKeyMismatch { .. }
                | SshError::KnownHosts { .. }
                | SshError::Auth { .. }
                | SshError::State { .. }
        )
    }
}

/// How to reach and where to write on every host.
pub struct SshOptions<'a> {
    pub port: u16,
    pub identity: &'a Path,
    pub known_hosts: &'a KnownHostsFile,
    /// `/`-separated; relative paths are relative to the SFTP start folder.
    pub remote_root: &'a str,
    pub connect_timeout: Duration,
    /// Every blocking SSH operation (handshake included) gives up after this long.
    pub op_timeout: Duration,
    /// Replace files at wanted paths that mirrorconf did not write (a host the Windows Machine
    /// Config Operator configured before); otherwise they are kept and reported.
    pub take_over: bool,
}

/// Brings `address`'s remote root in line with `wanted` (paths relative to the remote root).
pub fn push(address: &str, user: &str, wanted: &FileSet, opts: &SshOptions<'_>) -> Result<ApplyReport, SshError> {
    let session = connect(address, user, opts)?;
    let remote = Remote::open(&session, opts.remote_root)?;
    let (state, dropped) = remote.read_state()?;
    for d in &dropped {
        tracing::warn!(host = %address, state = %remote.path(STATE_FILE), "{d}");
    }
    owned::apply(&remote, wanted, state, !dropped.is_empty(), opts.take_over)
}

fn connect(address: &str, user: &str, opts: &SshOptions<'_>) -> Result<Session, SshError> {
    let addr = format!("{address}:{}", opts.port);
    let conn_err = |source| SshError::Connect { addr: addr.clone(), source };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
    let mut tcp = None;
    for sa in (address, opts.port).to_socket_addrs().map_err(conn_err)? {
        match TcpStream::connect_timeout(&sa, opts.connect_timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or_else(|| conn_err(last))?;
    let mut session = Session::new().map_err(SshError::Handshake)?;
    session.set_timeout(u32::try_from(opts.op_timeout.as_millis()).unwrap_or(u32::MAX));
    session.set_tcp_stream(tcp);
    host_key::prefer_recorded_key_types(&session, address, opts.port, opts.known_hosts)?;
    session.handshake().map_err(SshError::Handshake)?;
    verify_host_key(&session, address, opts.port, opts.known_hosts)?;
    session.userauth_pubkey_file(user, None, opts.identity, None).map_err(|source| SshError::Auth {
        user: user.to_string(),
        identity: opts.identity.to_path_buf(),
        source,
    })?;
    Ok(session)
}
