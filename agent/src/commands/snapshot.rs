//! `syscensus snapshot`: asks the agent of a state directory to write what
//! its running containers did so far, and waits until it has.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::Args;

use crate::daemon::state::StateDir;

/// `syscensus snapshot` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no agent runs with state directory {}: {} is missing", state_dir.display(), pid_file.display())]
    NoAgent {
        state_dir: PathBuf,
        pid_file: PathBuf,
    },
    #[error("cannot signal the agent (PID {pid}): {source}")]
    Signal {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent (PID {pid}) did not write a snapshot within {seconds}s: see its log")]
    Timeout { pid: i32, seconds: u64 },
}

/// Options of `syscensus snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The running agent's state directory.
    #[arg(
        long,
        env = "SYSCENSUS_STATE_DIR",
        default_value = "/var/lib/syscensus"
    )]
    pub state_dir: PathBuf,
    /// Seconds to wait for the agent.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// Signals the agent (SIGUSR1) and waits for its snapshot count to move.
pub fn snapshot(args: SnapshotArgs) -> Result<ExitCode, Error> {
    let pid_file = StateDir::pid_file(&args.state_dir);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| Error::NoAgent {
            state_dir: args.state_dir.clone(),
            pid_file: pid_file.clone(),
        })?;
    let count = || read_count(&StateDir::snapshots_file(&args.state_dir));
    let before = count();
    // SAFETY: kill(2) with a signal number has no memory preconditions.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Err(Error::Signal {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(args.timeout);
    while count() == before {
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout {
                pid,
                seconds: args.timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}
