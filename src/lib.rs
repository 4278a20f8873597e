//! mirrorconf turns the cluster's image-mirror policy (ImageDigestMirrorSet, ImageTagMirrorSet,
//! ImageContentSourcePolicy, `Image/cluster`) into the files container runtimes read on each node.
//!
//! # Layout
//!
//! Read it top-down: each module uses only modules listed after it (every edge points down; no
//! module imports one above it). docs/design.md explains the data flow and the rules.
//!
//! **The commands and the agent** (the edge that talks to people, clusters and hosts):
//! - [`cli`]: argument types and the one-shot commands; `main.rs` is a thin wrapper.
//! - [`run`]: `mirrorconf run`: builds the sources, the agent or the pusher from a [`run::Config`],
//!   handles signals, and supervises every task (one that dies ends the process with exit 1).
//! - [`source`]: where the agent's inputs come from: [`source::files`] watches folders with
//!   `notify`, [`source::kube`] runs kube-rs reflectors and reports back (Events, node annotation),
//!   [`source::windows_hosts`] finds Windows hosts, [`source::lease`] takes, renews and releases
//!   Leases, [`source::shards`] holds this replica's share of the pusher's shard Leases,
//!   [`source::node`] is what an agent writes on its own Node (fleet-view annotations, removing
//!   the registries-pending taint), [`source::windows_report`] what the pusher writes on Windows
//!   Nodes and in its per-shard host reports.
//! - [`agent`]: the `run` loop (debounce, render, apply, reload hooks with a timeout) with its
//!   metrics and the `/healthz` `/readyz` `/metrics` server; [`agent::windows_push`] is the
//!   in-cluster pusher; [`agent::probes`] probes the node's endpoints every `--probe-interval`.
//!   Shutdown is a future the caller passes in; `READY=1` to systemd after the first complete apply.
//! - [`push`]: `mirrorconf push` and the pusher's rounds: the inventory ([`push::inventory`]), the
//!   bounded-parallel round with deferred retries and a gate that stops starting hosts when
//!   closed, the record of what each host was last confirmed to hold ([`push::record`], kept in a
//!   file by the command and in memory by the pusher), the pure host-to-shard split
//!   ([`push::shard`]) and where each host stands for `status` ([`push::report`]).
//! - [`tasks`]: the supervisor every long-lived task is spawned through.
//! - [`probe`]: `check` and the agent's endpoint probes: for every endpoint the inspect explainers
//!   list (in their order), name resolution, TCP, TLS with the CA files the runtime reads, the
//!   registry API and authentication, with hyper and rustls; [`probe::files`] reads a node's files
//!   (rendered, or under a root) for it.
//!
//! **The node edge** (reads and writes a node's disk):
//! - [`node`]: read manifests and the node's own files (registries.conf, policy.json) as bases,
//!   validate, render, apply.
//! - [`error`]: the error type of the node edge and everything above it, which gathers the core's
//!   errors and tells bad input (exit 2) from failures (exit 1).
//! - [`sink`]: applying a file set. [`sink::owned`] is the one owned-files protocol (untrusted
//!   state file, claim before write, sweep of a killed run's temp files, removal of only what is
//!   owned) that both sinks follow through its `Store` trait: [`sink::local`] under a root on this
//!   machine, [`sink::ssh`] on a remote host over SFTP (verified host key, temp file +
//!   posix-rename).
//!
//! **The pure core** (objects in, files and explanations out; its only I/O is reading manifest files,
//! in one file of [`model`] named below):
//! - [`inspect`]: explainers for `resolve` (containers/image and containerd endpoint order, what
//!   the allowed/blocked rules refuse), `diff` (unified diff, the MCO's disruption classes) and
//!   `status` ([`inspect::fleet`]: each Node current, pending, refused or not reporting).
//! - [`render`]: renderers from policy to a [`fileset::FileSet`]: [`render::registries_conf`]
//!   edits the node's own registries.conf with `toml_edit`, [`render::policy_json`] its
//!   policy.json, [`render::hosts_toml`] the containerd trees from `templates/`, [`render::certs`]
//!   the CA files.
//! - [`policy`]: validation (every error names object, field and value) and the merged policy;
//!   [`policy::merge`] is the topological mirror merge, [`policy::scope`] the scope patterns and
//!   nesting rule, [`policy::fingerprint`] the digest of a policy that nodes compare across the fleet.
//! - [`model`]: serde types of the Kubernetes objects (kube-rs resources) and the loader:
//!   [`model::load_text`] is pure; [`model::load_paths`] adds the one part of the core that reads
//!   files (`model/load/files.rs`: which files a `--manifests` argument names, each read as bounded
//!   text), and is what the commands and the folder source call; both log the objects they skip
//!   (other kinds, an `Image` not named `cluster`).
//! - [`fileset`]: the set of files (relative path, bytes, mode) that every renderer returns and every
//!   sink applies, its digest, the checks that keep its paths inside a root, and [`fileset::Change`]
//!   (one file a sink would change, which `diff` explains).
//! - [`text`]: small text helpers (hex, SHA-256 hex, cutting cluster text at a character boundary).
//! - `fuzzing`: the bodies of the cargo-fuzz targets in `fuzz/`, replayed by the tests.
//!
//! The default `cli` feature holds the commands, the agent, the cluster source and the SSH sink;
//! `--no-default-features` builds the core and the local node edge alone, as the fuzz targets do.

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
pub mod probe;
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
