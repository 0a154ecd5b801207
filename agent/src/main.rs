//! The `syscensus` command: parses the command line, sets up logging and
//! hands over to the library.
use std::process::ExitCode;

use clap::Parser as _;
use syscensus::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    syscensus::logging::init(cli.log_level.as_deref(), cli.log_format);
    match syscensus::cli::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            syscensus::logging::report(&error);
            error.exit_code()
        }
    }
}
