//! Exit statuses, from sysexits(3) where one fits, and the one place that
//! maps an error to its status. `record` and `run` exit with the command's
//! own status when the command ran.
use super::Error;
use crate::{
    bpf::BpfError,
    commands::{self, ExecError},
    daemon::DaemonError,
    diff::DiffError,
    export::ExportError,
    profile::ProfileError,
    seccomp::SeccompError,
};

/// The command line is wrong.
pub const USAGE: u8 = 64;
/// A profile or other input file is malformed.
pub const DATA: u8 = 65;
/// An input file could not be read.
pub const NO_INPUT: u8 = 66;
/// Something syscensus needs is missing or does not answer: the kernel
/// lacks BTF, cgroup v2 or BPF support; the Kubernetes API or the agent
/// cannot be reached.
pub const UNAVAILABLE: u8 = 69;
/// A bug or an unexpected system error.
pub const SOFTWARE: u8 = 70;
/// The output could not be written.
pub const CANT_CREATE: u8 = 73;
/// Not yet possible; try again later (`apply` before the profiles are
/// installed on the nodes, a snapshot the agent did not write in time).
pub const TEMP_FAIL: u8 = 75;
/// Not privileged enough.
pub const NO_PERM: u8 = 77;
/// The command to run exists but cannot be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// The command to run was not found.
pub const NOT_FOUND: u8 = 127;

/// The exit status of a failed command.
pub fn status(error: &Error) -> u8 {
    match error {
        Error::Record(e) => {
            use commands::record::Error as E;
            match e {
                E::NotRoot(_) => NO_PERM,
                E::BaseSet(_) => USAGE,
                E::Profile(e) => profile(e),
                E::Kernel(e) => kernel(e),
                E::Cgroup(_) => UNAVAILABLE,
                E::Exec(e) => exec(e),
                E::Output(_) => CANT_CREATE,
                E::System { .. } => SOFTWARE,
            }
        }
        Error::Run(e) => {
            use commands::run::Error as E;
            match e {
                E::Profile(e) => profile(e),
                E::Seccomp(e) => seccomp(e),
                E::Exec(e) => exec(e),
            }
        }
        Error::Agent(e) => {
            use commands::agent::Error as E;
            match e {
                E::NotRoot(_) => NO_PERM,
                E::BaseSet(_) | E::Usage { .. } => USAGE,
                E::Daemon(e) => daemon(e),
            }
        }
        Error::Snapshot(e) => {
            use commands::snapshot::Error as E;
            match e {
                E::NoAgent { .. } => UNAVAILABLE,
                E::Signal { .. } => SOFTWARE,
                E::Timeout { .. } => TEMP_FAIL,
            }
        }
        Error::Uninstall(e) => {
            use commands::uninstall::Error as E;
            match e {
                E::NotRoot(_) => NO_PERM,
                E::AgentRunning { .. } => TEMP_FAIL,
                E::Remove { .. } => CANT_CREATE,
            }
        }
        Error::Denials(e) => {
            use commands::denials::Error as E;
            match e {
                E::Read { .. } => NO_INPUT,
                E::Parse { .. } => DATA,
                E::Output(_) => CANT_CREATE,
                E::Connect(_) | E::Kube { .. } => UNAVAILABLE,
                E::Runtime(_) => SOFTWARE,
            }
        }
        Error::InstallAgentProfile(_) => CANT_CREATE,
        Error::Export(e) => {
            use commands::export::Error as E;
            match e {
                E::Export(e) => export(e),
                E::Output(_) => CANT_CREATE,
                E::Runtime(_) => SOFTWARE,
            }
        }
        Error::Diff(e) => {
            use commands::diff::Error as E;
            match e {
                E::Diff(DiffError::Mixed { .. }) => USAGE,
                E::Diff(DiffError::Read { .. }) => NO_INPUT,
                E::Diff(DiffError::Profile(e)) => profile(e),
                E::Output(_) => CANT_CREATE,
            }
        }
        Error::Merge(e) => {
            use commands::merge::Error as E;
            match e {
                E::Profile(e) => profile(e),
                E::Mismatch { .. } => DATA,
                E::Output(_) => CANT_CREATE,
            }
        }
        Error::Apply(e) => {
            use commands::apply::Error as E;
            match e {
                E::Apply(e) => export(e),
                E::Output(_) => CANT_CREATE,
                E::Runtime(_) => SOFTWARE,
            }
        }
        Error::Approve(e) => {
            use crate::approve::ApproveError as A;
            use commands::approve::Error as E;
            match e {
                E::Approve(A::Connect(_) | A::Kube { .. }) => UNAVAILABLE,
                E::Approve(A::NotFound { .. } | A::Nothing { .. }) => NO_INPUT,
                E::Approve(A::Unusable { .. }) => DATA,
                E::Approve(A::Contended { .. }) => TEMP_FAIL,
                E::Output(_) => CANT_CREATE,
                E::Runtime(_) => SOFTWARE,
            }
        }
        Error::Docs(_) => CANT_CREATE,
    }
}

fn exec(error: &ExecError) -> u8 {
    match error {
        ExecError::NotFound { .. } => NOT_FOUND,
        ExecError::NotExecutable { .. } => CANNOT_EXECUTE,
        ExecError::Spawn { .. } => SOFTWARE,
    }
}

fn kernel(error: &BpfError) -> u8 {
    match error {
        BpfError::Load(_) | BpfError::Btf(_) | BpfError::LoaderBtf(_) => UNAVAILABLE,
        _ => SOFTWARE,
    }
}

fn profile(error: &ProfileError) -> u8 {
    match error {
        ProfileError::Read { .. } => NO_INPUT,
        ProfileError::Syntax { .. } | ProfileError::Invalid { .. } | ProfileError::Spo { .. } => {
            DATA
        }
    }
}

fn seccomp(error: &SeccompError) -> u8 {
    match error {
        SeccompError::NoNewPrivs { .. } | SeccompError::Install { .. } => UNAVAILABLE,
        SeccompError::Assemble { .. } => SOFTWARE,
        _ => DATA,
    }
}

fn daemon(error: &DaemonError) -> u8 {
    match error {
        DaemonError::Kernel(e) => kernel(e),
        DaemonError::Cgroup(_)
        | DaemonError::Preflight(_)
        | DaemonError::Cri(_)
        | DaemonError::Kube { .. } => UNAVAILABLE,
        DaemonError::State(_) | DaemonError::Install(_) => CANT_CREATE,
        DaemonError::System { .. } => SOFTWARE,
    }
}

fn export(error: &ExportError) -> u8 {
    use ExportError as E;
    match error {
        E::Path(_)
        | E::Parse { .. }
        | E::Document { .. }
        | E::NotDenials { .. }
        | E::Manifest { .. }
        | E::Unusable { .. } => DATA,
        E::Read { .. } | E::Nothing { .. } | E::NotAnExport { .. } => NO_INPUT,
        E::Write { .. }
        | E::Foreign { .. }
        | E::Git { .. }
        | E::Rejected { .. }
        | E::GitCommand { .. }
        | E::DetachedHead => CANT_CREATE,
        E::Connect(_) | E::Kube { .. } | E::Workloads { .. } => UNAVAILABLE,
        E::NotARepository { .. } | E::NoRemote { .. } | E::BranchName { .. } => USAGE,
        E::NotInstalled { .. } => TEMP_FAIL,
        E::Profile(e) => profile(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{NotRoot, OutputError};

    #[test]
    fn statuses_follow_sysexits() {
        let not_root = Error::Record(commands::record::Error::NotRoot(NotRoot { what: "x" }));
        assert_eq!(status(&not_root), NO_PERM);
        let output = Error::Merge(commands::merge::Error::Output(OutputError {
            path: "x".into(),
            source: std::io::Error::other("full"),
        }));
        assert_eq!(status(&output), CANT_CREATE);
        let timeout = Error::Snapshot(commands::snapshot::Error::Timeout { pid: 1, seconds: 2 });
        assert_eq!(status(&timeout), TEMP_FAIL);
    }
}
