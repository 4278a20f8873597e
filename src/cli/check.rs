//! `mirrorconf check`: probes every endpoint the runtime may use and says which are not usable and why.

use super::{node, OutputFormat};
use crate::error::Error;
use crate::inspect::reference::ImageRef;
use crate::model::pull_secret::PullSecret;
use crate::probe::{self, files::NodeFiles, plan::Auths, report::Report, tls::Roots};
use crate::render::Target;
use clap::{ArgGroup, Args};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("policy").required(true).args(["manifests", "kube", "root"])))]
pub struct CheckArgs {
    /// The policy from manifest files or folders (rendered in memory, nothing is written). Repeatable.
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
    /// The policy from the cluster (in-cluster config or KUBECONFIG).
    #[arg(long)]
    pub kube: bool,
    /// The files a node holds under this root (/ on the node): exactly what its runtime reads.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Which runtime's files and rules: linux (registries.conf, certs.d), containerd or windows
    /// (hosts.toml trees).
    #[arg(long, value_enum, default_value_t = Target::Linux)]
    pub target: Target,
    /// The node's registries.conf to render over, with --manifests or --kube (default: empty).
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub base: Option<PathBuf>,
    /// Also ask every endpoint for this image's manifest, say which endpoint would serve the pull,
    /// and warn when endpoints disagree on its digest.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// A docker config.json with the credentials to use. Default: the pull secret among the
    /// inputs; with --root, ROOT/var/lib/kubelet/config.json (Linux) or the hosts.toml headers.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Give up on one endpoint after this many seconds (all are probed at once).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The largest --authfile read.
const MAX_AUTH_FILE_BYTES: u64 = 1 << 20;

/// Reads the file `--authfile` names: the admin's own path, not one under a root.
fn read_auth_file(path: &Path, shown: &str) -> Result<Option<PullSecret>, Error> {
    use crate::model::LimitedRead;
    let text = match crate::model::read_text_limited(path, MAX_AUTH_FILE_BYTES) {
        Ok(text) => text,
        Err(LimitedRead::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(LimitedRead::Io(e)) => return Err(Error::Usage(format!("cannot read {shown}: {e}"))),
        Err(LimitedRead::TooBig { .. }) => return Err(Error::Usage(format!("{shown}: over 1 MiB; refused"))),
        Err(LimitedRead::NotUtf8 { offset }) => {
            return Err(Error::Usage(format!("{shown}: not UTF-8 text (invalid byte at offset {offset})")))
        }
    };
    PullSecret::from_json(text.as_bytes()).map(Some).map_err(|e| Error::Usage(format!("{shown}: {}", e.message)))
}

/// The files to probe and the credentials to probe with, from wherever the policy comes from.
fn gather(args: &CheckArgs, runtime: &tokio::runtime::Runtime) -> Result<(NodeFiles, Auths), Error> {
    let explicit = match &args.authfile {
        Some(path) => Some((
            read_auth_file(path, &path.display().to_string())?
                .ok_or_else(|| Error::Usage(format!("--authfile {}: no such file", path.display())))?,
            path.display().to_string(),
        )),
        None => None,
    };
    if let Some(root) = &args.root {
        let files = NodeFiles::Root(crate::sink::root::Root::new(root));
        let auths = match explicit {
            Some((secret, from)) => Auths { secret: Some(secret), from },
            None => Auths::of_node(&files, args.target).map_err(Error::Usage)?,
        };
        return Ok((files, auths));
    }
    let inputs = if args.kube {
        runtime.block_on(cluster_inputs())?
    } else {
        crate::model::load_paths(&args.manifests).map_err(Error::Load)?
    };
    let policy = crate::policy::Policy::from_inputs(&inputs)?;
    let base = args.base.as_deref().map(node::read_base).transpose()?;
    let files = node::render_files(&inputs, &policy, base.as_ref(), &[args.target])?;
    let auths = match explicit {
        Some((secret, from)) => Auths { secret: Some(secret), from },
        None => Auths {
            secret: PullSecret::from_inputs(&inputs).map_err(|e| Error::Usage(e.to_string()))?,
            from: "the pull secret (openshift-config/pull-secret)".into(),
        },
    };
    Ok((NodeFiles::Rendered(files), auths))
}

/// The cluster's current objects, read once through the same watches the agent uses.
async fn cluster_inputs() -> Result<crate::model::Inputs, Error> {
    use crate::source::kube::{Cluster, Watching};
    let (tasks, _ended) = crate::tasks::Tasks::new();
    let (triggers, _rx) = tokio::sync::mpsc::channel(1);
    let watching = Watching { tasks, triggers, metrics: std::sync::Arc::new(crate::agent::metrics::Metrics::new()) };
    let cluster = Cluster::start(&watching, true).await?;
    tokio::time::timeout(Duration::from_secs(60), cluster.wait_until_synced())
        .await
        .map_err(|_| Error::Runtime("the cluster's objects could not be listed within 60 s".into()))?;
    Ok(cluster.snapshot())
}

pub(super) fn check(args: &CheckArgs) -> Result<ExitCode, Error> {
    let image = args.image.as_deref().map(ImageRef::parse).transpose().map_err(|e| Error::Usage(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    let (files, auths) = gather(args, &runtime)?;
    let plan = probe::plan::plan(&files, args.target, image.as_ref(), &auths).map_err(Error::Usage)?;
    let roots = Roots::system();
    let outcomes = runtime.block_on(probe::probe_all(&plan, &roots, Duration::from_secs(args.timeout)));
    let target = match args.target {
        Target::Linux => "linux",
        Target::Containerd => "containerd",
        Target::Windows => "windows",
    };
    let report = Report::new(target, image.map(|r| r.to_string()), plan, outcomes);
    match args.output {
        OutputFormat::Text => print!("{}", report.text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report).expect("serialisable")),
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
