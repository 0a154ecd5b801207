//! `syscensus export`: the recorded profiles to a directory for review in
//! git, with the patches that make the workloads use them; commits and
//! pushes it if asked to.
use std::{fs, path::PathBuf, process::ExitCode};

use clap::Args;

use super::{OutputError, block_on, write_stdout};
use crate::export::{
    self, ExportError, Filter, PlanOptions, client, cluster_entries, denial_reports, file_entries,
    git, plan, read_base, tree,
};

/// `syscensus export` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("failed to start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Options of `syscensus export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The export directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Read profiles from files instead of the cluster: ContainerProfile
    /// objects (`kubectl get cprof -o yaml`, single or a List), an agent's
    /// state directory, or ContainerRecording files; directories are
    /// searched for .json, .yaml and .yml files. Repeatable.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub from: Vec<PathBuf>,
    /// Only this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Only the ContainerProfiles of this ProfileRecording.
    #[arg(long)]
    pub recording: Option<String>,
    /// Workload manifests (a directory or a file): RFC 6902 JSON patches are
    /// written against them (they address containers by index), and they
    /// tell init containers from containers.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Propose the syscalls these refusal reports name (an agent's state
    /// directory, its refusals/, or `syscensus denials -o json`) in a rule
    /// of their own, with a comment, in the profile of their workload
    /// container, for review. Repeatable; needs --from (profiles installed
    /// from ContainerProfiles are rendered from those alone).
    #[arg(long, value_name = "FILE_OR_DIR", requires = "from")]
    pub with_denials: Vec<PathBuf>,
    /// Also write Security Profiles Operator SeccompProfile objects.
    #[arg(long)]
    pub spo: bool,
    /// Commit the export to the git repository DIR lies in, when it changed,
    /// with the syscalls added and removed per container in the message.
    #[arg(long)]
    pub git: bool,
    /// Push the current branch to this remote (a name, or a local path)
    /// after committing.
    #[arg(long, value_name = "REMOTE", requires = "git")]
    pub push: Option<String>,
}

/// Reads the profiles, writes the export directory, and commits and pushes
/// it if asked to.
pub fn export(args: ExportArgs) -> Result<ExitCode, Error> {
    let filter = Filter {
        namespace: args.namespace.clone(),
        recording: args.recording.clone(),
    };
    let entries = if args.from.is_empty() {
        block_on(async {
            let client = client().await?;
            cluster_entries(&client, &filter).await
        })
        .map_err(Error::Runtime)??
    } else {
        let mut entries = Vec::new();
        for from in &args.from {
            entries.extend(file_entries(from, &filter)?);
        }
        entries
    };
    if entries.is_empty() {
        return Err(ExportError::Nothing {
            scope: filter.describe(),
        }
        .into());
    }
    let base = args.base.as_deref().map(read_base).transpose()?;
    let mut denials = Vec::new();
    for path in &args.with_denials {
        denials.extend(denial_reports(path)?);
    }
    let plan = plan(
        entries,
        base.as_ref(),
        &PlanOptions {
            spo: args.spo,
            denials,
        },
    )?;
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    if args.git {
        // Fail before writing anything when the commit cannot be made.
        fs::create_dir_all(&args.to).map_err(ExportError::write(&args.to))?;
        git::check(&args.to)?;
    }

    let written = tree::write(&args.to, &plan)?;
    let mut out = format!(
        "exported {} profile(s) of {} workload(s) to {}: {} file(s) written, {} removed, {} unchanged\n",
        plan.profiles,
        plan.workloads,
        args.to.display(),
        written.written.len(),
        written.removed.len(),
        written.unchanged
    );
    if args.git {
        match git::commit(&args.to, &plan, &written)? {
            Some(export::Commit { id, summary }) => out.push_str(&format!(
                "committed {}: {summary}\n",
                &id[..id.len().min(12)],
            )),
            None => out.push_str("nothing to commit: the repository holds this export\n"),
        }
    }
    if let Some(remote) = &args.push {
        let branch = git::push(&args.to, remote)?;
        out.push_str(&format!("pushed {branch} to {remote}\n"));
    }
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
