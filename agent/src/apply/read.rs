//! Reading an export directory: each workload's patch with the profiles it
//! names and who installs them.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use serde_json::Value;

use crate::{
    export::{ExportError, PATCH_FILE, WorkloadPatch, parse_patch, read_documents, read_manifest},
    localhost::{self, usage::syscensus_relative},
};

/// Who installs a profile on the nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Installer {
    /// syscensus's agents, from LocalhostProfiles.
    Syscensus,
    /// The Security Profiles Operator, from this SeccompProfile.
    Spo {
        api_version: String,
        name: String,
        namespace: Option<String>,
        spec: Value,
    },
}

/// A container of an exported workload, with its profile file's digest.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// The path inside the export directory.
    pub(super) relative: String,
    pub(super) sha256: String,
    pub(super) installer: Installer,
}

/// A workload's patch, and its containers' profiles by container name.
pub type Exported = (WorkloadPatch, BTreeMap<String, Wanted>);

pub(super) fn parse_error(path: &Path, message: String) -> ExportError {
    ExportError::Parse {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads the patches of the export in `dir`, and each profile's SHA-256.
/// A container's profile is `<container>.json` beside its workload's
/// patch; with the Security Profiles Operator's path, its SeccompProfile is
/// `<container>.seccompprofile.yaml`.
pub fn read_export(dir: &Path) -> Result<Vec<Exported>, ExportError> {
    let manifest = read_manifest(dir)?.ok_or_else(|| ExportError::NotAnExport {
        dir: dir.to_path_buf(),
    })?;
    let mut out = Vec::new();
    for relative in manifest
        .iter()
        .filter(|p| p.rsplit('/').next() == Some(PATCH_FILE))
    {
        let path = dir.join(relative);
        let text = fs::read_to_string(&path).map_err(ExportError::read(&path))?;
        let patch = parse_patch(&text, &path)?;
        let workload_dir = relative.rsplit_once('/').map_or("", |(d, _)| d);
        let mut wanted = BTreeMap::new();
        for c in &patch.containers {
            let inside = if workload_dir.is_empty() {
                format!("{}.json", c.name)
            } else {
                format!("{workload_dir}/{}.json", c.name)
            };
            if !manifest.contains(&inside) {
                return Err(parse_error(
                    &path,
                    format!(
                        "container {}: {inside} is not a file of this export",
                        c.name
                    ),
                ));
            }
            let installer = if let Some(rest) = syscensus_relative(&c.localhost_profile) {
                if rest != inside {
                    return Err(parse_error(
                        &path,
                        format!(
                            "container {}: localhostProfile {:?} is not a profile of this export",
                            c.name, c.localhost_profile
                        ),
                    ));
                }
                Installer::Syscensus
            } else if c.localhost_profile.starts_with("operator/") {
                spo_object(dir, &manifest, &inside, &path, &c.name)?
            } else {
                return Err(parse_error(
                    &path,
                    format!(
                        "container {}: localhostProfile {:?} is neither syscensus's (syscensus/...) nor the Security Profiles Operator's (operator/...)",
                        c.name, c.localhost_profile
                    ),
                ));
            };
            let file = dir.join(&inside);
            let bytes = fs::read(&file).map_err(ExportError::read(&file))?;
            wanted.insert(
                c.name.clone(),
                Wanted {
                    relative: inside,
                    sha256: localhost::sha256_hex(&bytes),
                    installer,
                },
            );
        }
        out.push((patch, wanted));
    }
    Ok(out)
}

/// The SeccompProfile object exported beside `profile` (`<container>.json`).
pub(super) fn spo_object(
    dir: &Path,
    manifest: &BTreeSet<String>,
    profile: &str,
    patch: &Path,
    container: &str,
) -> Result<Installer, ExportError> {
    let object = format!("{}.seccompprofile.yaml", profile.trim_end_matches(".json"));
    if !manifest.contains(&object) {
        return Err(parse_error(
            patch,
            format!(
                "container {container}: the Security Profiles Operator's profile needs its object {object}, which this export lacks"
            ),
        ));
    }
    let path = dir.join(&object);
    let document = read_documents(&path)?
        .into_iter()
        .next()
        .ok_or_else(|| parse_error(&path, "empty".into()))?;
    let text = |pointer: &str| document.pointer(pointer).and_then(Value::as_str);
    let (Some(api_version), Some(name)) = (text("/apiVersion"), text("/metadata/name")) else {
        return Err(parse_error(
            &path,
            "not a SeccompProfile object written by syscensus export".into(),
        ));
    };
    Ok(Installer::Spo {
        api_version: api_version.to_owned(),
        name: name.to_owned(),
        namespace: text("/metadata/namespace").map(str::to_owned),
        spec: document.get("spec").cloned().unwrap_or(Value::Null),
    })
}
