//! The commands, one module each: its options (clap; the doc comments are
//! the help), its error, and the calls into the daemon, the export
//! pipeline and the domain below. Nothing here maps an error to an exit
//! status: the CLI does (`cli::exit`).
use std::{
    future::Future,
    io::{self, Write as _},
    path::PathBuf,
};

use clap::{Args, ValueEnum};

use crate::cluster::Connection;

pub mod agent;
pub mod apply;
pub mod approve;
pub mod denials;
pub mod diff;
pub mod export;
pub mod install_agent_profile;
pub mod merge;
pub mod record;
pub mod run;
pub mod snapshot;
pub mod uninstall;

/// The command needs root.
#[derive(Debug, thiserror::Error)]
#[error("{what} needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN): run it with sudo")]
pub struct NotRoot {
    pub what: &'static str,
}

/// Fails unless this process is root: recording loads a BPF program.
pub fn require_root(what: &'static str) -> Result<(), NotRoot> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NotRoot { what });
    }
    Ok(())
}

/// A command to record or run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("command not found: {command}: check the name and PATH")]
    NotFound { command: String },
    #[error("cannot execute {command}: {source}")]
    NotExecutable {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to start {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
}

/// The command's output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct OutputError {
    /// The file (or `stdout`).
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Writes `contents` to stdout.
pub fn write_stdout(contents: &[u8]) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(contents)
        .and_then(|()| out.flush())
        .map_err(|source| OutputError {
            path: PathBuf::from("stdout"),
            source,
        })
}

/// `value` as one line of JSON, with a newline.
pub fn json_line(value: &impl serde::Serialize) -> String {
    #[expect(
        clippy::unwrap_used,
        reason = "the reports are plain structs of strings, numbers and lists"
    )]
    let mut text = serde_json::to_string(value).unwrap();
    text.push('\n');
    text
}

/// Runs `future` to completion on a runtime of its own.
pub fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

/// Where the cluster is, for every command that talks to one.
#[derive(Clone, Debug, Default, Args)]
pub struct ClusterArgs {
    /// The kubeconfig file to use (default: KUBECONFIG, else
    /// ~/.kube/config, else the Pod's service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// The connection these options describe.
    pub fn connection(&self) -> Connection {
        Connection {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// How a command that reports on what it did writes its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object with a versioned `schema` (fields are only ever
    /// added), for pipelines.
    Json,
}

/// Output formats for profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// OCI runtime-spec `linux.seccomp` JSON, as containerd, CRI-O, runc and
    /// the kubelet's Localhost profiles read it.
    Oci,
    /// A Security Profiles Operator `SeccompProfile` object (YAML).
    Spo,
}
