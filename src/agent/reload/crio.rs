//! Which process is CRI-O, for `--reload-crio`: SIGHUP goes to CRI-O's own main process only, never
//! to every process whose name is `crio` (a container may run one, and so may CRI-O's own children).
//!
//! CRI-O writes no pidfile of its own (a `--pid-path` was proposed upstream, cri-o/cri-o#3362, and
//! not merged), but init systems that are not systemd do (OpenRC: `/run/crio.pid`). So:
//! 1. `--crio-pidfile`, when given and present, names the pid; it is used only while that pid's
//!    `comm` is still `crio` (a stale file after a crash may name a reused pid);
//! 2. otherwise the main process is the one `crio` process whose parent is not itself `crio`.
//!
//! No CRI-O process at all is not an error: CRI-O reads the files when it starts (first boot, where
//! mirrorconf runs before it, or a podman-only host).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The name CRI-O runs under (`/proc/<pid>/comm`).
pub const COMM: &str = "crio";
/// The most of a pidfile read: a pid is a few digits.
const MAX_PIDFILE_BYTES: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum CrioError {
    #[error("cannot read the CRI-O pidfile {path} (--crio-pidfile): {source}")]
    Pidfile { path: PathBuf, source: io::Error },
    #[error("the CRI-O pidfile {path} (--crio-pidfile) holds {text:?}, not a process id")]
    NotAPid { path: PathBuf, text: String },
    #[error(
        "several CRI-O main processes under {proc_root} (pids {pids:?}); name the one to reload with --crio-pidfile"
    )]
    Ambiguous { proc_root: PathBuf, pids: Vec<i32> },
}

/// CRI-O's main process: `Ok(None)` when CRI-O does not run.
pub fn main_process(proc_root: &Path, pidfile: Option<&Path>) -> Result<Option<i32>, CrioError> {
    if let Some(path) = pidfile {
        if let Some(pid) = read_pidfile(path)? {
            if comm(proc_root, pid).as_deref() == Some(COMM) {
                return Ok(Some(pid));
            }
            tracing::warn!(pidfile = %path.display(), pid, "the CRI-O pidfile names no running crio process; looking for its main process");
        }
    }
    let crio = processes_named(proc_root, COMM);
    let mains: Vec<i32> =
        crio.iter().copied().filter(|&pid| parent(proc_root, pid).is_none_or(|p| !crio.contains(&p))).collect();
    match mains.as_slice() {
        [] => Ok(None),
        [pid] => Ok(Some(*pid)),
        _ => Err(CrioError::Ambiguous { proc_root: proc_root.to_path_buf(), pids: mains }),
    }
}

/// The pid a pidfile holds; `None` when there is no pidfile.
fn read_pidfile(path: &Path) -> Result<Option<i32>, CrioError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CrioError::Pidfile { path: path.to_path_buf(), source }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_PIDFILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|source| CrioError::Pidfile { path: path.to_path_buf(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(Some(pid)),
        _ => Err(CrioError::NotAPid { path: path.to_path_buf(), text: text.into_owned() }),
    }
}

/// The pids whose `comm` is `name`, sorted, found by reading `<proc_root>/<pid>/comm`.
pub fn processes_named(proc_root: &Path, name: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else { return Vec::new() };
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| comm(proc_root, pid).as_deref() == Some(name))
        .collect();
    pids.sort_unstable();
    pids
}

fn comm(proc_root: &Path, pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).ok()?;
    Some(text.trim_end_matches('\n').to_string())
}

/// The parent pid from `<pid>/stat`: `pid (comm) state ppid ...`, where comm may itself hold spaces
/// and parentheses, so the fields are counted after the last `)`.
fn parent(proc_root: &Path, pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `/proc` with the processes given as (pid, comm, ppid).
    fn fake_proc(procs: &[(i32, &str, i32)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, comm, ppid) in procs {
            let p = dir.path().join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(p.join("stat"), format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1\n")).unwrap();
        }
        dir
    }

    #[test]
    fn the_main_process_is_the_crio_whose_parent_is_not_crio() {
        let proc = fake_proc(&[(1, "systemd", 0), (40, "crio", 1), (41, "crio", 40), (50, "conmon", 1)]);
        assert_eq!(main_process(proc.path(), None).unwrap(), Some(40));
        // A comm that looks like the end of the field does not shift the parent.
        let odd = fake_proc(&[(7, "a) S 40 (", 1), (40, "crio", 7), (41, "crio", 40)]);
        assert_eq!(main_process(odd.path(), None).unwrap(), Some(40));
    }

    #[test]
    fn no_crio_is_nothing_and_two_unrelated_ones_are_ambiguous() {
        let none = fake_proc(&[(1, "systemd", 0), (9, "crio-wrapper", 1)]);
        assert_eq!(main_process(none.path(), None).unwrap(), None);
        let two = fake_proc(&[(1, "systemd", 0), (40, "crio", 1), (60, "crio", 1)]);
        let e = main_process(two.path(), None).unwrap_err().to_string();
        assert!(e.contains("[40, 60]") && e.contains("--crio-pidfile"), "{e}");
    }

    #[test]
    fn the_pidfile_wins_while_it_names_a_crio_process() {
        let proc = fake_proc(&[(1, "systemd", 0), (40, "crio", 1), (60, "crio", 1), (70, "conmon", 1)]);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("crio.pid");
        std::fs::write(&pidfile, "60\n").unwrap();
        assert_eq!(main_process(proc.path(), Some(&pidfile)).unwrap(), Some(60));
        // Stale (a reused pid that is not crio): the search decides, and here it cannot.
        std::fs::write(&pidfile, "70\n").unwrap();
        assert!(matches!(main_process(proc.path(), Some(&pidfile)), Err(CrioError::Ambiguous { .. })));
        std::fs::write(&pidfile, "\x1b[2Jsixty").unwrap();
        let e = main_process(proc.path(), Some(&pidfile)).unwrap_err().to_string();
        assert!(e.contains("\"\\u{1b}[2Jsixty\"") && e.contains("not a process id"), "{e}");
        // Absent: the search.
        let one = fake_proc(&[(40, "crio", 1), (41, "crio", 40)]);
        assert_eq!(main_process(one.path(), Some(&dir.path().join("missing"))).unwrap(), Some(40));
    }
}
