//! `mirrorconf push`: render the Windows tree and bring every inventory host up to date.

use super::{node, print_hosts_warnings, print_policy_warnings, PushArgs, Target};
use crate::error::Error;
use std::process::ExitCode;

pub(super) fn push(args: &PushArgs) -> Result<ExitCode, Error> {
    use crate::push::{self, inventory};
    let opts = args.ssh.options()?;
    let (inputs, policy) = node::load_policy(&args.manifests.paths)?;
    let wanted = push::windows_tree(&node::render_files(&inputs, &policy, None, &[Target::Windows])?);
    print_policy_warnings(&policy);
    print_hosts_warnings(&policy);
    let (hosts, skipped) = inventory::load(&args.inventory)?;
    for e in &skipped {
        eprintln!("error: inventory: {e}; this entry is skipped");
    }
    let bar = indicatif::ProgressBar::new(hosts.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} hosts  {elapsed}").expect("a valid template"),
    );
    let jobs: Vec<push::Job> = hosts.iter().map(|h| push::Job { host: h.clone(), verify: false }).collect();
    let outcomes = push::push_all(&jobs, &wanted, &opts, &|_| Some(push::Pass::unguarded()), &|o| {
        bar.suspend(|| println!("{}", o.line()));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let count = |f: fn(&push::HostStatus) -> bool| outcomes.iter().filter(|o| f(&o.status)).count();
    let failed = count(|s| matches!(s, push::HostStatus::Failed { .. }));
    println!(
        "{} host(s): {} current, {} updated, {} failed; {} inventory entr(y/ies) skipped",
        outcomes.len(),
        count(|s| matches!(s, push::HostStatus::Current)),
        count(|s| matches!(s, push::HostStatus::Updated(_))),
        failed,
        skipped.len()
    );
    Ok(if failed == 0 && skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
