//! The command line: parsing (the doc comments are the help text), the
//! dispatch to the commands, and the one place errors become exit
//! statuses ([`exit`]).
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    self, agent::AgentArgs, apply::ApplyArgs, approve::ApproveArgs, denials::DenialsArgs,
    diff::DiffArgs, export::ExportArgs, install_agent_profile::InstallAgentProfileArgs,
    merge::MergeArgs, record::RecordArgs, run::RunArgs, snapshot::SnapshotArgs,
    uninstall::UninstallArgs,
};

mod docs;
pub mod exit;

pub use docs::{CompletionsArgs, ManArgs};

/// Records which syscalls a command or container really makes, with eBPF,
/// and writes the seccomp profile that allows exactly those.
#[derive(Debug, Parser)]
#[command(name = "syscensus", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `syscensus=debug`).
    #[arg(long, global = true, env = "SYSCENSUS_LOG")]
    pub log_level: Option<String>,
    /// Diagnostics as text lines or as JSON lines (one object per event,
    /// with its fields); colour codes only on a terminal.
    #[arg(
        long,
        global = true,
        env = "SYSCENSUS_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: crate::logging::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command, record every syscall it and its descendants make, and
    /// write the profile.
    ///
    /// The command runs in a cgroup of its own; recording starts when it is
    /// exec'd and ends when it exits. syscensus exits with the command's exit
    /// status. Needs root.
    Record(RecordArgs),
    /// Run a command under a seccomp profile (syscensus, OCI, Docker or
    /// Security Profiles Operator format).
    Run(RunArgs),
    /// Run the node agent: record the containers started on this node and
    /// write each one's profile to the state directory when it ends.
    ///
    /// Every flag can also be set through the environment variable named in
    /// its help, so that a DaemonSet configures the agent in its manifest.
    Agent(AgentArgs),
    /// Ask the running agent to write what its running containers did so
    /// far (to <state-dir>/containers), and wait until it has.
    Snapshot(SnapshotArgs),
    /// Remove what agents left attached and pinned on this node (their
    /// programs and maps below --pin-dir), once no agent will run again: a
    /// stopping agent leaves them so that the next one loses nothing.
    Uninstall(UninstallArgs),
    /// Print what the seccomp profiles containers run under refused them:
    /// per container, each refused syscall with its count, first and last
    /// time and the process that made it first, from the agent's state
    /// directory (<state-dir>/refusals).
    Denials(DenialsArgs),
    /// Write the agent's own seccomp profile into the kubelet's seccomp
    /// directory (<kubelet-root>/seccomp/syscensus/syscensus-agent.json), so
    /// that the DaemonSet's agent container can run confined by it. Run by
    /// the DaemonSet's init container.
    InstallAgentProfile(InstallAgentProfileArgs),
    /// Write the recorded profiles to a directory for review in git: one OCI
    /// profile per workload container, the object that installs it on the
    /// nodes (a LocalhostProfile, or with --for spo a SeccompProfile),
    /// patches that make the workloads use them, and a kustomize Component
    /// that ties the objects and patches together.
    ///
    /// Reads the cluster's ContainerProfiles (--kubeconfig, KUBECONFIG, or
    /// the Pod's service account), or the files given with --from. Files an
    /// earlier export wrote that this one does not are removed.
    Export(ExportArgs),
    /// Compare two profiles, or two directories of profiles (matched by
    /// relative path): the syscalls added and removed per container and
    /// architecture. Exits 0 when they are equal, 1 when they differ.
    Diff(DiffArgs),
    /// Merge profiles into one that allows what any of them allows. They
    /// must agree on the default action and errno, architectures and flags.
    Merge(MergeArgs),
    /// Make the live workloads use the profiles of an export: server-side
    /// apply of each workload's patch (field manager `syscensus`).
    ///
    /// Refuses, patching nothing, while a profile is not installed on every
    /// Node that matches the workload's nodeSelector (affinity and taints
    /// are not evaluated), as the Nodes' NodeProfileStatuses report it.
    Apply(ApplyArgs),
    /// Approve ContainerProfiles as they are now: their profile goes, byte
    /// for byte, into the workload container's LocalhostProfile, which
    /// every node installs. Syscalls recorded later wait for the next
    /// approval (`kubectl get cprof` shows `changed`).
    Approve(ApproveArgs),
    /// Print the completion script of a shell (bash, zsh, fish, elvish,
    /// powershell): e.g. `syscensus completions bash >
    /// /etc/bash_completion.d/syscensus`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one per command into a
    /// directory: e.g. `syscensus man --dir /usr/local/share/man/man1`.
    Man(ManArgs),
}

/// Everything a `syscensus` command can fail with: each command's own
/// error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Record(#[from] commands::record::Error),
    #[error(transparent)]
    Run(#[from] commands::run::Error),
    #[error(transparent)]
    Agent(#[from] commands::agent::Error),
    #[error(transparent)]
    Snapshot(#[from] commands::snapshot::Error),
    #[error(transparent)]
    Uninstall(#[from] commands::uninstall::Error),
    #[error(transparent)]
    Denials(#[from] commands::denials::Error),
    #[error(transparent)]
    InstallAgentProfile(#[from] commands::install_agent_profile::Error),
    #[error(transparent)]
    Export(#[from] commands::export::Error),
    #[error(transparent)]
    Diff(#[from] commands::diff::Error),
    #[error(transparent)]
    Merge(#[from] commands::merge::Error),
    #[error(transparent)]
    Apply(#[from] commands::apply::Error),
    #[error(transparent)]
    Approve(#[from] commands::approve::Error),
    #[error(transparent)]
    Docs(commands::OutputError),
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<ExitCode, Error> {
    Ok(match cli.command {
        Command::Record(args) => commands::record::record(args)?,
        Command::Run(args) => commands::run::run(args)?,
        Command::Agent(args) => commands::agent::agent(args)?,
        Command::Snapshot(args) => commands::snapshot::snapshot(args)?,
        Command::Uninstall(args) => commands::uninstall::uninstall(args)?,
        Command::Denials(args) => commands::denials::denials(args)?,
        Command::InstallAgentProfile(args) => {
            commands::install_agent_profile::install_agent_profile(args)?
        }
        Command::Export(args) => commands::export::export(args)?,
        Command::Diff(args) => commands::diff::diff(args)?,
        Command::Merge(args) => commands::merge::merge(args)?,
        Command::Apply(args) => commands::apply::apply(args)?,
        Command::Approve(args) => commands::approve::approve(args)?,
        Command::Completions(args) => docs::completions(&args).map_err(Error::Docs)?,
        Command::Man(args) => docs::man(&args).map_err(Error::Docs)?,
    })
}

/// Parses the command line, sets up logging, runs the command, and turns
/// its result into the process's exit status (a failure is one line on
/// stderr).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_level.as_deref(), cli.log_format);
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            crate::logging::report(&error);
            ExitCode::from(exit::status(&error))
        }
    }
}
