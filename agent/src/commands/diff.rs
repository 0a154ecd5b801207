//! `syscensus diff A B`: the syscalls two profiles, or two directories of
//! profiles, add and remove; exits 0 when they are equal, 1 when they
//! differ.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{OutputError, write_stdout};
use crate::diff::{DiffError, report, text};

/// `syscensus diff` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Options of `syscensus diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old profile or directory.
    pub a: PathBuf,
    /// The new profile or directory.
    pub b: PathBuf,
    /// Print JSON (schema `syscensus.io/diff/v1`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Compares A and B and prints the differences, as text or JSON.
pub fn diff(args: DiffArgs) -> Result<ExitCode, Error> {
    let report = report(&args.a, &args.b)?;
    let out = if args.json {
        #[expect(
            clippy::unwrap_used,
            reason = "serializing plain data to a String cannot fail"
        )]
        let mut text = serde_json::to_string_pretty(&report).unwrap();
        text.push('\n');
        text
    } else {
        report.profiles.iter().map(text).collect()
    };
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::from(u8::from(!report.equal)))
}
