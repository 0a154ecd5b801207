//! Writing an export directory: only files whose content changed are
//! rewritten (atomically), and files an earlier export wrote that this one
//! does not are removed, so that a git diff of the directory shows exactly
//! what changed. Which files syscensus wrote is kept in `.syscensus-export`;
//! other files are never touched, nor overwritten.
use std::{
    collections::BTreeSet,
    fs, io,
    path::{Component, Path},
};

use super::{ExportError, plan::Plan};
use crate::output::write_atomic;

/// The list of files an export wrote, at the top of the export directory.
pub const MANIFEST_FILE: &str = ".syscensus-export";

const MANIFEST_HEADER: &str =
    "# Files written by `syscensus export`; it removes those it no longer writes.\n";

/// Whether `path` is a plain relative path that stays inside a directory.
fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The paths a manifest lists (`origin` names it in errors).
pub fn parse_manifest(text: &str, origin: &Path) -> Result<BTreeSet<String>, ExportError> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !is_inside(line) {
            return Err(ExportError::Manifest {
                path: origin.to_path_buf(),
                line: i + 1,
            });
        }
        out.insert(line.to_owned());
    }
    Ok(out)
}

/// The manifest listing `paths`.
pub fn manifest_text<'a>(paths: impl IntoIterator<Item = &'a String>) -> String {
    let mut text = MANIFEST_HEADER.to_owned();
    for path in paths {
        text.push_str(path);
        text.push('\n');
    }
    text
}

/// The manifest of the export in `dir`; `None` when there is none.
pub fn read_manifest(dir: &Path) -> Result<Option<BTreeSet<String>>, ExportError> {
    let path = dir.join(MANIFEST_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => parse_manifest(&text, &path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExportError::Read { path, source: e }),
    }
}

/// What writing an export changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Files created or rewritten.
    pub written: Vec<String>,
    /// Files removed (written by an earlier export, not by this one).
    pub removed: Vec<String>,
    /// Files that already held the right content.
    pub unchanged: usize,
    /// The paths the previous export listed.
    pub previous: BTreeSet<String>,
}

/// Writes `plan` to `dir` (created if missing).
///
/// Fails, before writing anything, if a file the plan holds exists but was
/// not written by an earlier export (not in the manifest) and differs.
pub fn write(dir: &Path, plan: &Plan) -> Result<Written, ExportError> {
    fs::create_dir_all(dir).map_err(ExportError::write(dir))?;
    let previous = read_manifest(dir)?.unwrap_or_default();

    let mut changed = Vec::new();
    let mut unchanged = 0;
    for (relative, content) in &plan.files {
        let target = dir.join(relative);
        match fs::read(&target) {
            Ok(existing) if existing == content.as_bytes() => unchanged += 1,
            Ok(_) if !previous.contains(relative) => {
                return Err(ExportError::Foreign { path: target });
            }
            Ok(_) => changed.push(relative),
            Err(e) if e.kind() == io::ErrorKind::NotFound => changed.push(relative),
            Err(e) => {
                return Err(ExportError::Read {
                    path: target,
                    source: e,
                });
            }
        }
    }

    for relative in &changed {
        let target = dir.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(ExportError::write(parent))?;
        }
        write_atomic(&target, plan.files[*relative].as_bytes())
            .map_err(ExportError::write(&target))?;
    }

    let mut removed = Vec::new();
    for relative in previous.iter().filter(|p| !plan.files.contains_key(*p)) {
        let target = dir.join(relative);
        match fs::remove_file(&target) {
            Ok(()) => removed.push(relative.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ExportError::Write {
                    path: target,
                    source: e,
                });
            }
        }
        // Directories the export made and emptied go too; a directory that
        // still holds anything stays.
        let mut parent = target.parent();
        while let Some(p) = parent.filter(|p| *p != dir && p.starts_with(dir)) {
            if fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }

    let manifest = dir.join(MANIFEST_FILE);
    let text = manifest_text(plan.files.keys());
    if fs::read_to_string(&manifest).ok().as_deref() != Some(text.as_str()) {
        write_atomic(&manifest, text.as_bytes()).map_err(ExportError::write(&manifest))?;
    }
    Ok(Written {
        written: changed.into_iter().cloned().collect(),
        removed,
        unchanged,
        previous,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn manifests_never_leave_the_directory() {
        let origin = Path::new("m");
        let ok = parse_manifest(
            "# c\nshop/deployment-web/nginx.json\n\nkustomization.yaml\n",
            origin,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        for bad in ["../x", "/etc/passwd", "a/../../b", "./a", "a\\b"] {
            assert!(parse_manifest(bad, origin).is_err(), "{bad}");
        }
    }
}
