//! Developer tasks that cargo cannot do alone: set-up, privileged test runs,
//! code generation, benchmarks, the demo.
use clap::{Parser, Subcommand};

mod syscalls;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Regenerate agent/src/syscalls/tables.rs from the vendored libseccomp
    /// syscall table.
    GenSyscalls {
        /// Fail instead of writing when the checked-in tables differ.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::GenSyscalls { check } => syscalls::generate(check),
    }
}
