//! `syscensus run`: runs a command under a seccomp profile.
//!
//! The profile is read and compiled, the command resolved on PATH and its
//! arguments and environment prepared, all before the filter is installed:
//! after it, syscensus makes one syscall, execve(2), which replaces it with
//! the command (so the command's exit status is syscensus's). Only if execve
//! fails does syscensus write an error (write(2)) and exit (exit_group(2)),
//! which the profile may also deny.
use std::{
    env,
    ffi::{CString, OsStr, OsString},
    io,
    os::unix::ffi::{OsStrExt as _, OsStringExt as _},
    path::{Path, PathBuf},
    process::ExitCode,
    ptr,
};

use clap::Args;

use super::ExecError;
use crate::{
    profile::{Profile, ProfileError},
    seccomp::{self, SeccompError},
    syscalls::Arch,
};

/// `syscensus run` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The profile to enforce. Docker `caps` conditions are evaluated
    /// against syscensus's own effective capabilities, `minKernel` against
    /// the running kernel.
    #[arg(short, long)]
    pub profile: PathBuf,
    /// Which object to use when the file holds several SPO profiles
    /// (`metadata.name`).
    #[arg(long)]
    pub name: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// PATH when the environment has none: glibc's execvp default.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Loads the profile, installs it as this process's seccomp filter and execs
/// the command.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let profile = Profile::load(&args.profile, args.name.as_deref())?;
    let host = Arch::native();
    let program = seccomp::compile(&profile, host)?;
    let flags = seccomp::flags(&profile)?;
    check_execve(&program, host)?;

    let Some(command) = args.command.first() else {
        // clap requires the command; nothing to run otherwise.
        return Ok(ExitCode::SUCCESS);
    };
    let path = resolve(command, env::var_os("PATH").as_deref())?;
    let exec = Exec::new(&path, &args.command, env::vars_os())?;
    tracing::debug!(
        profile = %args.profile.display(),
        command = %path.display(),
        instructions = program.len(),
        flags,
        "installing the seccomp filter"
    );

    // Rust ignores SIGPIPE; an ignored signal stays ignored across execve,
    // so give the command the default disposition, as a shell would.
    // SAFETY: setting a signal's disposition to SIG_DFL has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    seccomp::install(&program, flags)?;
    let source = exec.exec();
    Err(exec_error(command, source).into())
}

/// Fails unless the filter lets the host's execve through: without it the
/// command could not start, and the failure would look like the command's.
fn check_execve(program: &[libc::sock_filter], host: Arch) -> Result<(), SeccompError> {
    let Some(verdict) = seccomp::verdict_for(program, host, "execve") else {
        // The syscall table does not know execve: nothing to check against.
        return Ok(());
    };
    let value = verdict.map_err(|e| SeccompError::Assemble {
        detail: e.to_string(),
    })?;
    match value & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG => Ok(()),
        _ => Err(SeccompError::ExecveBlocked {
            arch: host,
            verdict: seccomp::describe(value),
        }),
    }
}

/// The executable `command` names: itself if it has a slash, else the first
/// executable file of that name on `path_var` (like execvp(3)).
fn resolve(command: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    let name = || command.to_string_lossy().into_owned();
    if command.as_bytes().contains(&b'/') {
        let path = PathBuf::from(command);
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ExecError::NotFound { command: name() })
            }
            Err(source) => Err(ExecError::NotExecutable {
                command: name(),
                source,
            }),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied = None;
    for dir in env::split_paths(path_var) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(command);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                denied.get_or_insert(e);
            }
        }
    }
    Err(match denied {
        Some(source) => ExecError::NotExecutable {
            command: name(),
            source,
        },
        None => ExecError::NotFound { command: name() },
    })
}

/// Whether `path` is a file this process may execute.
fn executable(path: &Path) -> io::Result<()> {
    let metadata = path.metadata()?;
    if metadata.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c_path` is a valid NUL-terminated string.
    if unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn exec_error(command: &OsStr, source: io::Error) -> ExecError {
    let command = command.to_string_lossy().into_owned();
    if source.kind() == io::ErrorKind::NotFound {
        ExecError::NotFound { command }
    } else {
        ExecError::NotExecutable { command, source }
    }
}

/// An execve(2) call prepared in advance, so that making it allocates
/// nothing and makes no other syscall.
struct Exec {
    path: CString,
    /// Owners of the strings `argv` and `envp` point into.
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Exec {
    fn new(
        path: &Path,
        args: &[OsString],
        vars: impl Iterator<Item = (OsString, OsString)>,
    ) -> Result<Exec, ExecError> {
        let invalid = |what: &OsStr| ExecError::NotExecutable {
            command: what.to_string_lossy().into_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"),
        };
        let c_string = |s: &OsStr| CString::new(s.as_bytes().to_vec()).map_err(|_| invalid(s));
        let path = c_string(path.as_os_str())?;
        let argv_strings: Vec<CString> = args
            .iter()
            .map(|a| c_string(a))
            .collect::<Result<_, ExecError>>()?;
        let env_strings: Vec<CString> = vars
            .map(|(key, value)| {
                let mut entry = key.into_vec();
                entry.push(b'=');
                entry.extend(value.into_vec());
                CString::new(entry).map_err(|_| invalid(OsStr::new("environment")))
            })
            .collect::<Result<_, ExecError>>()?;
        let argv = argv_strings
            .iter()
            .map(|s| s.as_ptr())
            .chain([ptr::null()])
            .collect();
        let envp = env_strings
            .iter()
            .map(|s| s.as_ptr())
            .chain([ptr::null()])
            .collect();
        let mut strings = argv_strings;
        strings.extend(env_strings);
        Ok(Exec {
            path,
            _strings: strings,
            argv,
            envp,
        })
    }

    /// Replaces the process with the command; returns only on failure.
    fn exec(&self) -> io::Error {
        // SAFETY: `path` is NUL-terminated; `argv` and `envp` are
        // NULL-terminated arrays of pointers into strings `self` owns.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn resolves_commands_on_path() {
        let found = resolve(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin"))).unwrap();
        assert_eq!(found, PathBuf::from("/bin/sh"));
        assert!(matches!(
            resolve(OsStr::new("no-such-command-here"), Some(OsStr::new("/bin"))),
            Err(ExecError::NotFound { .. })
        ));
        assert!(matches!(
            resolve(OsStr::new("/no/such/file"), None),
            Err(ExecError::NotFound { .. })
        ));
    }

    #[test]
    fn directories_and_plain_files_are_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            resolve(dir.path().as_os_str(), None),
            Err(ExecError::NotExecutable { .. })
        ));
        let file = dir.path().join("data");
        std::fs::write(&file, "x").unwrap();
        // Root may execute any file with an execute bit; this one has none.
        assert!(matches!(
            resolve(file.as_os_str(), None),
            Err(ExecError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve(OsStr::new("data"), Some(dir.path().as_os_str())),
            Err(ExecError::NotExecutable { .. })
        ));
    }
}
