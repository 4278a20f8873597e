//! mirrorconf turns the cluster's image-mirror policy (ImageDigestMirrorSet, ImageTagMirrorSet,
//! ImageContentSourcePolicy, `Image/cluster`) into the files container runtimes read on each node.
//!
//! # Layout
//!
//! The core is pure: objects in, files out, no I/O. The edges read and write.
//!
//! - [`model`]: serde types of the Kubernetes objects (kube-rs resources) and the loader that reads
//!   them from files and folders (multi-document YAML, JSON, `List`).
//! - [`policy`]: validation (every error names object, field and value) and the merged policy;
//!   [`policy::merge`] is the topological mirror merge, [`policy::scope`] the scope patterns and
//!   nesting rule.
//! - [`render`]: pure renderers from policy to a [`fileset::FileSet`];
//!   [`render::registries_conf`] edits the node's own registries.conf with `toml_edit`.
//! - [`inspect`]: pure explainers for `resolve` (containers/image and containerd endpoint order)
//!   and `diff` (unified diff, the MCO's disruption classes).
//! - [`fileset`]: the set of files (relative path, bytes, mode) that every renderer returns and every
//!   sink applies.
//! - [`sink`]: applying a file set. [`sink::owned`] is the one owned-files protocol (untrusted
//!   state file, claim before write, sweep of a killed run's temp files, removal of only what is
//!   owned) that both sinks follow through its `Store` trait: [`sink::local`] under a root on this
//!   machine, [`sink::ssh`] on a remote host over SFTP (verified host key, temp file +
//!   posix-rename).
//! - [`push`]: `mirrorconf push`: the inventory ([`push::inventory`]) and the sequential or
//!   parallel round with retries.
//! - [`node`]: the edge used by the commands: read manifests and the base file, render, apply.
//! - [`source`]: where the agent's inputs come from: [`source::files`] watches folders with
//!   `notify`, [`source::kube`] runs kube-rs reflectors and reports back (Events, node annotation),
//!   [`source::windows_hosts`] finds Windows hosts, [`source::lease`] is Lease leader election.
//! - [`agent`]: the `run` loop (debounce, render, apply, reload hooks) with its metrics and the
//!   `/healthz` `/readyz` `/metrics` server; [`agent::windows_push`] is the in-cluster pusher.
//!   Shutdown is a future the caller passes in.
//! - [`run`]: the tokio runtime and signal handling around [`agent`] for the `run` command; it
//!   joins every task and ends the process with exit 1 when one of them dies.
//! - [`tasks`]: the supervisor every long-lived task is spawned through.
//! - [`text`]: small text helpers (cutting cluster text at a character boundary).
//! - [`cli`]: argument types and commands; `main.rs` is a thin wrapper.
//! - [`error`]: the library error type, which tells bad input (exit 2) from failures (exit 1).
//! - `fuzzing`: the bodies of the cargo-fuzz targets in `fuzz/`, replayed by the tests.
//!
//! The default `cli` feature holds everything around the pure core (commands, agent, cluster
//! source, SSH sink); `--no-default-features` builds the core alone, as the fuzz targets do.

#[cfg(feature = "cli")]
pub mod agent;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod fileset;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod model;
pub mod node;
pub mod policy;
#[cfg(feature = "cli")]
pub mod push;
pub mod render;
#[cfg(feature = "cli")]
pub mod run;
pub mod sink;
#[cfg(feature = "cli")]
pub mod source;
#[cfg(feature = "cli")]
pub mod tasks;
pub mod text;

pub use error::Error;
