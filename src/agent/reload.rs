//! What to run after the files change: CRI-O re-reads registries.conf on SIGHUP (what the MCO does
//! instead of a drain for changes that allow it), and any command the admin names. No shell is
//! involved: the command is split on whitespace and run directly, in a process group of its own,
//! and killed (the whole group, by its pid) when it outlives its timeout: a hung hook must not
//! stop every later render.

pub mod crio;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::Duration;

/// How long `--on-change` may run by default.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a failing hook's stderr that is kept for the log line.
const MAX_STDERR: usize = 2000;

#[derive(Debug, Clone)]
pub struct Reload {
    /// Send SIGHUP to CRI-O when registries.conf (or its search drop-in) changed.
    pub crio: bool,
    /// Where to look for the CRI-O process (`/proc`, or the host's when mounted elsewhere).
    pub proc_root: PathBuf,
    /// CRI-O's pidfile, when something writes one (see [`crio`]).
    pub crio_pidfile: Option<PathBuf>,
    /// Program and arguments to run after any file changed.
    pub on_change: Vec<String>,
    /// `on_change` is killed when it runs longer than this.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Crio(#[from] crio::CrioError),
    #[error("cannot signal CRI-O (pid {pid}): {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error("--on-change {cmd:?}: {detail}")]
    Command { cmd: String, detail: String },
    #[error("--on-change {cmd:?} (pid {pid}) ran longer than {timeout:?} (--hook-timeout) and was killed")]
    Timeout { cmd: String, pid: u32, timeout: Duration },
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            crio: false,
            proc_root: PathBuf::from("/proc"),
            crio_pidfile: None,
            on_change: Vec::new(),
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

impl Reload {
    pub fn is_empty(&self) -> bool {
        !self.crio && self.on_change.is_empty()
    }

    /// Runs the configured actions. `registries_changed`: registries.conf or its drop-in changed.
    pub async fn run(&self, registries_changed: bool) -> Result<(), ReloadError> {
        if self.crio && registries_changed {
            match crio::main_process(&self.proc_root, self.crio_pidfile.as_deref())? {
                Some(pid) => {
                    kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|source| ReloadError::Signal { pid, source })?;
                    tracing::info!(pid, "sent SIGHUP to CRI-O");
                }
                // Nothing to reload: CRI-O reads the new files when it starts.
                None => tracing::info!(
                    proc_root = %self.proc_root.display(),
                    "CRI-O is not running: nothing to reload; it reads the files when it starts"
                ),
            }
        }
        if let Some((program, args)) = self.on_change.split_first() {
            let cmd = self.on_change.join(" ");
            let mut child = tokio::process::Command::new(program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| ReloadError::Command { cmd: cmd.clone(), detail: e.to_string() })?;
            let pid = child.id().unwrap_or(0);
            let stderr = child.stderr.take();
            // The child moves in: at the timeout this future is dropped, and the child with it.
            let waited = async move {
                let (kept, not_kept) = match stderr {
                    Some(stderr) => read_capped(stderr, MAX_STDERR).await,
                    None => (Vec::new(), 0),
                };
                (child.wait().await, kept, not_kept)
            };
            let (status, stderr, not_kept) = match tokio::time::timeout(self.timeout, waited).await {
                Ok((status, kept, not_kept)) => {
                    let status =
                        status.map_err(|e| ReloadError::Command { cmd: cmd.clone(), detail: e.to_string() })?;
                    (status, kept, not_kept)
                }
                Err(_) => {
                    // The hook leads its own group: end it and whatever it started, by its pid.
                    // (Dropping the child above already sent SIGKILL to the hook itself.)
                    if let Ok(p) = i32::try_from(pid) {
                        let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
                    }
                    return Err(ReloadError::Timeout { cmd, pid, timeout: self.timeout });
                }
            };
            if !status.success() {
                let mut detail = format!("{status}: {}", String::from_utf8_lossy(&stderr).trim());
                if not_kept > 0 {
                    detail += &format!(" ... ({not_kept} more bytes of stderr not kept)");
                }
                return Err(ReloadError::Command { cmd, detail });
            }
            tracing::info!(%cmd, "ran --on-change");
        }
        Ok(())
    }
}

/// Reads `from` to its end and keeps the first `cap` bytes; the rest is read (so the hook never
/// blocks on a full pipe) and only counted. A hook that writes gigabytes to stderr must not make
/// the agent, root on every node, hold them.
async fn read_capped(mut from: impl tokio::io::AsyncRead + Unpin, cap: usize) -> (Vec<u8>, u64) {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::with_capacity(cap.min(8192));
    let mut buf = [0u8; 8192];
    let mut not_kept = 0u64;
    // A read error ends what there is to say, like the end of the pipe.
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let take = n.min(cap - kept.len());
        kept.extend_from_slice(&buf[..take]);
        not_kept += (n - take) as u64;
    }
    (kept, not_kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for CRI-O: a script named `crio` (so its comm is `crio`) that records each SIGHUP
    /// it gets; started with `main`, it starts a child `crio` of its own.
    const STAND_IN: &str = r#"#!/bin/sh
trap 'echo hup >> "$1/hup.$$"' HUP
if [ "$2" = main ]; then "$0" "$1" child & echo $! > "$1/child.pid"; fi
echo up > "$1/up.$$"
while :; do sleep 0.05; done
"#;

    /// Kills the stand-ins (by the pids they recorded) however the test ends.
    struct StandIns {
        main: std::process::Child,
        dir: std::path::PathBuf,
    }

    impl StandIns {
        fn child_pid(&self) -> Option<i32> {
            std::fs::read_to_string(self.dir.join("child.pid")).ok()?.trim().parse().ok()
        }
    }

    impl Drop for StandIns {
        fn drop(&mut self) {
            if let Some(pid) = self.child_pid() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = self.main.kill();
            let _ = self.main.wait();
        }
    }

    #[tokio::test]
    async fn only_crios_main_process_is_signalled_not_its_crio_child() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("crio");
        std::fs::write(&script, STAND_IN).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let main = std::process::Command::new(&script)
            .arg(dir.path())
            .arg("main")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stand_ins = StandIns { main, dir: dir.path().to_path_buf() };
        let main_pid = stand_ins.main.id() as i32;
        let up = |pid: i32| dir.path().join(format!("up.{pid}")).exists();
        let child_pid = (0..250)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                stand_ins.child_pid().filter(|&pid| up(main_pid) && up(pid))
            })
            .expect("the stand-ins start");
        // A /proc that shows only these two (the machine may run other processes named crio).
        let proc_root = dir.path().join("proc");
        std::fs::create_dir(&proc_root).unwrap();
        for pid in [main_pid, child_pid] {
            assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap(), "crio\n");
            std::os::unix::fs::symlink(format!("/proc/{pid}"), proc_root.join(pid.to_string())).unwrap();
        }
        let reload = Reload { crio: true, proc_root, ..Reload::default() };
        reload.run(true).await.unwrap();
        let hups = |pid: i32| std::fs::read_to_string(dir.path().join(format!("hup.{pid}"))).unwrap_or_default();
        let got = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !hups(main_pid).is_empty()
        });
        assert!(got, "CRI-O's main process {main_pid} got no SIGHUP");
        // The child has had as long as the main process to record a signal, and more.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(hups(child_pid), "", "the child crio {child_pid} was signalled too");
        drop(stand_ins);
    }

    #[tokio::test]
    async fn no_crio_process_is_nothing_to_reload() {
        let empty = tempfile::tempdir().unwrap();
        let reload = Reload { crio: true, proc_root: empty.path().to_path_buf(), ..Reload::default() };
        reload.run(true).await.expect("no CRI-O: nothing to reload, no error");
    }

    #[tokio::test]
    async fn a_hung_hook_and_what_it_started_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook.sh");
        let child_pid = dir.path().join("child.pid");
        // The hook starts a child of its own, records its pid, and hangs.
        std::fs::write(&script, format!("#!/bin/sh\nsleep 300 &\necho $! > {}\nwait\n", child_pid.display())).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let reload = Reload {
            on_change: vec![script.display().to_string()],
            timeout: Duration::from_millis(500),
            ..Reload::default()
        };
        let start = std::time::Instant::now();
        let e = reload.run(false).await.unwrap_err();
        assert!(matches!(e, ReloadError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&child_pid).unwrap().trim().parse().unwrap();
        // The grandchild is gone too (reaped by init once killed; allow it a moment).
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
        assert!(gone, "the hook's own child {pid} still runs");
    }

    #[tokio::test]
    async fn stderr_past_the_cap_is_read_and_counted_not_held() {
        use tokio::io::AsyncReadExt;
        // A gigabyte that is never in memory: only what is kept is.
        let (kept, not_kept) = read_capped(tokio::io::repeat(b'x').take(1 << 30), MAX_STDERR).await;
        assert_eq!(kept.len(), MAX_STDERR);
        assert!(kept.capacity() <= 8192, "{}", kept.capacity());
        assert_eq!(not_kept, (1 << 30) - MAX_STDERR as u64);
        let (kept, not_kept) = read_capped(&b"short"[..], MAX_STDERR).await;
        assert_eq!((kept.as_slice(), not_kept), (&b"short"[..], 0));
    }

    #[tokio::test]
    async fn a_failing_hook_that_floods_stderr_is_reported_with_the_start_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook.sh");
        // 64 MiB on stderr, then failure.
        std::fs::write(
            &script,
            "#!/bin/sh
echo first words >&2
head -c 67108864 /dev/zero | tr '\\0' y >&2
exit 3
",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let reload = Reload { on_change: vec![script.display().to_string()], ..Reload::default() };
        let e = reload.run(false).await.unwrap_err().to_string();
        assert!(e.contains("exit status: 3: first words\nyyy"), "{}", &e[..200.min(e.len())]);
        let not_kept = (67_108_864 + 12 - MAX_STDERR).to_string();
        assert!(e.ends_with(&format!("... ({not_kept} more bytes of stderr not kept)")), "{}", &e[e.len() - 200..]);
        assert!(e.len() < MAX_STDERR + 200, "{}", e.len());
    }
}
