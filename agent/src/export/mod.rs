//! From census to cluster: `syscensus export` writes the recorded profiles
//! as files for review in git, with the patches that make the workloads use
//! them; `diff` and `merge` work on profile files; `apply` patches the live
//! workloads once the node agents have installed the profiles.
//!
//! The path ([`profile_path`]) and bytes ([`render_profile`]) of a profile
//! are shared with the node agents' installer, which writes the same file at
//! `<kubelet-root>/seccomp/syscensus/<profile_path>`.
use std::{fs, future::Future, process::ExitCode};

mod apply;
mod diff;
mod error;
mod git;
mod merge;
mod patch;
mod path;
mod plan;
mod render;
mod source;
mod tree;

pub use apply::apply;
pub use diff::{
    ALLOWED_GROUP, BASE_SET_GROUP, NameChanges, ProfileDiff, Report, SCHEMA as DIFF_SCHEMA, Status,
    compare, diff, name_groups,
};
pub use error::ExportError;
pub use git::{Commit, DEFAULT_EMAIL, DEFAULT_NAME};
pub use merge::merge;
pub use patch::{
    ManifestContainer, ManifestWorkload, PatchContainer, WorkloadPatch, apply_configuration,
    json_patch, kustomization, parse_patch, pod_spec_pointer, strategic_merge_patch,
};
pub use path::{LOCALHOST_DIR, localhost_profile, profile_path, spec_profile_path, workload_dir};
pub use plan::{
    Base, Entry, JSON_PATCH_FILE, KUSTOMIZATION_FILE, PATCH_FILE, Plan, PlanOptions,
    is_profile_file, plan,
};
pub use render::{check_spec, merge_spec, render_profile, spec_profile};
pub use source::{Filter, file_entries, read_base, read_documents, recording_entry};
pub use tree::{MANIFEST_FILE, Written, read_manifest};

use crate::{
    cli::ExportArgs,
    error::{Error, Result},
    output::write_stdout,
};

/// Runs `future` to completion on a runtime of its own.
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, ExportError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ExportError::Runtime { source })?;
    Ok(runtime.block_on(future))
}

/// `syscensus export`: reads the profiles, writes the export directory,
/// and commits and pushes it if asked to.
pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let filter = Filter {
        namespace: args.namespace.clone(),
        recording: args.recording.clone(),
    };
    let entries = if args.from.is_empty() {
        block_on(async {
            let client = source::client().await?;
            source::cluster_entries(&client, &filter).await
        })??
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
    let plan = plan(entries, base.as_ref(), &PlanOptions { spo: args.spo })?;
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
            Some(commit) => out.push_str(&format!(
                "committed {}: {}\n",
                &commit.id[..commit.id.len().min(12)],
                commit.summary
            )),
            None => out.push_str("nothing to commit: the repository holds this export\n"),
        }
    }
    if let Some(remote) = &args.push {
        let branch = git::push(&args.to, remote)?;
        out.push_str(&format!("pushed {branch} to {remote}\n"));
    }
    write_stdout(out.as_bytes()).map_err(|source| Error::System {
        what: "cannot write to stdout".to_owned(),
        source,
    })?;
    Ok(ExitCode::SUCCESS)
}
