//! `syscensus apply DIR`: makes the live workloads use the profiles of an
//! export, once every Node they may run on has them installed.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{ClusterArgs, Output, OutputError, block_on, write_stdout};
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
    /// The report's format: text, or JSON (schema syscensus.io/apply/v1).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Applies the export in `args.dir`.
pub fn apply(args: ApplyArgs) -> Result<ExitCode, Error> {
    let export = apply::read_export(&args.dir)?;
    let connection = args.cluster.connection();
    let (report, refused) = block_on(async {
        let client = connection.client().await.map_err(ExportError::from)?;
        apply::apply(&client, export, args.dry_run, args.force_uninstalled).await
    })
    .map_err(Error::Runtime)??;
    let text = match args.output {
        Output::Text => report.text(),
        Output::Json => super::json_line(&report),
    };
    write_stdout(text.as_bytes())?;
    match refused {
        Some(refusal) => Err(refusal.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}
