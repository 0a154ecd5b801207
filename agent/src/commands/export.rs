//! `syscensus export`: the recorded profiles to a directory for review in
//! git, with the objects that install them on production nodes and the
//! patches that make the workloads use them; commits and pushes it if asked
//! to.
use std::{fs, path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{ClusterArgs, Output, OutputError, block_on, json_line, write_stdout};
use crate::{
    export::{
        self, ExportError, Filter, Installer, PlanOptions, cluster_entries, denial_reports,
        file_entries, git, is_profile_file, plan, read_base, write,
    },
    localhost,
};

/// The version of the JSON report (`export -o json`); fields are only ever
/// added.
pub const SCHEMA: &str = "syscensus.io/export/v1";

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

/// Who installs the profiles in the cluster the export goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum For {
    /// syscensus's agents (`agent` or `agent --install-only`): a
    /// LocalhostProfile beside each profile; patches point at
    /// syscensus/<namespace>/<kind>-<workload>/<container>.json.
    Syscensus,
    /// The Security Profiles Operator 0.9 and later: a cluster-scoped
    /// SeccompProfile beside each profile; patches point at
    /// operator/<name>.json.
    Spo,
    /// The Security Profiles Operator before 0.9: a namespaced
    /// SeccompProfile (v1beta1); patches point at
    /// operator/<namespace>/<name>.json.
    SpoNamespaced,
}

/// What a syscall outside an exported profile does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportDefaultAction {
    /// Fail with EPERM: the profile is enforced.
    Errno,
    /// Allow and log it (`SCMP_ACT_LOG`): complain mode.
    Log,
}

/// Options of `syscensus export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What a syscall outside a profile does: errno (enforce: it fails
    /// with EPERM) or log (complain mode, for a canary: it runs, the kernel
    /// logs it, and the agent reports it as a refusal with how=log).
    #[arg(long, value_enum, default_value_t = ExportDefaultAction::Errno)]
    pub default_action: ExportDefaultAction,
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
    /// Who installs the profiles where the export is applied: the objects
    /// written for it go into the kustomize Component with the patches.
    #[arg(long = "for", value_enum, default_value_t = For::Syscensus, value_name = "INSTALLER")]
    pub installer: For,
    /// Also write Security Profiles Operator SeccompProfile objects
    /// (<container>.spo.yaml), outside the Component.
    #[arg(long)]
    pub spo: bool,
    /// Commit the export to the git repository DIR lies in, when it changed,
    /// with the syscalls added and removed per container in the message.
    /// The commit is made with the `git` command: your identity, hooks and
    /// commit signing apply.
    #[arg(long)]
    pub git: bool,
    /// Commit on this branch (made from HEAD if it does not exist) instead
    /// of the checked-out one, for review; the work tree and HEAD are left
    /// as they are.
    #[arg(long, value_name = "BRANCH", requires = "git")]
    pub branch: Option<String>,
    /// Push the branch committed on to this remote (a remote's name, a URL
    /// or a path) with the `git` command: https and ssh remotes with your
    /// credentials.
    #[arg(long, value_name = "REMOTE", requires = "git")]
    pub push: Option<String>,
    /// The report's format: text, or JSON (schema syscensus.io/export/v1).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// A profile file of the export.
#[derive(Debug, Serialize)]
struct ProfileFile {
    path: String,
    sha256: String,
}

/// What a push did.
#[derive(Debug, Serialize)]
struct Pushed {
    remote: String,
    branch: String,
}

/// The JSON report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    schema: &'static str,
    dir: String,
    installer: For,
    profiles: usize,
    workloads: usize,
    profile_files: Vec<ProfileFile>,
    written: Vec<String>,
    removed: Vec<String>,
    unchanged: usize,
    warnings: Vec<String>,
    commit: Option<export::Commit>,
    pushed: Option<Pushed>,
}

impl Serialize for For {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            For::Syscensus => "syscensus",
            For::Spo => "spo",
            For::SpoNamespaced => "spo-namespaced",
        })
    }
}

/// Reads the profiles, writes the export directory, and commits and pushes
/// it if asked to.
pub fn export(args: ExportArgs) -> Result<ExitCode, Error> {
    let filter = Filter {
        namespace: args.namespace.clone(),
        recording: args.recording.clone(),
    };
    let entries = if args.from.is_empty() {
        let connection = args.cluster.connection();
        block_on(async {
            let client = connection.client().await?;
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
    let installer = match args.installer {
        For::Syscensus => Installer::Syscensus,
        For::Spo => Installer::Spo,
        For::SpoNamespaced => Installer::SpoNamespaced,
    };
    let mut denials = Vec::new();
    for path in &args.with_denials {
        denials.extend(denial_reports(path)?);
    }
    let plan = plan(
        entries,
        base.as_ref(),
        &PlanOptions {
            spo: args.spo,
            installer,
            denials,
            complain: args.default_action == ExportDefaultAction::Log,
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

    // On another branch than the checked-out one, the export goes into
    // that branch's commit only: the work tree (whose branch is not the
    // one reviewed) is left as it is.
    let elsewhere = args.git && git::is_other_branch(&args.to, args.branch.as_deref())?;
    let (written, mut out) = if elsewhere {
        let out = format!(
            "exported {} profile(s) of {} workload(s) to {} on branch {}; the work tree is left as it is\n",
            plan.profiles,
            plan.workloads,
            args.to.display(),
            args.branch.as_deref().unwrap_or_default(),
        );
        (write::Written::default(), out)
    } else {
        let written = write::write(&args.to, &plan)?;
        let out = format!(
            "exported {} profile(s) of {} workload(s) to {}: {} file(s) written, {} removed, {} unchanged\n",
            plan.profiles,
            plan.workloads,
            args.to.display(),
            written.written.len(),
            written.removed.len(),
            written.unchanged
        );
        (written, out)
    };
    let mut commit = None;
    if args.git {
        match git::commit(&args.to, &plan, &written, args.branch.as_deref())? {
            Some(made) => {
                out.push_str(&format!(
                    "committed {}{}: {}\n",
                    &made.id[..made.id.len().min(12)],
                    made.branch
                        .as_ref()
                        .map(|b| format!(" on {b}"))
                        .unwrap_or_default(),
                    made.summary
                ));
                commit = Some(made);
            }
            None => out.push_str("nothing to commit: the repository holds this export\n"),
        }
    }
    let mut pushed = None;
    if let Some(remote) = &args.push {
        let branch = git::push(&args.to, remote, args.branch.as_deref())?;
        out.push_str(&format!("pushed {branch} to {remote}\n"));
        pushed = Some(Pushed {
            remote: remote.clone(),
            branch,
        });
    }
    let text = match args.output {
        Output::Text => out,
        Output::Json => json_line(&Report {
            schema: SCHEMA,
            dir: args.to.display().to_string(),
            installer: args.installer,
            profiles: plan.profiles,
            workloads: plan.workloads,
            profile_files: plan
                .files
                .iter()
                .filter(|(p, _)| is_profile_file(p))
                .map(|(path, content)| ProfileFile {
                    path: path.clone(),
                    sha256: localhost::sha256_hex(content.as_bytes()),
                })
                .collect(),
            written: written.written,
            removed: written.removed,
            unchanged: written.unchanged,
            warnings: plan.warnings,
            commit,
            pushed,
        }),
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
