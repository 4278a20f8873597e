//! The library's error type. Input problems (exit 2) are kept apart from failures of the machine
//! (exit 1), so callers can tell "fix your manifests" from "the disk is full".

use crate::model::{Diagnostic, LoadError};
use crate::policy::ValidationErrors;
use crate::render::RenderError;
use crate::sink::local::SinkError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", join_lines(.0))]
    Load(Vec<LoadError>),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("{}: {source}", .path.display())]
    Base { path: PathBuf, source: RenderError },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A flag names something that cannot be used (e.g. a missing --base file).
    #[error("{0}")]
    Usage(String),
    /// Not the input's fault: the machine or the cluster (a port that cannot be bound, an API
    /// server out of reach, a watch that cannot start, a task that died). Exit code 1.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// True when the input (manifests, base file, flags) is at fault rather than the machine.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::Load(_) | Error::Invalid(_) | Error::Base { .. } | Error::Render(_) | Error::Usage(_))
    }

    /// Each problem as one record (`validate --output json`); an error that is not about one
    /// object is one record with only its message (and its file when it has one).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Error::Load(errors) => errors.iter().map(LoadError::diagnostic).collect(),
            Error::Invalid(errors) => errors.0.iter().map(|e| e.diagnostic()).collect(),
            Error::Base { path, source } => {
                vec![Diagnostic { file: Some(path.clone()), message: source.to_string(), ..Default::default() }]
            }
            other => vec![Diagnostic { message: other.to_string(), ..Default::default() }],
        }
    }
}

fn join_lines(errors: &[LoadError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
