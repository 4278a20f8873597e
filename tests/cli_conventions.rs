//! What people expect of a command-line tool: shell completions that the shells themselves load
//! and use, man pages groff renders without a warning, `--version` with the git revision, and no
//! colour when NO_COLOR is set. bash, zsh, fish, groff and script (for a terminal) are real;
//! scripts/test.sh installs the ones Debian does not always have.

mod common;

use common::{mirrorconf, require_tool};
use std::fs;
use std::process::Command;

fn stdout_of(args: &[&str]) -> String {
    let out = mirrorconf(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn shell(program: &str, args: &[&str]) -> String {
    let out = Command::new(require_tool(program)).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completes_commands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirrorconf.bash");
    fs::write(&file, stdout_of(&["completions", "bash"])).unwrap();
    // What bash does on TAB: set the COMP_* variables and call the registered function.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            "source {}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({}); COMP_CWORD={}; \
             _mirrorconf mirrorconf '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        shell("bash", &["-c", &script])
    };
    assert_eq!(complete("mirrorconf ren").trim(), "render");
    assert!(complete("mirrorconf run --reload").lines().any(|l| l.trim() == "--reload-crio"));
    assert!(complete("mirrorconf completions ").lines().any(|l| l.trim() == "fish"));
}

#[test]
fn fish_completes_commands_and_zsh_loads_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let fish = dir.path().join("mirrorconf.fish");
    fs::write(&fish, stdout_of(&["completions", "fish"])).unwrap();
    let script = format!("source {}; complete -C'mirrorconf ren'", fish.display());
    let out = shell("fish", &["--no-config", "-c", &script]);
    assert!(out.lines().any(|l| l.starts_with("render\t")), "{out}");

    let zsh = dir.path().join("_mirrorconf");
    let text = stdout_of(&["completions", "zsh"]);
    assert!(text.starts_with("#compdef mirrorconf"), "zsh finds it by this line on its fpath");
    fs::write(&zsh, &text).unwrap();
    shell("zsh", &["-n", zsh.to_str().unwrap()]);
    // Loaded the way compinit loads it, it defines the completion function.
    let script =
        format!("autoload -Uz compinit && compinit -u -D && source {} && whence -w _mirrorconf", zsh.display());
    assert!(shell("zsh", &["-f", "-c", &script]).contains("_mirrorconf: function"));
}

/// groff's own check: `-ww` turns on every warning, `-z` discards the output.
fn groff_warnings(page: &std::path::Path) -> String {
    let out = Command::new(require_tool("groff")).args(["-man", "-ww", "-z"]).arg(page).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_man_pages_render_without_warnings_and_name_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("stdout.1");
    let text = stdout_of(&["man"]);
    fs::write(&page, &text).unwrap();
    assert!(text.contains(".TH mirrorconf 1"), "{}", &text[..200.min(text.len())]);
    assert_eq!(groff_warnings(&page), "");
    let commands = ["render", "validate", "run", "push", "resolve", "diff", "completions", "man"];
    for c in commands {
        assert!(text.contains(c), "mirrorconf.1 does not name `{c}`");
    }

    let out_dir = dir.path().join("man1");
    let out = mirrorconf(&["man", "--out-dir", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_to_string(out_dir.join("mirrorconf.1")).unwrap(), text, "the same page either way");
    for c in commands {
        let p = out_dir.join(format!("mirrorconf-{c}.1"));
        assert!(p.is_file(), "{} missing", p.display());
        assert_eq!(groff_warnings(&p), "", "{}", p.display());
    }
    let run = fs::read_to_string(out_dir.join("mirrorconf-run.1")).unwrap();
    assert!(run.contains("reload\\-crio"), "the run page documents its flags");
}

#[test]
fn version_names_the_git_revision() {
    let rev = shell("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short=12", "HEAD"]);
    let want = format!("mirrorconf {} ({})\n", env!("CARGO_PKG_VERSION"), rev.trim());
    assert_eq!(stdout_of(&["--version"]), want);
}

/// Runs `mirrorconf ARGS` on a terminal (script(1) gives it one) and returns what it printed.
fn on_a_terminal(args: &str, no_color: Option<&str>) -> String {
    let bin = env!("CARGO_BIN_EXE_mirrorconf");
    let mut cmd = Command::new(require_tool("script"));
    cmd.args(["-q", "-e", "-c", &format!("{bin} {args}"), "/dev/null"]).env("RUST_LOG", "warn").env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    // An Image not named `cluster` is skipped with a logged warning: a log line to look at.
    fs::write(&m, "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: other}\nspec: {}\n").unwrap();
    let validate = format!("validate --manifests {}", m.display());
    let esc = '\u{1b}';
    for args in ["--help", validate.as_str()] {
        let coloured = on_a_terminal(args, None);
        assert!(coloured.contains(esc), "{args}: no colour on a terminal:\n{coloured}");
        for value in ["1", "true"] {
            let plain = on_a_terminal(args, Some(value));
            assert!(!plain.contains(esc), "{args} with NO_COLOR={value}: {plain:?}");
            assert!(plain.len() > 40, "{args}: {plain:?}");
        }
    }
    // Not a terminal: plain, NO_COLOR or not.
    let out = mirrorconf(&["validate", "--manifests", m.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(esc));
}
