//! Diagnostics go to stderr through `tracing`; stdout is for the command's
//! output (profiles).
use std::io::Write as _;

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber. The filter comes from `--log-level`, else
/// `SYSCENSUS_LOG`, else `warn`.
pub fn init(level: Option<&str>) {
    let filter = level
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_env("SYSCENSUS_LOG").ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log that cannot be written (a full disk under stderr) must not
        // stop the agent: by default the subscriber reports that with
        // eprintln!, which panics when stderr fails.
        .log_internal_errors(false)
        .with_target(false)
        .init();
}

/// Prints a failed command's error as one line on stderr.
pub fn report(error: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "syscensus: {error}");
}
