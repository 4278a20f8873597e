//! Applying a [`FileSet`] to a remote host over SSH, by SFTP only (no remote shell), following the
//! owned-files protocol of [`super::owned`] with the state file in the remote root.
//!
//! One connection per host: verify the host key against known_hosts, log in with a private key,
//! read the state file; a current host costs nothing more. Otherwise ownership of new paths is
//! claimed in the state file first, every changed file is written as a temp file and renamed over
//! the old one (`posix-rename@openssh.com`, since a plain SFTP v3 rename never replaces a file),
//! files and folders no longer wanted are removed only after that, and the final state is written
//! last. containerd never sees an empty registry folder or half a file.
//!
//! Every network call is bounded: name resolution and the TCP connect by the connect timeout,
//! each SSH call by the operation timeout, and the whole visit by the host timeout, after which
//! the connection is shut down under whatever call is waiting.

use super::owned::{self, ApplyReport};
use crate::fileset::FileSet;
use ssh2::Session;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod host_key;
mod pins;
mod raw_sftp;
mod remote;

use host_key::verify_host_key;
pub use host_key::{HostKey, KnownHostsFile};
pub use pins::Pins;
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
    #[error("{path} is a symbolic link; mirrorconf follows no link under the remote root (replace it with a folder or remove it)")]
    Link { path: String },
    #[error("gave up after {}s (--host-timeout)", .0.as_secs_f64())]
    HostTimeout(Duration),
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
                | SshError::Link { .. }
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
    /// The whole visit to one host (resolve, connect, log in, read, write) gives up after this long.
    pub host_timeout: Duration,
    /// Replace files at wanted paths that mirrorconf did not write (a host the Windows Machine
    /// Config Operator configured before); otherwise they are kept and reported.
    pub take_over: bool,
}

/// Where one visit to a host spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Name resolution, TCP connect, SSH handshake and host key check.
    pub connect: Duration,
    /// Public-key login.
    pub auth: Duration,
    /// Starting SFTP and reading the state file.
    pub read_state: Duration,
    /// Deciding and writing: for a current host only the decision (and, when verifying, reading
    /// the files); for a changed one the claim, the temp files, the renames and the final state.
    pub write: Duration,
}

/// What a successful visit did, which host key the host showed, and where the time went.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub report: ApplyReport,
    pub host_key: HostKey,
    pub timings: Timings,
}

/// Brings `address`'s remote root in line with `wanted` (paths relative to the remote root).
/// `verify`: read every wanted file rather than trusting the state file's hashes.
pub fn push(
    address: &str,
    user: &str,
    wanted: &FileSet,
    opts: &SshOptions<'_>,
    verify: bool,
) -> Result<Pushed, SshError> {
    let deadline = Instant::now() + opts.host_timeout;
    let mut timings = Timings::default();
    let mut lap = Instant::now();
    let mut split = |slot: &mut Duration| {
        *slot = lap.elapsed();
        lap = Instant::now();
    };
    let tcp = open_tcp(address, opts, deadline)?;
    let watchdog = Watchdog::arm(&tcp, deadline)?;
    let result = (|| -> Result<Pushed, SshError> {
        let session = handshake(tcp, address, opts)?;
        split(&mut timings.connect);
        login(&session, user, opts)?;
        split(&mut timings.auth);
        let remote = Remote::open(&session, opts.remote_root, verify)?;
        let (state, dropped) = remote.read_state()?;
        split(&mut timings.read_state);
        for d in &dropped {
            tracing::warn!(host = %address, state = %remote.path(STATE_FILE), "{d}");
        }
        let report = owned::apply(&remote, wanted, state, !dropped.is_empty(), opts.take_over)?;
        split(&mut timings.write);
        let host_key = HostKey::of(&session)?;
        Ok(Pushed { report, host_key, timings })
    })();
    let cut = watchdog.disarm();
    match result {
        // Whatever a call reported after the connection was cut, the cause is the time limit.
        Err(_) if cut => Err(SshError::HostTimeout(opts.host_timeout)),
        r => r,
    }
}

/// Resolves the name and connects, each bounded by the connect timeout and the host's deadline.
fn open_tcp(address: &str, opts: &SshOptions<'_>, deadline: Instant) -> Result<TcpStream, SshError> {
    let addr = format!("{address}:{}", opts.port);
    let conn_err = |source| SshError::Connect { addr: addr.clone(), source };
    let left = || deadline.saturating_duration_since(Instant::now()).min(opts.connect_timeout);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
    for sa in resolve(address, opts.port, left()).map_err(conn_err)? {
        let limit = left();
        if limit.is_zero() {
            last = io::Error::new(io::ErrorKind::TimedOut, "out of time before connecting");
            break;
        }
        match TcpStream::connect_timeout(&sa, limit) {
            Ok(s) => {
                // A push is a string of small request/response exchanges: without this, Nagle's
                // algorithm holds back small writes waiting for the peer's delayed ACK.
                s.set_nodelay(true).map_err(conn_err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(conn_err(last))
}

/// The system resolver has no timeout of its own: it runs on a thread of its own, and an answer
/// later than `limit` is given up on (the thread ends when the resolver does).
fn resolve(address: &str, port: u16, limit: Duration) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = address.to_string();
    std::thread::spawn(move || {
        let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Iterator::collect));
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "name resolution timed out")))
}

fn handshake(tcp: TcpStream, address: &str, opts: &SshOptions<'_>) -> Result<Session, SshError> {
    let mut session = Session::new().map_err(SshError::Handshake)?;
    session.set_timeout(u32::try_from(opts.op_timeout.as_millis()).unwrap_or(u32::MAX));
    session.set_tcp_stream(tcp);
    host_key::prefer_recorded_key_types(&session, address, opts.port, opts.known_hosts)?;
    session.handshake().map_err(SshError::Handshake)?;
    verify_host_key(&session, address, opts.port, opts.known_hosts)?;
    Ok(session)
}

fn login(session: &Session, user: &str, opts: &SshOptions<'_>) -> Result<(), SshError> {
    session.userauth_pubkey_file(user, None, opts.identity, None).map_err(|source| SshError::Auth {
        user: user.to_string(),
        identity: opts.identity.to_path_buf(),
        source,
    })
}

/// Shuts the connection down at the host's deadline, so that no call on it outlasts the host
/// timeout (libssh2's own timeout is per call, and a slow host can answer just in time to each).
struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn arm(tcp: &TcpStream, deadline: Instant) -> Result<Watchdog, SshError> {
        let socket = tcp.try_clone().map_err(|source| SshError::Io { op: "watch", path: String::new(), source })?;
        let (cancel, cancelled) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fired);
        let thread = std::thread::spawn(move || {
            let limit = deadline.saturating_duration_since(Instant::now());
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                flag.store(true, Ordering::SeqCst);
                let _ = socket.shutdown(Shutdown::Both);
            }
        });
        Ok(Watchdog { cancel: Some(cancel), fired, thread: Some(thread) })
    }

    /// Stops the watch; true when it had already cut the connection.
    fn disarm(mut self) -> bool {
        self.stop();
        self.fired.load(Ordering::SeqCst)
    }

    fn stop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}
