//! One push round: `parallel` workers take hosts in inventory order. A failure that a retry can
//! fix puts the host back in the queue for later (after its backoff), so the worker goes on with
//! the next host: one failing host never holds up the others.

use super::{Host, HostOutcome, HostStatus, Job, PushOptions};
use crate::fileset::FileSet;
use crate::sink::ssh::{self, SshOptions};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Admission to start hosts, for whoever may have to stop a round (the pusher when it loses a
/// Lease): once closed, no host starts, and [`Gate::idle`] says when none is being written any more.
#[derive(Debug, Default)]
pub struct Gate {
    closed: AtomicBool,
    running: AtomicUsize,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// A pass to start one host, or `None` once the gate is closed.
    pub fn enter(self: &Arc<Self>) -> Option<Pass> {
        // Counted before the check: whoever closes and then sees no one running knows that no
        // one can get in any more.
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Pass(Some(Arc::clone(self))))
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }

    /// No host is being pushed through this gate.
    pub fn idle(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }
}

/// Held while one host is pushed.
pub struct Pass(Option<Arc<Gate>>);

impl Pass {
    /// For a round nobody stops (the `push` command).
    pub fn unguarded() -> Pass {
        Pass(None)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Decides whether a host may start now (checked before every attempt).
pub type Admit<'a> = &'a (dyn Fn(&Host) -> Option<Pass> + Sync);

struct Retry {
    index: usize,
    attempts: u32,
    delay: Duration,
    started: Instant,
    ready: Instant,
}

#[derive(Default)]
struct Queue {
    next: usize,
    retries: Vec<Retry>,
    busy: usize,
}

enum Work {
    Attempt { index: usize, attempts: u32, delay: Duration, started: Instant },
    Wait(Option<Instant>),
    Done,
}

impl Queue {
    /// A retry whose backoff is over first, then the next host in order.
    fn pick(&mut self, jobs: usize, retry_delay: Duration) -> Work {
        let now = Instant::now();
        if let Some(i) = self.retries.iter().position(|r| r.ready <= now) {
            let r = self.retries.swap_remove(i);
            self.busy += 1;
            return Work::Attempt { index: r.index, attempts: r.attempts, delay: r.delay, started: r.started };
        }
        if self.next < jobs {
            self.next += 1;
            self.busy += 1;
            return Work::Attempt { index: self.next - 1, attempts: 0, delay: retry_delay, started: now };
        }
        match self.retries.iter().map(|r| r.ready).min() {
            Some(t) => Work::Wait(Some(t)),
            // A busy worker may still put a host back.
            None if self.busy > 0 => Work::Wait(None),
            None => Work::Done,
        }
    }
}

/// See [`super::push_all`].
pub(super) fn run(
    jobs: &[Job],
    wanted: &FileSet,
    opts: &PushOptions,
    admit: Admit<'_>,
    on_done: &(dyn Fn(&HostOutcome) + Sync),
) -> Vec<HostOutcome> {
    let queue = Mutex::new(Queue::default());
    let wake = Condvar::new();
    let lock = || queue.lock().unwrap_or_else(|p| p.into_inner());
    let workers = opts.parallel.clamp(1, jobs.len().max(1));
    let mut outcomes: Vec<(usize, HostOutcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let work = lock().pick(jobs.len(), opts.retry_delay);
                        let (index, attempts, delay, started) = match work {
                            Work::Done => break,
                            Work::Wait(until) => {
                                let q = lock();
                                let wait = until.map_or(Duration::from_millis(200), |t| {
                                    t.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
                                });
                                drop(wake.wait_timeout(q, wait));
                                continue;
                            }
                            Work::Attempt { index, attempts, delay, started } => (index, attempts, delay, started),
                        };
                        let job = &jobs[index];
                        let result = attempt(job, wanted, opts, admit, attempts + 1, started);
                        let mut q = lock();
                        q.busy -= 1;
                        match result {
                            Ok(outcome) => {
                                drop(q);
                                on_done(&outcome);
                                done.push((index, outcome));
                            }
                            Err(attempts) => {
                                q.retries.push(Retry {
                                    index,
                                    attempts,
                                    delay: delay.saturating_mul(2),
                                    started,
                                    ready: Instant::now() + delay,
                                });
                                drop(q);
                            }
                        }
                        wake.notify_all();
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a push worker panicked")).collect()
    });
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// One attempt on one host: its final outcome, or `Err(attempts so far)` when it is to be retried.
fn attempt(
    job: &Job,
    wanted: &FileSet,
    opts: &PushOptions,
    admit: Admit<'_>,
    attempts: u32,
    started: Instant,
) -> Result<HostOutcome, u32> {
    let host = &job.host;
    let outcome = |status| HostOutcome {
        host: host.clone(),
        status,
        elapsed: started.elapsed(),
        verified: job.verify,
        host_key: None,
        timings: None,
    };
    let Some(pass) = admit(host) else { return Ok(outcome(HostStatus::NotStarted)) };
    let ssh_opts = SshOptions {
        port: opts.port,
        identity: &opts.identity,
        known_hosts: &opts.known_hosts,
        remote_root: &opts.remote_root,
        connect_timeout: opts.connect_timeout,
        op_timeout: opts.op_timeout,
        host_timeout: opts.host_timeout,
        take_over: opts.take_over,
    };
    let result = ssh::push(&host.address, &host.user, wanted, &ssh_opts, job.verify);
    drop(pass);
    match result {
        Ok(p) => {
            let status = if !p.report.changed() && p.report.kept_foreign.is_empty() {
                HostStatus::Current
            } else {
                HostStatus::Updated(p.report)
            };
            Ok(HostOutcome { host_key: Some(p.host_key), timings: Some(p.timings), ..outcome(status) })
        }
        Err(e) if e.is_permanent() || attempts > opts.retries => {
            tracing::warn!(host = %host, attempts, error = %e, "push failed");
            Ok(outcome(HostStatus::Failed { error: e.to_string(), attempts }))
        }
        Err(e) => {
            tracing::info!(host = %host, attempts, error = %e, "push failed, will retry");
            Err(attempts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(w: Work) -> Option<usize> {
        match w {
            Work::Attempt { index, .. } => Some(index),
            _ => None,
        }
    }

    #[test]
    fn hosts_come_in_order_and_a_retry_waits_its_backoff_without_holding_anyone_up() {
        let mut q = Queue::default();
        let d = Duration::from_secs(60);
        assert_eq!(index(q.pick(3, d)), Some(0));
        // Host 0 failed: back in the queue for a minute; the next hosts go first.
        q.busy -= 1;
        let now = Instant::now();
        q.retries.push(Retry { index: 0, attempts: 1, delay: d * 2, started: now, ready: now + d });
        assert_eq!(index(q.pick(3, d)), Some(1));
        assert_eq!(index(q.pick(3, d)), Some(2));
        assert!(matches!(q.pick(3, d), Work::Wait(Some(t)) if t == now + d));
        // Once its backoff is over, a retry comes before any new host.
        q.retries[0].ready = Instant::now();
        q.next = 1;
        assert_eq!(index(q.pick(3, d)), Some(0));
        q.busy = 0;
        q.next = 3;
        assert!(matches!(q.pick(3, d), Work::Done));
    }

    #[test]
    fn a_closed_gate_admits_no_one_and_says_when_the_last_one_left() {
        let gate = Gate::new();
        let pass = gate.enter().expect("open");
        gate.close();
        assert!(gate.enter().is_none());
        assert!(!gate.idle(), "a host is still being written");
        drop(pass);
        assert!(gate.idle());
    }
}
