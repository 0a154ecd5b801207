//! The command-level error: every failure a user can meet, each with a
//! one-line message that says what went wrong and what to do, and a distinct
//! exit status.
use std::{path::PathBuf, process::ExitCode};

/// Exit statuses, from sysexits(3) where one fits. `record` and `run` exit
/// with the command's own status when the command ran.
pub mod exit {
    /// The command line is wrong.
    pub const USAGE: u8 = 64;
    /// A profile or other input file is malformed.
    pub const DATA: u8 = 65;
    /// An input file could not be read.
    pub const NO_INPUT: u8 = 66;
    /// The kernel or system lacks something syscensus needs (BTF, cgroup v2,
    /// BPF).
    pub const UNAVAILABLE: u8 = 69;
    /// A bug or an unexpected system error.
    pub const SOFTWARE: u8 = 70;
    /// The output could not be written.
    pub const CANT_CREATE: u8 = 73;
    /// Not yet possible; try again later (`apply` before the profiles are
    /// installed on the nodes).
    pub const TEMP_FAIL: u8 = 75;
    /// Not privileged enough.
    pub const NO_PERM: u8 = 77;
    /// The command to run exists but cannot be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// The command to run was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// Everything a `syscensus` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN): run it with sudo")]
    NotRoot { what: &'static str },
    #[error("{message}")]
    Usage { message: String },
    #[error(transparent)]
    BaseSet(#[from] crate::basesets::UnknownBaseSet),
    #[error(transparent)]
    Daemon(Box<crate::daemon::DaemonError>),
    #[error(transparent)]
    Kernel(#[from] crate::bpf::BpfError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Export(Box<crate::export::ExportError>),
    #[error("command not found: {command}: check the name and PATH")]
    CommandNotFound { command: String },
    #[error("cannot execute {command}: {source}")]
    CommandNotExecutable {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}: choose a writable path with --output", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    /// The numeric exit status for this error.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::NotRoot { .. } => exit::NO_PERM,
            Self::BaseSet(_) | Self::Usage { .. } => exit::USAGE,
            Self::Daemon(e) => match e.as_ref() {
                crate::daemon::DaemonError::Kernel(e) => e.exit_status(),
                crate::daemon::DaemonError::Cgroup(_) | crate::daemon::DaemonError::Cri(_) => {
                    exit::UNAVAILABLE
                }
                crate::daemon::DaemonError::State(_) | crate::daemon::DaemonError::Install(_) => {
                    exit::CANT_CREATE
                }
                crate::daemon::DaemonError::Kube { .. } => exit::USAGE,
                crate::daemon::DaemonError::System { .. } => exit::SOFTWARE,
            },
            Self::Kernel(e) => e.exit_status(),
            Self::Cgroup(_) => exit::UNAVAILABLE,
            Self::Profile(e) => e.exit_status(),
            Self::Seccomp(e) => e.exit_status(),
            Self::Export(e) => e.exit_status(),
            Self::CommandNotFound { .. } => exit::NOT_FOUND,
            Self::CommandNotExecutable { .. } => exit::CANNOT_EXECUTE,
            Self::Spawn { .. } | Self::System { .. } => exit::SOFTWARE,
            Self::Output { .. } => exit::CANT_CREATE,
        }
    }
}

impl From<crate::daemon::DaemonError> for Error {
    fn from(error: crate::daemon::DaemonError) -> Self {
        Self::Daemon(Box::new(error))
    }
}

impl From<crate::export::ExportError> for Error {
    fn from(error: crate::export::ExportError) -> Self {
        Self::Export(Box::new(error))
    }
}

/// Result alias for command-level code.
pub type Result<T, E = Error> = std::result::Result<T, E>;
