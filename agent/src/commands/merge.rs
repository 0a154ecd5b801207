//! `syscensus merge`: one profile that allows what any of the given
//! profiles allows (see [`Profile::union`]).
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{Format, OutputError, write_stdout};
use crate::{
    output::write_atomic,
    profile::{Mismatch, Profile, ProfileError, suggest_object_name},
};

/// `syscensus merge` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("cannot merge {} and {}: {mismatch}; merge profiles that agree on it", a.display(), b.display())]
    Mismatch {
        a: PathBuf,
        b: PathBuf,
        mismatch: Mismatch,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Options of `syscensus merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The profiles (any format `run` reads).
    #[arg(required = true, value_name = "PROFILE")]
    pub profiles: Vec<PathBuf>,
    /// Write the result here (atomically) instead of to stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Profile format.
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    pub format: Format,
    /// `metadata.name` of an SPO object (default: from --output, else
    /// `merged`).
    #[arg(long)]
    pub name: Option<String>,
    /// `metadata.namespace` of an SPO object.
    #[arg(long)]
    pub namespace: Option<String>,
}

/// Merges the profiles and writes the result.
pub fn merge(args: MergeArgs) -> Result<ExitCode, Error> {
    let profiles = args
        .profiles
        .iter()
        .map(|p| Profile::load(p, None))
        .collect::<Result<Vec<_>, _>>()?;
    // clap requires at least one profile.
    let Some((first, others)) = profiles.split_first() else {
        return Ok(ExitCode::SUCCESS);
    };
    let merged = first.union(others).map_err(|e| Error::Mismatch {
        a: args.profiles[0].clone(),
        b: args.profiles[e.index + 1].clone(),
        mismatch: e.mismatch,
    })?;
    let text = match args.format {
        Format::Oci => merged.to_oci_json(),
        Format::Spo => {
            let name = args.name.clone().unwrap_or_else(|| {
                args.output
                    .as_deref()
                    .and_then(|o| o.file_stem())
                    .map(|s| suggest_object_name(&s.to_string_lossy()))
                    .unwrap_or_else(|| "merged".to_owned())
            });
            merged.to_spo_yaml(&name, args.namespace.as_deref())?
        }
    };
    match &args.output {
        Some(path) => write_atomic(path, text.as_bytes()).map_err(|source| OutputError {
            path: path.clone(),
            source,
        })?,
        None => write_stdout(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
