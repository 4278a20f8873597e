//! Where the objects come from while the agent runs: a folder of manifests watched with `notify`
//! ([`files`]), or the Kubernetes API through kube-rs watchers ([`kube`]). Both only say "something
//! changed"; the agent then reads the whole current state.

pub mod files;
pub mod kube;
pub mod lease;
pub mod node;
pub mod shards;
pub mod windows_hosts;
pub mod windows_report;
