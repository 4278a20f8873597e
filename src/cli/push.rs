//! `mirrorconf push`: render the Windows tree and bring every inventory host up to date, contacting
//! only the hosts the local record cannot vouch for.

use super::{node, print_hosts_warnings, print_policy_warnings, PushArgs, Target};
use crate::error::Error;
use crate::push::record::{self, file::RecordFile, Dest, Key, Verify};
use crate::sink::ssh::Pins;
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

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
    let tree = wanted.digest();
    let (port, root) = (opts.port, opts.remote_root.clone());
    let dest = Dest { port, root: &root };
    let record_path = args.record.clone().unwrap_or_else(record::file::default_path);
    let now = record::unix_now();
    let (file, mut rec, problems) = RecordFile::open(&record_path, now)?;
    for p in &problems {
        eprintln!("warning: {p}");
    }
    let pins = Pins::load(&opts.known_hosts);
    let verify = Verify { interval: opts.verify_interval, all: args.verify_all, window: Duration::ZERO };
    let plan = rec.plan(&hosts, dest, &tree, &pins, now, verify);
    // Before any host is touched: a push cut short must not leave an entry that calls it current.
    if rec.claim(&plan.jobs, dest, &tree, &pins) || !problems.is_empty() {
        file.save(&rec)?;
    }

    let bar = indicatif::ProgressBar::new(plan.jobs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} hosts  {elapsed}").expect("a valid template"),
    );
    let outcomes = push::push_all(&plan.jobs, &wanted, &opts, &|_| Some(push::Pass::unguarded()), &|o| {
        bar.suspend(|| println!("{}", o.line()));
        bar.inc(1);
    });
    bar.finish_and_clear();

    rec.update(&outcomes, dest, &tree, record::unix_now());
    let here: BTreeSet<Key> = hosts.iter().map(|h| Key::new(h, port, &root)).collect();
    rec.prune(&here, opts.verify_interval, now);
    file.save(&rec)?;

    let count = |f: fn(&push::HostStatus) -> bool| outcomes.iter().filter(|o| f(&o.status)).count();
    let failed = count(|s| matches!(s, push::HostStatus::Failed { .. }));
    let not_contacted = if plan.skipped == 0 {
        String::new()
    } else {
        format!(
            " ({} not contacted: {} vouches for them; --verify-all contacts every host)",
            plan.skipped,
            file.path().display()
        )
    };
    println!(
        "{} host(s): {} current, {} updated, {} failed{not_contacted}; {} inventory entr(y/ies) skipped",
        hosts.len(),
        count(|s| matches!(s, push::HostStatus::Current)) + plan.skipped,
        count(|s| matches!(s, push::HostStatus::Updated(_))),
        failed,
        skipped.len()
    );
    Ok(if failed == 0 && skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
