//! `mirrorconf completions` and `mirrorconf man`: shell completions and man pages, generated from
//! the same argument types the commands parse, so they never drift from the real flags.

use super::{Cli, CompletionsArgs, ManArgs};
use crate::error::Error;
use clap::CommandFactory;
use std::io::Write;
use std::process::ExitCode;

pub(super) fn completions(args: &CompletionsArgs) -> Result<ExitCode, Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "mirrorconf", &mut out);
    write_stdout(&out)
}

pub(super) fn man(args: &ManArgs) -> Result<ExitCode, Error> {
    let io = |e: std::io::Error| Error::Runtime(format!("cannot write the man pages: {e}"));
    match &args.out_dir {
        // One page per command: mirrorconf.1 and mirrorconf-<command>.1.
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io)?;
            clap_mangen::generate_to(Cli::command(), dir).map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            // Built as generate_to builds it, so both ways give the same mirrorconf.1.
            let mut cmd = Cli::command().disable_help_subcommand(true);
            cmd.build();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out).map_err(io)?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<ExitCode, Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(|e| Error::Runtime(format!("stdout: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
