//! Supervised tasks. Every long-lived task of the agent and the pusher (watchers, the reporter of
//! Events, the HTTP server) is spawned here under a name. None of them is meant to end before
//! shutdown, so one that ends or panics is a failure: [`Tasks`] reports it, and `run` stops the
//! process with exit code 1 so the kubelet (or systemd) restarts it, instead of an agent that looks
//! alive while its cluster watch or its Event reporter is dead.

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A task that ended, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub name: String,
    /// The panic message, when it panicked.
    pub panic: Option<String>,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.panic {
            Some(p) => write!(f, "task {:?} panicked: {p}", self.name),
            None => write!(f, "task {:?} ended unexpectedly", self.name),
        }
    }
}

/// Spawns supervised tasks; cheap to clone.
#[derive(Clone)]
pub struct Tasks {
    ended: mpsc::UnboundedSender<Ended>,
}

impl Tasks {
    /// The spawner, and the receiver that hears of every task that ends.
    pub fn new() -> (Tasks, mpsc::UnboundedReceiver<Ended>) {
        let (ended, rx) = mpsc::unbounded_channel();
        (Tasks { ended }, rx)
    }

    pub fn spawn<F>(&self, name: &str, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let ended = self.ended.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let panic = AssertUnwindSafe(task).catch_unwind().await.err().map(|p| panic_message(p.as_ref()));
            let _ = ended.send(Ended { name, panic });
        })
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Sleeps until `at`, or forever when there is no deadline: the retry arm of a task's `select!`
/// loop, where no retry is owed most of the time.
pub async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_ends_is_reported_by_name() {
        let (tasks, mut ended) = Tasks::new();
        tasks.spawn("reporter", async {
            // What the Event reporter once did: String::truncate inside a character panics.
            let mut note = "é".repeat(600);
            note.truncate(999);
        });
        let e = ended.recv().await.unwrap();
        assert_eq!(e.name, "reporter");
        assert!(e.panic.as_deref().unwrap().contains("char_boundary"), "{e}");
        tasks.spawn("watcher", async {});
        assert_eq!(ended.recv().await.unwrap(), Ended { name: "watcher".into(), panic: None });
    }
}
