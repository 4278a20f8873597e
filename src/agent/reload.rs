//! What to run after the files change: CRI-O re-reads registries.conf on SIGHUP (what the MCO does
//! instead of a drain for changes that allow it), and any command the admin names. No shell is
//! involved: the command is split on whitespace and run directly.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct Reload {
    /// Send SIGHUP to CRI-O when registries.conf (or its search drop-in) changed.
    pub crio: bool,
    /// Where to look for the CRI-O process (`/proc`, or the host's when mounted elsewhere).
    pub proc_root: PathBuf,
    /// Program and arguments to run after any file changed.
    pub on_change: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no CRI-O process (comm \"crio\") under {0}; is the agent in the host's PID namespace?")]
    CrioNotFound(PathBuf),
    #[error("cannot signal CRI-O (pid {pid}): {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error("--on-change {cmd:?}: {detail}")]
    Command { cmd: String, detail: String },
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
            let out = tokio::process::Command::new(program)
                .args(args)
                .output()
                .await
                .map_err(|e| ReloadError::Command { cmd: cmd.clone(), detail: e.to_string() })?;
            if !out.status.success() {
                let detail = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
                return Err(ReloadError::Command { cmd, detail });
            }
            tracing::info!(%cmd, "ran --on-change");
        }
        Ok(())
    }
}
