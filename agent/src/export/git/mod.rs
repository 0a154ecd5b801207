//! Committing an export to the git repository it lies in, and pushing it.
//!
//! The commit holds the export's files and nothing else: it is the tree of
//! the branch it goes on (HEAD's, or `--branch`'s) with the export's files
//! replaced and the ones it no longer writes removed, whatever else the
//! index holds (other staged changes stay staged, and uncommitted). Nothing
//! is committed when the tree would not change. The message says, per
//! container, which syscalls came and went since the export the branch
//! holds.
//!
//! libgit2 reads the repository and builds the tree; the `git` command
//! makes the commit and pushes, so that they go as the user's own would:
//! with their identity, hooks (pre-commit, commit-msg, post-commit,
//! pre-push), commit signing (`commit.gpgSign`, `gpg.format`), credential
//! helpers, and the https and ssh transports, which this build of libgit2
//! leaves out (the node agent's image needs no OpenSSL).
mod command;

use std::{collections::BTreeSet, path::Path};

use git2::{Index, IndexEntry, IndexTime, Repository};

pub use self::command::push;
use self::command::{commit_here, commit_on_branch};
use super::{
    ExportError,
    plan::{Plan, is_profile_file},
    write::{MANIFEST_FILE, Written, manifest_text, parse_manifest},
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    /// The commit's id, hex.
    pub id: String,
    /// The first line of its message.
    pub summary: String,
    /// The branch it is on (`None` on a detached HEAD).
    pub branch: Option<String>,
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

/// Whether committing on `branch` commits elsewhere than the checked-out
/// branch of the repository holding `dir`: the export then goes to that
/// branch only, and the work tree is left alone.
pub fn is_other_branch(dir: &Path, branch: Option<&str>) -> Result<bool, ExportError> {
    let Some(branch) = branch else {
        return Ok(false);
    };
    let (repo, _) = open(dir)?;
    Ok(current_branch(&repo).as_deref() != Some(branch))
}

/// Which branch a commit goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// HEAD's (the checked-out branch).
    Head,
    /// Another branch, which may not exist yet (it starts at HEAD).
    Branch { name: String, exists: bool },
}

/// Commits the export in `dir` (written from `plan`; `written` says what
/// the previous export listed) on HEAD's branch, or on `branch`. `None`
/// when the branch already holds exactly these files.
pub fn commit(
    dir: &Path,
    plan: &Plan,
    written: &Written,
    branch: Option<&str>,
) -> Result<Option<Commit>, ExportError> {
    let (repo, prefix) = open(dir)?;
    let current = current_branch(&repo);
    let target = match branch {
        None => Target::Head,
        Some(name) if current.as_deref() == Some(name) => Target::Head,
        Some(name) => {
            check_branch_name(name)?;
            Target::Branch {
                name: name.to_owned(),
                exists: repo.find_branch(name, git2::BranchType::Local).is_ok(),
            }
        }
    };
    let head = match &target {
        Target::Branch { name, exists: true } => Some(
            repo.find_branch(name, git2::BranchType::Local)
                .and_then(|b| b.get().peel_to_commit())
                .map_err(ExportError::git(format!("read branch {name}")))?,
        ),
        _ => head_commit(&repo)?,
    };
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

    let defaults = repo.signature().is_err();
    let workdir =
        repo.workdir()
            .map(Path::to_path_buf)
            .ok_or_else(|| ExportError::NotARepository {
                dir: dir.to_path_buf(),
            })?;
    let id = match &target {
        Target::Head => commit_here(&repo, &workdir, tree_id, &message, defaults)?,
        Target::Branch { name, exists } => {
            commit_on_branch(&workdir, name, *exists, tree_id, &message, defaults)?
        }
    };

    // The work tree holds what was committed on HEAD's branch: stage it,
    // so that `git status` shows the export clean.
    if target == Target::Head {
        let mut staged = repo.index().map_err(ExportError::git("read the index"))?;
        staged
            .read(true)
            .map_err(ExportError::git("read the index"))?;
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
    }

    Ok(Some(Commit {
        summary: message.lines().next().unwrap_or_default().to_owned(),
        branch: match &target {
            Target::Head => current,
            Target::Branch { name, .. } => Some(name.clone()),
        },
        id,
    }))
}

/// The checked-out branch's short name; `None` on a detached HEAD.
fn current_branch(repo: &Repository) -> Option<String> {
    match repo.head() {
        Ok(head) if head.is_branch() => head.shorthand().ok().map(str::to_owned),
        Ok(_) => None,
        // An unborn branch: HEAD names it.
        Err(_) => repo
            .find_reference("HEAD")
            .ok()
            .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned))
            .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_owned)),
    }
}

/// Fails unless `name` is a branch name git accepts.
fn check_branch_name(name: &str) -> Result<(), ExportError> {
    if git2::Branch::name_is_valid(name).unwrap_or(false) && !name.starts_with('-') {
        Ok(())
    } else {
        Err(ExportError::BranchName {
            name: crate::profile::excerpt(name, 80),
        })
    }
}
