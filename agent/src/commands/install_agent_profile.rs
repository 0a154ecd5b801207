//! `syscensus install-agent-profile`: writes the agent's own seccomp
//! profile where the kubelet looks up Localhost profiles, for the
//! DaemonSet's init container.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use tracing::info;

use super::OutputError;

/// `syscensus install-agent-profile` failed: the profile could not be
/// written.
pub type Error = OutputError;

/// The agent's own profile, recorded by syscensus running the agent through
/// everything it does (tests/tests/own_profile.rs runs the agent under it).
pub const AGENT_PROFILE: &str = include_str!("../../profiles/syscensus-agent.json");

/// Options of `syscensus install-agent-profile`.
#[derive(Debug, Args)]
pub struct InstallAgentProfileArgs {
    /// The kubelet's root directory, as mounted in this container.
    #[arg(
        long,
        env = "SYSCENSUS_KUBELET_ROOT",
        default_value = "/var/lib/kubelet"
    )]
    pub kubelet_root: PathBuf,
}

/// Writes the profile to `<kubelet-root>/seccomp/syscensus/syscensus-agent.json`.
pub fn install_agent_profile(args: InstallAgentProfileArgs) -> Result<ExitCode, Error> {
    let dir = args
        .kubelet_root
        .join("seccomp")
        .join(crate::localhost::LOCALHOST_DIR);
    let path = dir.join("syscensus-agent.json");
    std::fs::create_dir_all(&dir)
        .and_then(|()| crate::output::write_atomic(&path, AGENT_PROFILE.as_bytes()))
        .map_err(|source| OutputError {
            path: path.clone(),
            source,
        })?;
    info!(path = %path.display(), "agent profile installed");
    Ok(ExitCode::SUCCESS)
}
