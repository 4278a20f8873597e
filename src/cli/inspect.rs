//! `mirrorconf resolve` and `mirrorconf diff`.

use super::{node, DiffArgs, OutputFormat, ResolveArgs};
use crate::error::Error;
use crate::inspect::{containerd, linux, reference::ImageRef};
use crate::render::{hosts_toml::Layout, registries_conf, Target};
use std::process::ExitCode;

pub(super) fn resolve(args: &ResolveArgs) -> Result<ExitCode, Error> {
    let reference = ImageRef::parse(&args.reference).map_err(|e| Error::Usage(e.to_string()))?;
    let (inputs, policy) = node::load_policy(&args.manifests.paths)?;
    let base = args.base.as_deref().map(node::read_base).transpose()?;
    let files = node::render_files(&inputs, &policy, base.as_ref(), &[args.target])?;
    let resolution = match args.target {
        Target::Linux => {
            let conf = files
                .get(registries_conf::PATH)
                .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
                .unwrap_or_default();
            let cas = |host: &str| {
                let dir = format!("{}/{host}/", crate::render::certs::DOCKER_CERTS_D);
                files.iter().find(|(p, _)| p.starts_with(&dir)).map(|(p, _)| format!("/{p}"))
            };
            linux::resolve(&reference, &conf, &cas).map(|mut r| {
                let policy_json = files.get(crate::render::policy_json::PATH);
                let name = format!("{}/{}", reference.registry, reference.repository);
                let decision = policy_json
                    .and_then(|f| crate::render::policy_json::decide(&String::from_utf8_lossy(&f.contents), &name));
                if let Some((scope, false)) = decision {
                    r.refused = Some(format!(
                        "the signature policy (/etc/containers/policy.json) rejects {name}: {scope} says reject (allowed or blocked registries)"
                    ));
                }
                r
            })
        }
        Target::Windows | Target::Containerd => {
            let layout = if args.target == Target::Windows { Layout::Windows } else { Layout::Linux };
            containerd::resolve(&reference, &files.subtree(layout.root()), layout)
        }
    }
    .map_err(Error::Usage)?;
    let target = match args.target {
        Target::Linux => "linux: containers/image, /etc/containers/registries.conf",
        Target::Windows => "windows: containerd, C:\\k\\containerd\\registries",
        Target::Containerd => "containerd: /etc/containerd/certs.d",
    };
    match args.output {
        OutputFormat::Text => print!("{}", resolution.text(target)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&resolution).expect("serialisable")),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn diff(args: &DiffArgs) -> Result<ExitCode, Error> {
    let r = &args.render;
    let targets = Target::set(&r.targets);
    let report = node::preview(&r.manifests.paths, &r.root, r.base.as_deref(), &targets)?;
    match args.output {
        OutputFormat::Text => print!("{}", report.text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report).expect("serialisable")),
    }
    Ok(if args.exit_code && !report.files.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
