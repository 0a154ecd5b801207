//! The command line. The doc comments are the help text.
use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{error::Result, profile::Action};

/// Records which syscalls a command or container really makes, with eBPF,
/// and writes the seccomp profile that allows exactly those.
#[derive(Debug, Parser)]
#[command(name = "syscensus", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `syscensus=debug`).
    #[arg(long, global = true, env = "SYSCENSUS_LOG")]
    pub log_level: Option<String>,

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
    }
}
