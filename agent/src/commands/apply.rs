//! `syscensus apply DIR`: makes the live workloads use the profiles of an
//! export, once every Node they may run on has them installed.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{OutputError, block_on, write_stdout};
use crate::{apply, export::ExportError};

/// `syscensus apply` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] ExportError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("failed to start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Options of `syscensus apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The export directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Print what would change (each container's seccompProfile before and
    /// after) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Patch even where the profile is not installed on every matching Node
    /// (Pods scheduled there fail to start until it is).
    #[arg(long)]
    pub force_uninstalled: bool,
}

/// Applies the export in `args.dir`.
pub fn apply(args: ApplyArgs) -> Result<ExitCode, Error> {
    let export = apply::read_export(&args.dir)?;
    let outcome = block_on(apply::apply(export, args.dry_run, args.force_uninstalled))
        .map_err(Error::Runtime)??;
    write_stdout(outcome.report.as_bytes())?;
    match outcome.refused {
        Some(refusal) => Err(refusal.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}
