//! `syscensus merge`: one profile that allows what any of the given
//! profiles allows (see [`Profile::union`]).
use std::process::ExitCode;

use super::ExportError;
use crate::{
    cli::{Format, MergeArgs},
    error::{Error, Result},
    output::{write_atomic, write_stdout},
    profile::{Profile, suggest_object_name},
};

/// Merges the profiles and writes the result.
pub fn merge(args: MergeArgs) -> Result<ExitCode> {
    let profiles = args
        .profiles
        .iter()
        .map(|p| Profile::load(p, None))
        .collect::<Result<Vec<_>, _>>()?;
    let Some((first, others)) = profiles.split_first() else {
        return Err(ExportError::Usage {
            message: "give at least one profile to merge".to_owned(),
        }
        .into());
    };
    let merged = first.union(others).map_err(|e| ExportError::Mismatch {
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
        Some(path) => write_atomic(path, text.as_bytes()).map_err(|source| Error::Output {
            path: path.clone(),
            source,
        })?,
        None => write_stdout(text.as_bytes()).map_err(|source| Error::System {
            what: "cannot write to stdout".to_owned(),
            source,
        })?,
    }
    Ok(ExitCode::SUCCESS)
}
