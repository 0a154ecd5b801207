//! The `syscensus` command: everything is in the library's CLI edge.
use std::process::ExitCode;

fn main() -> ExitCode {
    syscensus::cli::main()
}
