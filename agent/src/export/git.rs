//! Committing an export to the git repository it lies in, with libgit2, and
//! pushing the branch.
//!
//! The commit holds the export's files and nothing else: it is the HEAD
//! tree with the export's files replaced and the ones it no longer writes
//! removed, whatever else the index holds (other staged changes stay
//! staged, and uncommitted). Nothing is committed when the tree would not
//! change. The message says, per container, which syscalls came and went
//! since the export HEAD holds.
use std::{cell::RefCell, collections::BTreeSet, path::Path};

use git2::{Index, IndexEntry, IndexTime, PushOptions, RemoteCallbacks, Repository, Signature};

use super::{
    ExportError,
    plan::{Plan, is_profile_file},
    tree::{MANIFEST_FILE, Written, manifest_text, parse_manifest},
};
use crate::{
    diff::{self, Status},
    profile::Profile,
};

/// The author and committer when git's configuration names none.
pub const DEFAULT_NAME: &str = "syscensus";
/// The e-mail address that goes with [`DEFAULT_NAME`].
pub const DEFAULT_EMAIL: &str = "syscensus@localhost";

/// A commit made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The commit's id, hex.
    pub id: String,
    /// The first line of its message.
    pub summary: String,
}

/// The repository whose work tree holds `dir`, and `dir` relative to the
/// work tree (`/`-separated, empty for the top).
fn open(dir: &Path) -> Result<(Repository, String), ExportError> {
    let not_repo = || ExportError::NotARepository {
        dir: dir.to_path_buf(),
    };
    let repo = Repository::discover(dir).map_err(|_| not_repo())?;
    let workdir = repo.workdir().ok_or_else(not_repo)?;
    let workdir = workdir.canonicalize().map_err(ExportError::read(workdir))?;
    let dir_abs = dir.canonicalize().map_err(ExportError::read(dir))?;
    let prefix = dir_abs
        .strip_prefix(&workdir)
        .map_err(|_| not_repo())?
        .to_path_buf();
    let prefix = crate::localhost::slash_path(&prefix);
    Ok((repo, prefix))
}

/// Fails unless `dir` (which exists) lies in a git work tree.
pub fn check(dir: &Path) -> Result<(), ExportError> {
    open(dir).map(|_| ())
}

fn in_repo(prefix: &str, relative: &str) -> String {
    if prefix.is_empty() {
        relative.to_owned()
    } else {
        format!("{prefix}/{relative}")
    }
}

fn head_commit(repo: &Repository) -> Result<Option<git2::Commit<'_>>, ExportError> {
    match repo.head() {
        Ok(head) => head
            .peel_to_commit()
            .map(Some)
            .map_err(ExportError::git("read the HEAD commit")),
        Err(e)
            if matches!(
                e.code(),
                git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(ExportError::git("read HEAD")(e)),
    }
}

fn blob_text(repo: &Repository, tree: Option<&git2::Tree<'_>>, path: &str) -> Option<String> {
    let entry = tree?.get_path(Path::new(path)).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    String::from_utf8(blob.content().to_vec()).ok()
}

fn index_entry(path: String, id: git2::Oid, size: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100_644,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(size).unwrap_or(u32::MAX),
        id,
        flags: 0,
        flags_extended: 0,
        path: path.into_bytes(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The commit message: a summary line, then the changes per container.
pub fn message(diffs: &[diff::ProfileDiff]) -> String {
    let count = |s: Status| diffs.iter().filter(|d| d.status == s).count();
    let (added, changed, removed) = (
        count(Status::Added),
        count(Status::Changed),
        count(Status::Removed),
    );
    let mut parts = Vec::new();
    if added > 0 {
        parts.push(format!("{} added", plural(added, "profile", "profiles")));
    }
    if changed > 0 {
        parts.push(format!(
            "{} changed",
            plural(changed, "profile", "profiles")
        ));
    }
    if removed > 0 {
        parts.push(format!(
            "{} removed",
            plural(removed, "profile", "profiles")
        ));
    }
    if parts.is_empty() {
        return "syscensus export: patches updated\n".to_owned();
    }
    let sum = |f: fn(&diff::NameChanges) -> usize| -> usize {
        diffs.iter().flat_map(|d| d.syscalls.values()).map(f).sum()
    };
    let mut text = format!(
        "syscensus export: {} (+{} -{} syscalls)\n\n",
        parts.join(", "),
        sum(|n| n.added.len()),
        sum(|n| n.removed.len())
    );
    for d in diffs {
        text.push_str(&diff::text(d));
    }
    text
}

/// Commits the export in `dir` (written from `plan`; `written` says what
/// the previous export listed). `None` when the repository already holds
/// exactly these files.
pub fn commit(dir: &Path, plan: &Plan, written: &Written) -> Result<Option<Commit>, ExportError> {
    let (repo, prefix) = open(dir)?;
    let head = head_commit(&repo)?;
    let head_tree = head
        .as_ref()
        .map(git2::Commit::tree)
        .transpose()
        .map_err(ExportError::git("read the HEAD tree"))?;
    let manifest_path = in_repo(&prefix, MANIFEST_FILE);
    let committed: BTreeSet<String> = blob_text(&repo, head_tree.as_ref(), &manifest_path)
        .and_then(|t| parse_manifest(&t, Path::new(&manifest_path)).ok())
        .unwrap_or_default();

    let mut files: Vec<(String, String)> = plan
        .files
        .iter()
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect();
    files.push((MANIFEST_FILE.to_owned(), manifest_text(plan.files.keys())));
    let gone: Vec<&String> = committed
        .iter()
        .chain(&written.previous)
        .filter(|p| !plan.files.contains_key(*p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let mut index = Index::new().map_err(ExportError::git("make an index"))?;
    if let Some(tree) = &head_tree {
        index
            .read_tree(tree)
            .map_err(ExportError::git("read the HEAD tree"))?;
    }
    for (relative, content) in &files {
        let id = repo
            .blob(content.as_bytes())
            .map_err(ExportError::git(format!("store {relative}")))?;
        index
            .add(&index_entry(in_repo(&prefix, relative), id, content.len()))
            .map_err(ExportError::git(format!("stage {relative}")))?;
    }
    for relative in &gone {
        // Absent from HEAD when an earlier export was never committed.
        let _ = index.remove_path(Path::new(&in_repo(&prefix, relative)));
    }
    let tree_id = index
        .write_tree_to(&repo)
        .map_err(ExportError::git("write the tree"))?;
    if head_tree.as_ref().is_some_and(|t| t.id() == tree_id) {
        return Ok(None);
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(ExportError::git("read the new tree"))?;

    let profiles: BTreeSet<&String> = committed
        .iter()
        .chain(plan.files.keys())
        .filter(|p| is_profile_file(p))
        .collect();
    let mut diffs = Vec::new();
    for relative in profiles {
        let parse = |text: &str| Profile::parse(text, Path::new(relative), None).ok();
        let old = blob_text(&repo, head_tree.as_ref(), &in_repo(&prefix, relative))
            .and_then(|t| parse(&t));
        let new = plan.files.get(relative).and_then(|t| parse(t));
        let path = relative.trim_end_matches(".json");
        if let Some(d) = diff::compare(
            path,
            old.as_ref().map(|p| (relative.as_str(), p)),
            new.as_ref().map(|p| (relative.as_str(), p)),
        ) {
            diffs.push(d);
        }
    }
    let message = message(&diffs);

    let signature = repo
        .signature()
        .or_else(|_| Signature::now(DEFAULT_NAME, DEFAULT_EMAIL))
        .map_err(ExportError::git("make a signature"))?;
    let parents: Vec<&git2::Commit<'_>> = head.iter().collect();
    let id = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            &message,
            &tree,
            &parents,
        )
        .map_err(ExportError::git("commit the export"))?;

    // The work tree holds what was committed: stage it, so that `git
    // status` shows the export clean.
    let mut staged = repo.index().map_err(ExportError::git("read the index"))?;
    for (relative, _) in &files {
        staged
            .add_path(Path::new(&in_repo(&prefix, relative)))
            .map_err(ExportError::git(format!("stage {relative}")))?;
    }
    for relative in &gone {
        let _ = staged.remove_path(Path::new(&in_repo(&prefix, relative)));
    }
    staged
        .write()
        .map_err(ExportError::git("write the index"))?;

    Ok(Some(Commit {
        id: id.to_string(),
        summary: message.lines().next().unwrap_or_default().to_owned(),
    }))
}

/// Pushes the current branch of the repository holding `dir` to `remote`
/// (a remote's name, or a path or URL); returns the branch's name. Only
/// local repositories (paths and `file://` URLs) can be reached: syscensus
/// is built without https and ssh.
pub fn push(dir: &Path, remote: &str) -> Result<String, ExportError> {
    let (repo, _) = open(dir)?;
    let head = repo.head().map_err(ExportError::git("read HEAD"))?;
    if !head.is_branch() {
        return Err(ExportError::DetachedHead);
    }
    let refname = head.name().unwrap_or_default().to_owned();
    let branch = head.shorthand().unwrap_or_default().to_owned();
    let mut target = match repo.find_remote(remote) {
        Ok(r) => r,
        Err(_) if remote.contains('/') || remote.contains(':') => repo
            .remote_anonymous(remote)
            .map_err(ExportError::git(format!("open the remote {remote}")))?,
        Err(_) => {
            return Err(ExportError::NoRemote {
                remote: remote.to_owned(),
            });
        }
    };
    let rejected: RefCell<Option<String>> = RefCell::new(None);
    let mut callbacks = RemoteCallbacks::new();
    callbacks.push_update_reference(|name, status| {
        if let Some(status) = status {
            *rejected.borrow_mut() = Some(format!("{name}: {status}"));
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    target
        .push(&[format!("{refname}:{refname}")], Some(&mut options))
        .map_err(ExportError::git(format!("push {branch} to {remote}")))?;
    drop(options);
    if let Some(reason) = rejected.into_inner() {
        return Err(ExportError::Rejected {
            remote: remote.to_owned(),
            branch,
            reason,
        });
    }
    Ok(branch)
}
