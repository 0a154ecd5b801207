//! The `syscensus` command: everything is in the library's CLI edge.
#![allow(
    unused_crate_dependencies,
    reason = "a binary of the package uses some of its dependencies"
)]
use std::process::ExitCode;

fn main() -> ExitCode {
    syscensus::cli::main()
}
