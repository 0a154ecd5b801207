//! `syscensus uninstall`: removes what agents left pinned on this node. A
//! stopping agent leaves its programs attached and pinned (with their maps)
//! so that the next one loses nothing; once no agent will run again, this
//! unpins them, and the kernel detaches the programs and frees the maps as
//! soon as no process holds them.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;
use tracing::info;

use super::NotRoot;

/// `syscensus uninstall` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    NotRoot(#[from] NotRoot),
    #[error("an agent still runs with state directory {} (PID {pid}): stop it first", state_dir.display())]
    AgentRunning { state_dir: PathBuf, pid: i32 },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Options of `syscensus uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The agents' pin directory (their `--pin-dir`), on a BPF file system.
    #[arg(long, env = "SYSCENSUS_PIN_DIR", default_value = super::agent::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// The agents' state directory: refused while an agent runs with it.
    #[arg(
        long,
        env = "SYSCENSUS_STATE_DIR",
        default_value = "/var/lib/syscensus"
    )]
    pub state_dir: PathBuf,
}

/// Unpins everything below the pin directory and removes it.
pub fn uninstall(args: UninstallArgs) -> Result<ExitCode, Error> {
    super::require_root("syscensus uninstall")?;
    if let Some(pid) = running_agent(&args.state_dir) {
        return Err(Error::AgentRunning {
            state_dir: args.state_dir,
            pid,
        });
    }
    if !args.pin_dir.exists() {
        info!(pin_dir = %args.pin_dir.display(), "nothing pinned");
        return Ok(ExitCode::SUCCESS);
    }
    // Unpinning a link detaches its program once no process holds it.
    std::fs::remove_dir_all(&args.pin_dir).map_err(|source| Error::Remove {
        path: args.pin_dir.clone(),
        source,
    })?;
    info!(pin_dir = %args.pin_dir.display(), "programs and maps unpinned");
    Ok(ExitCode::SUCCESS)
}

/// The PID of an agent that runs with `state_dir`, if one does.
fn running_agent(state_dir: &Path) -> Option<i32> {
    let pid_file = crate::daemon::state::StateDir::pid_file(state_dir);
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}
