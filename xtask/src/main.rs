//! Developer tasks that cargo cannot do alone: set-up, privileged test runs,
//! code generation, benchmarks, the demo.
#![allow(
    clippy::print_stderr,
    reason = "a developer tool that reports progress on stderr"
)]

use clap::{Parser, Subcommand};

mod bench;
mod crds;
mod demo;
mod docpaths;
mod fuzz;
mod image;
mod layers;
mod run;
mod syscalls;
mod test;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing need (apt packages, bpf-linker, the
    /// nightly rust-src component) and mount tracefs and bpffs. Idempotent.
    Setup,
    /// Set up, then run every check and test: formatting, lints, generated
    /// files, unit tests, and the root tests against the real kernel and
    /// runtimes (with sudo when not root).
    Test {
        /// Only run tests whose name contains this.
        filter: Option<String>,
        /// Skip set-up, formatting and lint checks.
        #[arg(long)]
        quick: bool,
    },
    /// Lints: the import rules of agent/src (layers, no cycles, a pure state
    /// machine), then clippy on the workspace, then on the kernel program
    /// for the BPF target.
    Lint,
    /// Set up, build, and record a built-in example: prints the profile,
    /// runs the example under it, and shows a syscall outside it blocked.
    Demo,
    /// Set up, build in release, and measure: the per-syscall overhead
    /// (recorded, not recorded, idle, against an empty program), the agent's
    /// memory with 10 / 100 / 1,000 containers, the kernel maps, recording
    /// start latency and export time; prints each target met or not and
    /// writes JSON. With `--cluster`, instead: the cluster writes of 10 /
    /// 100 / 1,000 simulated nodes against the test API server.
    Bench(bench::BenchArgs),
    /// Build the agent's OCI image (deploy/image/Containerfile, with buildah)
    /// for this machine's architecture into target/image/syscensus.oci.tar;
    /// prints its size and digest.
    Image,
    /// Record the agent through everything it does and rewrite its own
    /// seccomp profile (agent/profiles/syscensus-agent.json). Needs root.
    GenAgentProfile,
    /// Regenerate the CRD manifests in deploy/ from the types in api/.
    GenCrds {
        /// Fail instead of writing when the checked-in manifests differ.
        #[arg(long)]
        check: bool,
    },
    /// Regenerate agent/src/syscalls/tables.rs from the vendored libseccomp
    /// syscall table.
    GenSyscalls {
        /// Fail instead of writing when the checked-in tables differ.
        #[arg(long)]
        check: bool,
    },
    /// Build the libFuzzer targets in fuzz/ (installing cargo-fuzz if
    /// missing; needs nightly) and run each for a bounded time; fails if an
    /// input crashes or hangs one.
    Fuzz {
        /// Seconds to run each target.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Only these targets (all when none is given).
        targets: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => run::setup(),
        Task::Test { filter, quick } => test::test(filter.as_deref(), quick),
        Task::Lint => test::lint(),
        Task::Demo => demo::demo(),
        Task::Bench(args) => bench::bench(&args),
        Task::Image => run::setup().and_then(|()| image::image()).map(drop),
        Task::GenAgentProfile => test::gen_agent_profile(),
        Task::GenCrds { check } => crds::generate(check),
        Task::GenSyscalls { check } => syscalls::generate(check),
        Task::Fuzz { seconds, targets } => fuzz::fuzz(seconds, &targets),
    }
}
