//! What to run after the files change: CRI-O re-reads registries.conf on SIGHUP (what the MCO does
//! instead of a drain for changes that allow it), and any command the admin names. No shell is
//! involved: the command is split on whitespace and run directly, in a process group of its own,
//! and killed (the whole group, by its pid) when it outlives its timeout: a hung hook must not
//! stop every later render.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
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
    /// Program and arguments to run after any file changed.
    pub on_change: Vec<String>,
    /// `on_change` is killed when it runs longer than this.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no CRI-O process (comm \"crio\") under {0}; is the agent in the host's PID namespace?")]
    CrioNotFound(PathBuf),
    #[error("cannot signal CRI-O (pid {pid}): {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error("--on-change {cmd:?}: {detail}")]
    Command { cmd: String, detail: String },
    #[error("--on-change {cmd:?} (pid {pid}) ran longer than {timeout:?} (--hook-timeout) and was killed")]
    Timeout { cmd: String, pid: u32, timeout: Duration },
}

/// The pids whose `comm` is `name`, found by reading `<proc_root>/<pid>/comm`.
pub fn find_processes(proc_root: &Path, name: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else { return Vec::new() };
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

impl Default for Reload {
    fn default() -> Self {
        Reload { crio: false, proc_root: PathBuf::from("/proc"), on_change: Vec::new(), timeout: DEFAULT_HOOK_TIMEOUT }
    }
}

impl Reload {
    pub fn is_empty(&self) -> bool {
        !self.crio && self.on_change.is_empty()
    }

    /// Runs the configured actions. `registries_changed`: registries.conf or its drop-in changed.
    pub async fn run(&self, registries_changed: bool) -> Result<(), ReloadError> {
        if self.crio && registries_changed {
            let pids = find_processes(&self.proc_root, "crio");
            if pids.is_empty() {
                return Err(ReloadError::CrioNotFound(self.proc_root.clone()));
            }
            for pid in pids {
                kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|source| ReloadError::Signal { pid, source })?;
                tracing::info!(pid, "sent SIGHUP to CRI-O");
            }
        }
        if let Some((program, args)) = self.on_change.split_first() {
            let cmd = self.on_change.join(" ");
            let child = tokio::process::Command::new(program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| ReloadError::Command { cmd: cmd.clone(), detail: e.to_string() })?;
            let pid = child.id().unwrap_or(0);
            let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
                Ok(out) => out.map_err(|e| ReloadError::Command { cmd: cmd.clone(), detail: e.to_string() })?,
                Err(_) => {
                    // The hook leads its own group: end it and whatever it started, by its pid.
                    // (Dropping the child above already sent SIGKILL to the hook itself.)
                    if let Ok(p) = i32::try_from(pid) {
                        let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
                    }
                    return Err(ReloadError::Timeout { cmd, pid, timeout: self.timeout });
                }
            };
            if !out.status.success() {
                let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                crate::text::truncate_at_char(&mut stderr, MAX_STDERR);
                let detail = format!("{}: {stderr}", out.status);
                return Err(ReloadError::Command { cmd, detail });
            }
            tracing::info!(%cmd, "ran --on-change");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
