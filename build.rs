//! Records the git revision the binary is built from, for `mirrorconf --version`.
//! MIRRORCONF_GIT_REVISION, when set, wins: a container build has no .git (Containerfile).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Rebuild when HEAD moves: HEAD itself, the branch it names, and packed refs. Only existing files
/// are named, since cargo reruns a build script every time for a missing one.
fn watch_head() {
    let mut files = vec!["HEAD".to_string(), "packed-refs".to_string()];
    files.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for f in files {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &f]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=MIRRORCONF_GIT_REVISION");
    let revision = match std::env::var("MIRRORCONF_GIT_REVISION") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            watch_head();
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown revision".into())
        }
    };
    println!("cargo:rustc-env=MIRRORCONF_GIT_REVISION={revision}");
}
