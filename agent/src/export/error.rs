//! Errors of `export`, `diff`, `merge` and `apply`.
use std::path::PathBuf;

use crate::error::exit;

/// Everything exporting, comparing, merging or applying profiles can fail
/// with. Every message is one line that says what was attempted on what, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "cannot name a profile file after {what} {name:?}: {reason}; profile paths are made of Kubernetes names only"
    )]
    Name {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error(
        "cannot name a directory {component:?}: longer than 255 bytes (a file name's limit); shorten the workload's name"
    )]
    TooLong { component: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "{}: document {index} is a {kind}: expected ContainerProfile objects (a single one or a List, as `kubectl get -o yaml` writes them) or ContainerRecording documents of an agent's state directory",
        path.display()
    )]
    Document {
        path: PathBuf,
        index: usize,
        kind: String,
    },
    #[error(
        "cannot export the profile of {namespace}/{workload} container {container}: {reason}; fix or delete that ContainerProfile; nothing was written"
    )]
    Unusable {
        namespace: String,
        workload: String,
        container: String,
        reason: String,
    },
    #[error("no profiles to export ({scope}): nothing was written")]
    Nothing { scope: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} exists and was not written by syscensus export: move it away, or export to another directory",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error(
        "{}: line {line} is not a path inside the export directory: fix or remove the file",
        path.display()
    )]
    Manifest { path: PathBuf, line: usize },
    #[error(
        "{} is not a syscensus export (it has no .syscensus-export file): export there first",
        dir.display()
    )]
    NotAnExport { dir: PathBuf },
    #[error("cannot connect to the Kubernetes API: {source}: check KUBECONFIG")]
    Connect {
        #[source]
        source: Box<kube::Error>,
    },
    #[error("failed to {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("failed to start the async runtime: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not inside a git work tree: run `git init` there, or drop --git",
        dir.display()
    )]
    NotARepository { dir: PathBuf },
    #[error("failed to {what}: {source}")]
    Git {
        what: String,
        #[source]
        source: Box<git2::Error>,
    },
    #[error(
        "{remote} rejected the push of {branch} ({reason}): pull its changes, then export again"
    )]
    Rejected {
        remote: String,
        branch: String,
        reason: String,
    },
    #[error("{message}")]
    Usage { message: String },
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error("cannot merge {} and {}: {mismatch}; merge profiles that agree on it", a.display(), b.display())]
    Mismatch {
        a: PathBuf,
        b: PathBuf,
        mismatch: crate::profile::Mismatch,
    },
    #[error(
        "refusing to apply, nothing was patched: {}{}; wait until the agents have installed the approved profiles (kubectl get cprof -o wide), or pass --force-uninstalled",
        problems.first().map_or("", String::as_str),
        more(problems.len())
    )]
    NotInstalled { problems: Vec<String> },
    #[error(
        "refusing to apply, nothing was patched: {}{}",
        problems.first().map_or("", String::as_str),
        more(problems.len())
    )]
    Workloads { problems: Vec<String> },
}

fn more(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        n => format!(" (and {} more problems)", n - 1),
    }
}

impl ExportError {
    /// The exit status for this error.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Name { .. }
            | Self::TooLong { .. }
            | Self::Parse { .. }
            | Self::Document { .. }
            | Self::Manifest { .. }
            | Self::Mismatch { .. }
            | Self::Unusable { .. } => exit::DATA,
            Self::Read { .. } | Self::Nothing { .. } | Self::NotAnExport { .. } => exit::NO_INPUT,
            Self::Write { .. }
            | Self::Foreign { .. }
            | Self::Git { .. }
            | Self::Rejected { .. } => exit::CANT_CREATE,
            Self::Connect { .. } | Self::Kube { .. } | Self::Workloads { .. } => exit::UNAVAILABLE,
            Self::Runtime { .. } => exit::SOFTWARE,
            Self::NotARepository { .. } | Self::Usage { .. } => exit::USAGE,
            Self::NotInstalled { .. } => exit::TEMP_FAIL,
            Self::Profile(e) => e.exit_status(),
        }
    }

    pub(crate) fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.to_path_buf();
        move |source| ExportError::Read { path, source }
    }

    pub(crate) fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.to_path_buf();
        move |source| ExportError::Write { path, source }
    }

    pub(crate) fn git(what: impl Into<String>) -> impl FnOnce(git2::Error) -> ExportError {
        let what = what.into();
        move |source| ExportError::Git {
            what,
            source: Box::new(source),
        }
    }

    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ExportError {
        let what = what.into();
        move |source| ExportError::Kube {
            what,
            source: Box::new(source),
        }
    }
}
