//! The `git` command's side of an export's commit: making the commit (on
//! HEAD's branch, or on another one in a temporary work tree) and pushing
//! it, as the user's own `git commit` and `git push` would.
use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use git2::Repository;

use super::{ExportError, open};

/// Runs `git ARGS` in `dir` with `env`, and fails with its stderr.
pub(super) fn git(
    dir: &Path,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    what: &str,
) -> Result<Output, ExportError> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .map_err(|source| ExportError::GitCommand {
            what: what.to_owned(),
            message: format!("cannot run git: {source}; install git, or drop --git"),
        })?;
    if !output.status.success() {
        return Err(ExportError::GitCommand {
            what: what.to_owned(),
            message: last_lines(&output.stderr),
        });
    }
    Ok(output)
}

/// The last lines of a command's error output, on one line.
pub(super) fn last_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    crate::profile::excerpt(&tail, 400)
}

/// The `-c` options that give git an identity when the user's
/// configuration has none (as commits made with libgit2 had).
pub(super) fn identity(defaults: bool) -> Vec<&'static OsStr> {
    if defaults {
        [
            "-c",
            "user.name=syscensus",
            "-c",
            "user.email=syscensus@localhost",
        ]
        .map(OsStr::new)
        .to_vec()
    } else {
        Vec::new()
    }
}

/// The message in a file for `git commit -F` (a hook may rewrite it).
pub(super) fn message_file(message: &str) -> Result<tempfile::NamedTempFile, ExportError> {
    let mut file = tempfile::NamedTempFile::new()
        .map_err(ExportError::write(Path::new("a temporary file")))?;
    std::io::Write::write_all(&mut file, message.as_bytes())
        .map_err(ExportError::write(file.path()))?;
    Ok(file)
}

/// The commit HEAD names now.
pub(super) fn rev_parse(dir: &Path, rev: &str) -> Result<String, ExportError> {
    let output = git(
        dir,
        &[OsStr::new("rev-parse"), OsStr::new(rev)],
        &[],
        "read the new commit",
    )?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Commits `tree` on HEAD's branch with `git commit` and an index of its
/// own, so that what else is staged stays out of the commit.
pub(super) fn commit_here(
    repo: &Repository,
    workdir: &Path,
    tree: git2::Oid,
    message: &str,
    defaults: bool,
) -> Result<String, ExportError> {
    let index_dir = tempfile::tempdir_in(repo.path()).map_err(ExportError::write(repo.path()))?;
    let index = index_dir.path().join("index");
    let env = [("GIT_INDEX_FILE", index.as_os_str())];
    let tree = tree.to_string();
    git(
        workdir,
        &[OsStr::new("read-tree"), OsStr::new(&tree)],
        &env,
        "stage the export",
    )?;
    let file = message_file(message)?;
    let mut args = identity(defaults);
    args.extend([
        OsStr::new("commit"),
        OsStr::new("--quiet"),
        OsStr::new("--cleanup=verbatim"),
        OsStr::new("-F"),
        file.path().as_os_str(),
    ]);
    git(workdir, &args, &env, "commit the export")?;
    rev_parse(workdir, "HEAD")
}

/// Commits `tree` on `branch` (made from HEAD if it does not exist), which
/// is not checked out here, with `git commit` in a temporary work tree of
/// that branch, so that hooks see the files of the commit.
pub(super) fn commit_on_branch(
    workdir: &Path,
    branch: &str,
    exists: bool,
    tree: git2::Oid,
    message: &str,
    defaults: bool,
) -> Result<String, ExportError> {
    let parent =
        tempfile::tempdir().map_err(ExportError::write(Path::new("a temporary directory")))?;
    let path: PathBuf = parent.path().join("worktree");
    let mut add: Vec<&OsStr> = ["worktree", "add", "--quiet"].map(OsStr::new).to_vec();
    if exists {
        add.extend([path.as_os_str(), OsStr::new(branch)]);
    } else {
        add.extend([
            OsStr::new("-b"),
            OsStr::new(branch),
            path.as_os_str(),
            OsStr::new("HEAD"),
        ]);
    }
    git(
        workdir,
        &add,
        &[],
        &format!("check out branch {branch} in a temporary work tree"),
    )?;
    let result = (|| {
        let tree = tree.to_string();
        git(
            &path,
            &["read-tree", "-u", "--reset", &tree].map(OsStr::new),
            &[],
            "stage the export",
        )?;
        let file = message_file(message)?;
        let mut args = identity(defaults);
        args.extend([
            OsStr::new("commit"),
            OsStr::new("--quiet"),
            OsStr::new("--cleanup=verbatim"),
            OsStr::new("-F"),
            file.path().as_os_str(),
        ]);
        git(&path, &args, &[], &format!("commit the export on {branch}"))?;
        rev_parse(&path, "HEAD")
    })();
    let _ = git(
        workdir,
        &[
            OsStr::new("worktree"),
            OsStr::new("remove"),
            OsStr::new("--force"),
            path.as_os_str(),
        ],
        &[],
        "remove the temporary work tree",
    );
    result
}

/// Pushes `branch` (else the current branch) of the repository holding
/// `dir` to `remote` (a remote's name, a URL, or a path), with the `git`
/// command: the user's transports, credentials and pre-push hook. Returns
/// the branch's name.
pub fn push(dir: &Path, remote: &str, branch: Option<&str>) -> Result<String, ExportError> {
    let (repo, _) = open(dir)?;
    let branch = match branch {
        Some(name) => name.to_owned(),
        None => {
            let head = repo.head().map_err(ExportError::git("read HEAD"))?;
            if !head.is_branch() {
                return Err(ExportError::DetachedHead);
            }
            head.shorthand().unwrap_or_default().to_owned()
        }
    };
    if repo.find_remote(remote).is_err()
        && !remote.contains('/')
        && !remote.contains(':')
        && !Path::new(remote).exists()
    {
        return Err(ExportError::NoRemote {
            remote: remote.to_owned(),
        });
    }
    let workdir = repo.workdir().unwrap_or(dir).to_path_buf();
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let output = Command::new("git")
        .current_dir(&workdir)
        .args(["push", "--porcelain", "--", remote, &refspec])
        .output()
        .map_err(|source| ExportError::GitCommand {
            what: format!("push {branch} to {remote}"),
            message: format!("cannot run git: {source}; install git"),
        })?;
    // `--porcelain` prints `!<tab>ref<tab>[rejected] (reason)` for a ref
    // the remote refused.
    let stdout = String::from_utf8_lossy(&output.stdout);
    if let Some(line) = stdout.lines().find(|l| l.starts_with('!')) {
        let reason = line.split('\t').nth(2).unwrap_or(line).to_owned();
        return Err(ExportError::Rejected {
            remote: remote.to_owned(),
            branch,
            reason,
        });
    }
    if !output.status.success() {
        return Err(ExportError::GitCommand {
            what: format!("push {branch} to {remote}"),
            message: last_lines(&output.stderr),
        });
    }
    Ok(branch)
}
