//! Errors of the export pipeline and of `apply`.
use std::path::PathBuf;

/// Everything exporting or applying profiles can fail
/// with. Every message is one line that says what was attempted on what, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Path(#[from] crate::localhost::PathError),
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
        "{}: document {index} is a {kind}: --with-denials takes ContainerRefusals reports (an agent's state directory, its refusals/, or `syscensus denials -o json`)",
        path.display()
    )]
    NotDenials {
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
    #[error(transparent)]
    Connect(#[from] crate::cluster::ConnectError),
    #[error("failed to {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
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
    #[error("no remote named {remote:?} in the repository: give --push a remote's name, or a path")]
    NoRemote { remote: String },
    #[error("HEAD is not on a branch: check out the branch to push, or give --branch")]
    DetachedHead,
    #[error("cannot commit on a branch named {name:?}: not a valid git branch name")]
    BranchName { name: String },
    #[error("failed to {what}: git: {message}")]
    GitCommand { what: String, message: String },
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error(
        "refusing to apply, nothing was patched: {}{}; wait until the agents have installed the profiles (kubectl get nodeprofilestatuses), or pass --force-uninstalled",
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
