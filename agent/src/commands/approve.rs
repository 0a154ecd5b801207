//! `syscensus approve`: approves ContainerProfiles as they are now, so
//! that every node installs exactly that content (see [`crate::approve`]).
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::{ClusterArgs, Output, OutputError, block_on, json_line, write_stdout};
use crate::approve::{self, ApproveError, Approved};

/// The version of the JSON report (`approve -o json`); fields are only
/// ever added.
pub const SCHEMA: &str = "syscensus.io/approve/v1";

/// `syscensus approve` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Approve(#[from] ApproveError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("failed to start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Options of `syscensus approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The ContainerProfiles to approve, by name.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
    /// Approve every ContainerProfile of the namespace.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// The namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Take the approval back: the LocalhostProfile goes, and nodes remove
    /// the file once nothing uses it.
    #[arg(long)]
    pub revoke: bool,
    /// The report's format: text, or JSON (schema syscensus.io/approve/v1).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    schema: &'static str,
    namespace: &'a str,
    revoked: bool,
    profiles: &'a [Approved],
}

/// Approves (or revokes) the ContainerProfiles named in `args`.
pub fn approve(args: ApproveArgs) -> Result<ExitCode, Error> {
    let connection = args.cluster.connection();
    let (namespace, approved) = block_on(async {
        let client = connection.client().await?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let approved = approve::approve(&client, &namespace, &args.names, args.revoke).await?;
        Ok::<_, ApproveError>((namespace, approved))
    })
    .map_err(Error::Runtime)??;
    let text = match args.output {
        Output::Json => json_line(&Report {
            schema: SCHEMA,
            namespace: &namespace,
            revoked: args.revoke,
            profiles: &approved,
        }),
        Output::Text => {
            let mut out = String::new();
            for a in &approved {
                let sources: Vec<&str> = a.container_profiles.keys().map(String::as_str).collect();
                if args.revoke {
                    out.push_str(&format!(
                        "revoked {}: LocalhostProfile {} deleted, approval taken from {}\n",
                        a.localhost_profile,
                        a.object,
                        sources.join(", ")
                    ));
                } else {
                    out.push_str(&format!(
                        "approved {} (sha256 {}) in LocalhostProfile {}, from {}\n",
                        a.localhost_profile,
                        &a.sha256[..a.sha256.len().min(12)],
                        a.object,
                        sources.join(", ")
                    ));
                    if a.changes.is_empty() {
                        out.push_str("    unchanged since the last approval\n");
                    } else {
                        for line in a.changes.lines().skip(1) {
                            out.push_str(line);
                            out.push('\n');
                        }
                    }
                }
            }
            out
        }
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
