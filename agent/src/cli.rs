//! The command line. The doc comments are the help text.
use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    commands::{
        agent::AgentArgs, install_agent_profile::InstallAgentProfileArgs, snapshot::SnapshotArgs,
    },
    error::Result,
    profile::Action,
};

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
    /// Write the agent's own seccomp profile into the kubelet's seccomp
    /// directory (<kubelet-root>/seccomp/syscensus/syscensus-agent.json), so
    /// that the DaemonSet's agent container can run confined by it. Run by
    /// the DaemonSet's init container.
    InstallAgentProfile(InstallAgentProfileArgs),
    /// Write the recorded profiles to a directory for review in git: one OCI
    /// profile per workload container, patches that make the workloads use
    /// them, and a kustomize Component that ties the patches together.
    ///
    /// Reads the cluster's ContainerProfiles (KUBECONFIG, or the Pod's
    /// service account), or the files given with --from. Files an earlier
    /// export wrote that this one does not are removed.
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
    /// are not evaluated).
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The export directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Read profiles from files instead of the cluster: ContainerProfile
    /// objects (`kubectl get cprof -o yaml`, single or a List), an agent's
    /// state directory, or ContainerRecording files; directories are
    /// searched for .json, .yaml and .yml files. Repeatable.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub from: Vec<PathBuf>,
    /// Only this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Only the ContainerProfiles of this ProfileRecording.
    #[arg(long)]
    pub recording: Option<String>,
    /// Workload manifests (a directory or a file): RFC 6902 JSON patches are
    /// written against them (they address containers by index), and they
    /// tell init containers from containers.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Also write Security Profiles Operator SeccompProfile objects.
    #[arg(long)]
    pub spo: bool,
    /// Commit the export to the git repository DIR lies in, when it changed,
    /// with the syscalls added and removed per container in the message.
    #[arg(long)]
    pub git: bool,
    /// Push the current branch to this remote (a name, or a local path)
    /// after committing.
    #[arg(long, value_name = "REMOTE", requires = "git")]
    pub push: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old profile or directory.
    pub a: PathBuf,
    /// The new profile or directory.
    pub b: PathBuf,
    /// Print JSON (schema `syscensus.io/diff/v1`) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The profiles (any format `run` reads).
    #[arg(required = true, value_name = "PROFILE")]
    pub profiles: Vec<PathBuf>,
    /// Write the result here (atomically) instead of to stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Profile format.
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    pub format: Format,
    /// `metadata.name` of an SPO object (default: from --output, else
    /// `merged`).
    #[arg(long)]
    pub name: Option<String>,
    /// `metadata.namespace` of an SPO object.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The export directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Print what would change (each container's seccompProfile before and
    /// after) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Patch even where the profile is not installed on every matching Node
    /// (Pods scheduled there fail to start until it is).
    #[arg(long)]
    pub force_uninstalled: bool,
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

/// What a syscall outside the profile does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DefaultAction {
    /// Fail with an errno (see --errno): enforce the profile.
    Errno,
    /// Allow and log it (complain mode, SCMP_ACT_LOG).
    Log,
    /// Kill the process.
    KillProcess,
    /// Kill the thread.
    KillThread,
    /// Send SIGSYS.
    Trap,
}

impl From<DefaultAction> for Action {
    fn from(value: DefaultAction) -> Self {
        match value {
            DefaultAction::Errno => Action::Errno,
            DefaultAction::Log => Action::Log,
            DefaultAction::KillProcess => Action::KillProcess,
            DefaultAction::KillThread => Action::KillThread,
            DefaultAction::Trap => Action::Trap,
        }
    }
}

/// Options shared by everything that writes a profile.
#[derive(Debug, Args)]
pub struct ProfileOptions {
    /// Profile format.
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    pub format: Format,
    /// What a syscall outside the profile does.
    #[arg(long, value_enum, default_value_t = DefaultAction::Errno)]
    pub default_action: DefaultAction,
    /// The errno a blocked syscall fails with (1 = EPERM).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..4096))]
    pub errno: u32,
    /// Runtime base set added to the profile: the syscalls whatever starts the
    /// workload needs after loading the filter (`syscensus` for `syscensus
    /// run`; `runc`, `runc-nnp`, `crun` for containers; `none`).
    #[arg(long, default_value = "syscensus")]
    pub base_set: String,
    /// `metadata.name` of an SPO object (default: the command's name).
    #[arg(long)]
    pub name: Option<String>,
    /// `metadata.namespace` of an SPO object.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Write the profile here (atomically) instead of to stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub profile: ProfileOptions,
    /// Do not show live progress on stderr, even when it is a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The profile to enforce. Docker `caps` conditions are evaluated
    /// against syscensus's own effective capabilities, `minKernel` against
    /// the running kernel.
    #[arg(short, long)]
    pub profile: PathBuf,
    /// Which object to use when the file holds several SPO profiles
    /// (`metadata.name`).
    #[arg(long)]
    pub name: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Record(args) => crate::record::record(args),
        Command::Run(args) => crate::run::run(args),
        Command::Agent(args) => crate::commands::agent::agent(args),
        Command::Snapshot(args) => crate::commands::snapshot::snapshot(args),
        Command::InstallAgentProfile(args) => {
            crate::commands::install_agent_profile::install_agent_profile(args)
        }
        Command::Export(args) => crate::export::export(args),
        Command::Diff(args) => crate::export::diff(args),
        Command::Merge(args) => crate::export::merge(args),
        Command::Apply(args) => crate::export::apply(args),
    }
}
