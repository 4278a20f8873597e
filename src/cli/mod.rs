//! Command-line interface: argument types and the commands they run. `main.rs` only parses, sets up
//! logging and turns the result into an exit code.

mod check;
mod docs;
mod inspect;
mod push;
mod push_args;
mod status;

pub use check::CheckArgs;
pub use push_args::{PushArgs, SshArgs, WindowsPushArgs};

use crate::error::Error;
use crate::node;
use crate::render::Target;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for input that was refused (bad manifests, bad base file).
pub const EXIT_INVALID: u8 = 2;

/// `mirrorconf --version`: the crate version and the git revision it was built from (build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MIRRORCONF_GIT_REVISION"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "mirrorconf",
    version = VERSION,
    about = "Turns OpenShift image-mirror policy into the files container runtimes read",
    after_help = "Colour on a terminal only, and never when NO_COLOR is set."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr (set the level with RUST_LOG, e.g. RUST_LOG=mirrorconf=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing would only add noise
pub enum Command {
    /// Render the node files for the given manifests under a root folder, as if it were `/`.
    Render(RenderArgs),
    /// Check manifests without writing anything (exit 0 when valid, 2 when not).
    Validate(ValidateArgs),
    /// The node agent: watch a manifests folder (or the cluster with --kube) and keep the files true.
    Run(RunArgs),
    /// Render the Windows tree and bring every host of a BYOH inventory up to date over SSH (SFTP).
    Push(PushArgs),
    /// Print, in order, every endpoint the runtime tries for an image reference, and why.
    Resolve(ResolveArgs),
    /// Show what `render` would change under a root, and what the MCO would have done for it.
    Diff(DiffArgs),
    /// Where the current policy has landed: every node current, pending, refused or not reporting
    /// (exit 0 only when all are current); --wait until it has landed everywhere.
    Status(StatusArgs),
    /// Print shell completions, e.g. `mirrorconf completions bash > /etc/bash_completion.d/mirrorconf`.
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per command into a folder.
    Man(ManArgs),
    /// Probe every endpoint the runtime may use (DNS, TCP, TLS, registry API, credentials) and say
    /// which are not usable and why (exit 1 when a pull would miss one).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Read the cluster through the Kubernetes API (in-cluster config or KUBECONFIG).
    #[arg(long, required = true)]
    pub kube: bool,
    /// Only the Nodes matching this label selector (e.g. node-role.kubernetes.io/worker).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// List current nodes too (the text output lists only the others).
    #[arg(long)]
    pub all: bool,
    /// Return as soon as every node is current (exit 0), or at --timeout, or once a node has been
    /// refusing the input for 5 s (exit 1, naming the nodes).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = status::duration, requires = "wait")]
    pub timeout: std::time::Duration,
    /// Namespace of the Windows pusher's host reports (its Lease namespace): Windows hosts that
    /// are no Nodes (BYOH), and why a Windows host is behind. "" reads none.
    #[arg(long, value_name = "NS", default_value = "mirrorconf")]
    pub windows_namespace: String,
    /// The Windows pusher's --lease-name: only ConfigMaps named NAME-hosts-<shard> are its reports.
    #[arg(long, value_name = "NAME", default_value = "mirrorconf-windows-push")]
    pub windows_lease: String,
    /// The Windows pusher's --shards: a report of another shard count is not read.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub windows_shards: u16,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write mirrorconf.1 and mirrorconf-<command>.1 here (e.g. /usr/local/share/man/man1)
    /// instead of printing mirrorconf.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The image reference, e.g. quay.io/team/app@sha256:... or busybox:1.36.
    #[arg(value_name = "IMAGE-REF")]
    pub reference: String,
    #[command(flatten)]
    pub manifests: Manifests,
    /// Which runtime's rules: linux (containers/image, registries.conf), windows or containerd
    /// (containerd, hosts.toml).
    #[arg(long, value_enum, default_value_t = Target::Linux)]
    pub target: Target,
    /// The node's registries.conf to render over (default: an empty base).
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The same inputs as `render`; nothing under the root is written.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub render: RenderArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Exit 1 when there are changes (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
}

/// `--manifests`, the same for every one-shot command.
#[derive(Debug, Args)]
pub struct Manifests {
    /// A manifest file or folder (recursively *.yaml, *.yml, *.json). Repeatable.
    #[arg(long = "manifests", value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub manifests: Manifests,
    /// The node's filesystem root (use / on a node). Links under it resolve inside it, as for a
    /// process whose / is the root (Linux 5.6 or later).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// The node's original registries.conf. Default: the copy adopted earlier under
    /// ROOT/var/lib/mirrorconf/base/, else ROOT/etc/containers/registries.conf (adopted now), else empty.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Which node files to render. Repeatable.
    #[arg(long = "target", value_enum, default_values_t = [Target::Linux])]
    pub targets: Vec<Target>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub manifests: Manifests,
    /// An image every node needs (`host/repository`): warn when allowedRegistries or
    /// blockedRegistries would refuse it. Repeatable. Default: the pause image and, when set,
    /// $MIRRORCONF_IMAGE (mirrorconf's own image).
    #[arg(long = "must-allow", value_name = "IMAGE")]
    pub must_allow: Vec<String>,
    /// text: one line per problem on stderr. json: on stdout, an array with one record per
    /// problem, {file, line, object, field, value, message, fix} (null when unknown, file null for
    /// objects from a cluster); [] when the input is valid. The exit code is the same (2: refused).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl ValidateArgs {
    /// `--must-allow`, or the defaults, as `host/repository` names.
    fn must_allow(&self) -> Result<Vec<String>, Error> {
        let mut images = self.must_allow.clone();
        if images.is_empty() {
            images.extend(crate::render::policy_json::DEFAULT_MUST_ALLOW.iter().map(|s| s.to_string()));
            images.extend(std::env::var("MIRRORCONF_IMAGE").ok().filter(|i| !i.is_empty()));
        }
        images
            .iter()
            .map(|i| {
                let r = crate::inspect::reference::ImageRef::parse(i)
                    .map_err(|e| Error::Usage(format!("--must-allow: {e}")))?;
                Ok(format!("{}/{}", r.registry, r.repository))
            })
            .collect()
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A manifest file or folder to watch. Repeatable. Exclusive with --kube.
    #[arg(long = "manifests", value_name = "PATH", required_unless_present = "kube", conflicts_with = "kube")]
    pub manifests: Vec<PathBuf>,
    /// Watch the cluster through the Kubernetes API (in-cluster config or KUBECONFIG).
    #[arg(long)]
    pub kube: bool,
    /// The node's filesystem root to write under (/ on a node, /host in the DaemonSet). Links
    /// under it resolve inside it, so the host's absolute links mean the host's files.
    #[arg(long, value_name = "DIR", required_unless_present = "windows_push", conflicts_with = "windows_push")]
    pub root: Option<PathBuf>,
    /// The node's original registries.conf (see `render --help`); it is watched too.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Which node files to render. Repeatable.
    #[arg(long = "target", value_enum, default_values_t = [Target::Linux])]
    pub targets: Vec<Target>,
    /// Send SIGHUP to CRI-O after registries.conf changes (needs the host's PID namespace).
    #[arg(long)]
    pub reload_crio: bool,
    /// Where to find CRI-O's process for --reload-crio.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// CRI-O's pidfile, if your init system writes one (CRI-O itself does not); without it, or when
    /// it names no running crio, --reload-crio signals the crio process whose parent is not crio.
    #[arg(long, value_name = "FILE")]
    pub crio_pidfile: Option<PathBuf>,
    /// Command to run after any file changed; split on whitespace and run without a shell.
    #[arg(long, value_name = "CMD")]
    pub on_change: Option<String>,
    /// Kill --on-change (and every process it started) when it runs longer than this.
    #[arg(long, value_name = "SECS", default_value_t = crate::agent::reload::DEFAULT_HOOK_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub hook_timeout: u64,
    /// Serve /healthz, /readyz and /metrics on this address (e.g. 0.0.0.0:9153).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Quiet time after the last change before rendering, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub debounce_ms: u64,
    /// With --kube: the taint key nodes carry until their registry files are in place; the agent
    /// removes it from its own Node ($NODE_NAME) after the first complete apply, the Windows pusher
    /// from each Windows Node once its host holds the files. "" leaves taints alone.
    #[arg(long, value_name = "KEY", default_value = crate::source::node::DEFAULT_PENDING_TAINT, value_parser = taint_key)]
    pub pending_taint: String,
    /// Probe every endpoint the node's files name (as `check --root`) once per this many seconds,
    /// spread over the interval: `mirrorconf_endpoint_up` on /metrics, and with --kube a Node
    /// Event when one turns unusable or recovers.
    #[arg(long, value_name = "SECS", conflicts_with = "windows_push", value_parser = clap::value_parser!(u64).range(10..=86400))]
    pub probe_interval: Option<u64>,
    #[command(flatten)]
    pub windows_push: WindowsPushArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

impl RunArgs {
    /// What `run` is to do; flags that cannot be used are refused here (exit 2).
    pub fn config(&self) -> Result<crate::run::Config, Error> {
        use crate::run::{Config, Job, WindowsPush};
        use std::time::Duration;
        let job = if self.windows_push.enabled {
            let wp = &self.windows_push;
            Job::WindowsPush(WindowsPush {
                options: self.ssh.options()?,
                inventory_namespace: wp.inventory_namespace.clone(),
                windows_user: wp.windows_user.clone(),
                resync: Duration::from_secs(wp.resync_interval),
                lease_namespace: wp.lease_namespace.clone(),
                lease_name: wp.lease_name.clone(),
                shards: usize::from(wp.shards),
                lease_duration: Duration::from_secs(wp.lease_duration),
            })
        } else {
            Job::Node {
                root: self.root.clone().ok_or_else(|| Error::Usage("--root is required".into()))?,
                base: self.base.clone(),
                targets: Target::set(&self.targets),
                reload: crate::agent::reload::Reload {
                    crio: self.reload_crio,
                    proc_root: self.proc_root.clone(),
                    crio_pidfile: self.crio_pidfile.clone(),
                    on_change: self
                        .on_change
                        .as_deref()
                        .map(|c| c.split_whitespace().map(String::from).collect())
                        .unwrap_or_default(),
                    timeout: Duration::from_secs(self.hook_timeout),
                },
            }
        };
        Ok(Config {
            manifests: self.manifests.clone(),
            kube: self.kube,
            listen: self.listen,
            debounce: Duration::from_millis(self.debounce_ms),
            pending_taint: Some(self.pending_taint.clone()).filter(|k| !k.is_empty()),
            job,
            probe_interval: self.probe_interval.map(Duration::from_secs),
        })
    }
}

/// A taint key as the API server takes it: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 letters, digits, `-`, `_` and `.`, starting and ending alphanumeric. Empty: none.
fn taint_key(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Ok(String::new());
    }
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    if name_ok && prefix_ok {
        Ok(key.to_string())
    } else {
        Err(format!("{key:?} is not a taint key (an optional DNS-subdomain prefix and '/', then a name of at most 63 letters, digits, '-', '_' and '.')"))
    }
}

/// Runs a parsed command. User-facing results go to stdout; errors are returned for `main` to print.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Render(args) => {
            let targets = Target::set(&args.targets);
            let node::Rendered { policy, report, .. } =
                node::render_to_root(&args.manifests.paths, &args.root, args.base.as_deref(), &targets)?;
            if targets.iter().any(|t| *t != Target::Linux) {
                print_hosts_warnings(&policy);
            }
            for p in &report.written {
                println!("wrote     {}", args.root.join(p).display());
            }
            for p in &report.unchanged {
                println!("unchanged {}", args.root.join(p).display());
            }
            for p in &report.removed {
                println!("removed   {}", args.root.join(p).display());
            }
            for p in &report.kept_foreign {
                eprintln!(
                    "warning: kept {}: mirrorconf did not write it, so it does not replace it (move it away to let mirrorconf manage it)",
                    args.root.join(p).display()
                );
            }
            print_policy_warnings(&policy);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => crate::run::run(args.config()?).map(|()| ExitCode::SUCCESS),
        Command::Push(args) => push::push(&args),
        Command::Resolve(args) => inspect::resolve(&args),
        Command::Diff(args) => inspect::diff(&args),
        Command::Status(args) => status::status(&args),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Check(args) => check::check(&args),
        Command::Validate(args) => {
            let json = args.output == OutputFormat::Json;
            let (inputs, policy) = match node::load_policy(&args.manifests.paths) {
                Ok(loaded) => loaded,
                Err(e) if json && e.is_invalid_input() => {
                    print_json(&e.diagnostics())?;
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
                Err(e) => return Err(e),
            };
            if json {
                print_json(&Vec::<crate::model::Diagnostic>::new())?;
            } else {
                println!(
                "valid: {} ImageDigestMirrorSet, {} ImageTagMirrorSet, {} ImageContentSourcePolicy; {} digest and {} tag mirror sources",
                inputs.digest_sets.len(),
                inputs.tag_sets.len(),
                inputs.content_source_policies.len(),
                    policy.digest_sets.len(),
                    policy.tag_sets.len()
                );
            }
            print_policy_warnings(&policy);
            print_hosts_warnings(&policy);
            for w in crate::render::policy_json::warnings(&policy, &args.must_allow()?) {
                eprintln!("warning (allowed and blocked registries): {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `validate --output json`'s array, pretty-printed on stdout.
fn print_json(diagnostics: &[crate::model::Diagnostic]) -> Result<(), Error> {
    let text =
        serde_json::to_string_pretty(diagnostics).map_err(|e| Error::Runtime(format!("cannot print JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

pub(crate) fn print_policy_warnings(policy: &crate::policy::Policy) {
    for w in &policy.warnings {
        eprintln!("warning: {w}");
    }
}

/// What containerd (Linux containerd and Windows nodes) cannot express; a warning, not a failure.
pub(crate) fn print_hosts_warnings(policy: &crate::policy::Policy) {
    for w in crate::render::hosts_toml::warnings(policy) {
        eprintln!("warning (containerd and Windows nodes): {w}");
    }
}

/// The exit code and stderr lines for an error.
pub fn report_error(e: &Error) -> ExitCode {
    let prefix = if e.is_invalid_input() { "invalid" } else { "error" };
    for line in e.to_string().lines() {
        eprintln!("{prefix}: {line}");
    }
    if e.is_invalid_input() {
        eprintln!("nothing was written");
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::FAILURE
    }
}
