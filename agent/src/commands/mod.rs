//! The commands: each owns its options and turns them into calls of the
//! domain and the daemon below it.
use crate::{Error, error::Result};

pub mod agent;
pub mod install_agent_profile;
pub mod snapshot;

/// Fails unless this process is root: recording loads a BPF program.
pub fn require_root(what: &'static str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot { what });
    }
    Ok(())
}
