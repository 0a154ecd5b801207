//! `syscensus record`: runs a command in a cgroup of its own, records every
//! syscall it and its descendants make from its exec on, and writes the
//! profile.
use std::{
    collections::BTreeSet,
    ffi::OsString,
    io::{IsTerminal as _, Write as _},
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, ExitStatus},
    sync::{
        atomic::{AtomicI32, Ordering},
        mpsc,
    },
    time::Duration,
};

use clap::{Args, ValueEnum};
use tracing::{info, warn};

use super::{ExecError, Format, NotRoot, OutputError};
use crate::{
    basesets::UnknownBaseSet,
    bpf::{BpfError, Counters, SessionKind, Snapshot, Tracer, TracerOptions},
    cgroup::{CgroupError, Hierarchy},
    container_recording::{Parts, SessionPolicy},
    output,
    profile::{Action, BuildOptions, Profile, ProfileError},
};

/// `syscensus record` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    NotRoot(#[from] NotRoot),
    #[error(transparent)]
    BaseSet(#[from] UnknownBaseSet),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Kernel(#[from] BpfError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{0}: choose a writable path with --output")]
    Output(#[from] OutputError),
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// What a syscall outside the profile does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DefaultAction {
    /// Fail with an errno (see --errno): enforce the profile.
    Errno,
    /// Allow and log it (complain mode, SCMP_ACT_LOG).
    Log,
    /// Kill the process.
    KillProcess,
    /// Kill the thread.
    KillThread,
    /// Send SIGSYS.
    Trap,
}

impl From<DefaultAction> for Action {
    fn from(value: DefaultAction) -> Self {
        match value {
            DefaultAction::Errno => Action::Errno,
            DefaultAction::Log => Action::Log,
            DefaultAction::KillProcess => Action::KillProcess,
            DefaultAction::KillThread => Action::KillThread,
            DefaultAction::Trap => Action::Trap,
        }
    }
}

/// Options shared by everything that writes a profile.
#[derive(Debug, Args)]
pub struct ProfileOptions {
    /// Profile format.
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    pub format: Format,
    /// What a syscall outside the profile does.
    #[arg(long, value_enum, default_value_t = DefaultAction::Errno)]
    pub default_action: DefaultAction,
    /// The errno a blocked syscall fails with (1 = EPERM).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..4096))]
    pub errno: u32,
    /// Runtime base set added to the profile: the syscalls whatever starts the
    /// workload needs after loading the filter (`syscensus` for `syscensus
    /// run`; `runc`, `runc-nnp`, `crun` for containers; `none`).
    #[arg(long, default_value = "syscensus")]
    pub base_set: String,
    /// `metadata.name` of an SPO object (default: the command's name).
    #[arg(long)]
    pub name: Option<String>,
    /// `metadata.namespace` of an SPO object.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Write the profile here (atomically) instead of to stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub profile: ProfileOptions,
    /// Do not show live progress on stderr, even when it is a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// How often the live progress line is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// The PID of the recorded command, for the signal forwarder.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Records a command.
pub fn record(args: RecordArgs) -> Result<ExitCode> {
    let base = crate::basesets::find(&args.profile.base_set)?;
    let profile_name = spo_name(&args.profile, &args.command[0]);
    if args.profile.format == Format::Spo {
        crate::profile::validate_object_name(&profile_name)?;
        if let Some(namespace) = &args.profile.namespace {
            crate::profile::validate_namespace(namespace)?;
        }
    }
    super::require_root("syscensus record")?;
    // Prove the output is writable before the command runs, so that a
    // recording is never made only to be lost.
    let output_file = match &args.output {
        Some(path) => Some(
            output::AtomicFile::create(path).map_err(|source| OutputError {
                path: path.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let hierarchy = Hierarchy::find()?;
    let mut tracer = Tracer::load(&TracerOptions {
        // One cgroup, its 32-bit rows, and the rows of the sessions running
        // at once (those that ended are freed at each tick).
        rows_capacity: 64,
        ..TracerOptions::default()
    })?;
    let cgroup =
        hierarchy.create_child_of_own(&format!("syscensus-record-{}", std::process::id()))?;
    tracer.mark(cgroup.id())?;

    let status = run_command(
        &args.command,
        cgroup.procs_file().as_path(),
        |elapsed_ticks| {
            if let Err(error) = tracer.reap() {
                warn!(%error, "cannot read the sessions");
            }
            if args.no_progress || !std::io::stderr().is_terminal() {
                return;
            }
            if let Ok(Some(snapshot)) = tracer.snapshot(cgroup.id()) {
                let _ = write!(
                    std::io::stderr().lock(),
                    "\rsyscensus: recording, {} syscalls seen ({:.1}s)\x1b[K",
                    snapshot.len(),
                    elapsed_ticks as f64 * PROGRESS_INTERVAL.as_secs_f64()
                );
            }
        },
    );
    if !args.no_progress && std::io::stderr().is_terminal() {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
    }
    tracer.reap()?;
    let snapshot = tracer.snapshot(cgroup.id())?.unwrap_or_default();
    let counters = tracer.counters()?;
    tracer.unmark(cgroup.id())?;
    drop(cgroup);
    drop(tracer);
    let status = status?;

    // Exec sessions into the command's cgroup are in the profile: they ran
    // where the command ran.
    let parts = Parts::of(&snapshot, &SessionPolicy::IncludeAll);
    for notice in notices(&snapshot, &counters, &parts) {
        let _ = writeln!(std::io::stderr().lock(), "syscensus: {notice}");
    }
    let census = parts.census;
    let profile = Profile::from_census(
        &census,
        base.as_ref(),
        &BuildOptions {
            default_action: args.profile.default_action.into(),
            errno_ret: args.profile.errno,
        },
    );
    let text = match args.profile.format {
        Format::Oci => profile.to_oci_json(),
        Format::Spo => profile.to_spo_yaml(&profile_name, args.profile.namespace.as_deref())?,
    };
    match (output_file, &args.output) {
        (Some(file), Some(path)) => file.commit(text.as_bytes()).map_err(|source| OutputError {
            path: path.clone(),
            source,
        })?,
        _ => super::write_stdout(text.as_bytes())?,
    }
    info!(syscalls = census.len(), status = %status, "recording written");
    Ok(exit_code_of(status))
}

/// What `record` tells on stderr about a recording, one line each: anything
/// that makes the profile incomplete, and what besides the command it holds.
pub fn notices(snapshot: &Snapshot, counters: &Counters, parts: &Parts) -> Vec<String> {
    let mut out = Vec::new();
    if !snapshot.recording {
        out.push(
            "the command never started recording (it was never exec'd in its cgroup): the profile is empty".to_owned(),
        );
    }
    if snapshot.member_lost || counters.members_full > 0 {
        out.push("processes of the command could not be tracked (the kernel's map of processes was full): their syscalls are missing from the profile".to_owned());
    }
    if snapshot.row_lost || counters.row_map_full > 0 {
        out.push(
            "syscalls were lost because the kernel's map of rows was full: the profile misses them"
                .to_owned(),
        );
    }
    if snapshot.out_of_range || counters.out_of_range > 0 {
        out.push(
            "syscalls with numbers outside the recorded range were made: they are not in the profile"
                .to_owned(),
        );
    }
    if snapshot.alias_lost || counters.alias_full > 0 {
        out.push("a cgroup made below the command's could not be tracked (the kernel's map was full): what ran in it is missing from the profile".to_owned());
    }
    for (kind, what) in [
        (SessionKind::Exec, "exec session"),
        (SessionKind::Hook, "hook"),
        (SessionKind::Unknown, "session of unknown kind"),
    ] {
        let sessions: Vec<_> = snapshot.sessions_of(kind).collect();
        let count: u64 = sessions.iter().map(|s| s.count).sum();
        if count == 0 {
            continue;
        }
        let commands: BTreeSet<String> = sessions
            .iter()
            .map(|s| match &s.argv {
                Some(argv) => format!("{argv:?}"),
                None => "(command line unknown)".to_owned(),
            })
            .collect();
        out.push(format!(
            "{count} {what}{} ran in the command's cgroup, from outside the command ({}): {} syscalls are in the profile",
            if count == 1 { "" } else { "s" },
            commands.into_iter().collect::<Vec<_>>().join(", "),
            if count == 1 { "its" } else { "their" },
        ));
    }
    if snapshot.outsiders {
        out.push("processes from outside the command made syscalls in its cgroup before exec'ing there, or without: those are not in the profile".to_owned());
    }
    if counters.events_lost > 0 && parts.unnamed_sessions > 0 {
        out.push(format!(
            "the command lines of {} sessions are unknown: the kernel's event buffer was full",
            parts.unnamed_sessions
        ));
    }
    out
}

/// The SPO object name: `--name`, else the command's file name made into a
/// valid Kubernetes name.
fn spo_name(options: &ProfileOptions, command: &OsString) -> String {
    if let Some(name) = &options.name {
        return name.clone();
    }
    let base = Path::new(command)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::profile::suggest_object_name(&base)
}

/// The exit code that reproduces the command's status, as shells do: the
/// exit status, or 128 + the signal number.
pub fn exit_code_of(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        (None, None) => ExitCode::FAILURE,
    }
}

extern "C" fn forward_signal(signal: libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

/// Sets `handler` for `signal`, returning the previous disposition.
fn set_signal(signal: libc::c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: installs a disposition; `forward_signal` only calls kill(2).
    unsafe { libc::signal(signal, handler) }
}

/// Starts `command` in the cgroup whose `cgroup.procs` is `procs`, calls
/// `tick` every [`PROGRESS_INTERVAL`] until it exits, and returns its status.
///
/// While it runs, SIGINT and SIGQUIT (which a terminal sends to the whole
/// foreground group) are left to the command, and SIGTERM and SIGHUP are
/// forwarded to it: either way the command ends and the profile is still
/// written.
fn run_command(
    command: &[OsString],
    procs: &Path,
    mut tick: impl FnMut(u64),
) -> Result<ExitStatus> {
    let program = &command[0];
    let procs_file = std::fs::OpenOptions::new()
        .write(true)
        .open(procs)
        .map_err(|source| Error::System {
            what: format!("cannot open {}", procs.display()),
            source,
        })?;
    let procs_fd = std::os::fd::AsRawFd::as_raw_fd(&procs_file);

    let mut cmd = Command::new(program);
    cmd.args(&command[1..]);
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (signal, write).
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            // Move this process into the recording cgroup; the exec that
            // follows starts the recording.
            let pid = b"0\n";
            if libc::write(procs_fd, pid.as_ptr().cast(), pid.len()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }

    let old_int = set_signal(libc::SIGINT, libc::SIG_IGN);
    let old_quit = set_signal(libc::SIGQUIT, libc::SIG_IGN);
    let spawned = cmd.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(source) => {
            set_signal(libc::SIGINT, old_int);
            set_signal(libc::SIGQUIT, old_quit);
            let name = String::from_utf8_lossy(program.as_bytes()).into_owned();
            return Err(match source.kind() {
                std::io::ErrorKind::NotFound => ExecError::NotFound { command: name },
                std::io::ErrorKind::PermissionDenied => ExecError::NotExecutable {
                    command: name,
                    source,
                },
                _ => ExecError::Spawn {
                    command: name,
                    source,
                },
            }
            .into());
        }
    };
    drop(procs_file);
    CHILD.store(child.id() as i32, Ordering::Relaxed);
    let handler = forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    let old_term = set_signal(libc::SIGTERM, handler);
    let old_hup = set_signal(libc::SIGHUP, handler);

    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = done_tx.send(());
        status
    });
    let mut ticks = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(PROGRESS_INTERVAL) {
        ticks += 1;
        tick(ticks);
    }
    let status = waiter
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("waiter thread panicked")));

    CHILD.store(0, Ordering::Relaxed);
    for (signal, old) in [
        (libc::SIGINT, old_int),
        (libc::SIGQUIT, old_quit),
        (libc::SIGTERM, old_term),
        (libc::SIGHUP, old_hup),
    ] {
        set_signal(signal, old);
    }
    status.map_err(|source| Error::System {
        what: "cannot wait for the recorded command".to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(name: Option<&str>) -> ProfileOptions {
        ProfileOptions {
            format: Format::Spo,
            default_action: DefaultAction::Errno,
            errno: 1,
            base_set: "none".into(),
            name: name.map(str::to_owned),
            namespace: None,
        }
    }

    #[test]
    fn spo_names_come_from_the_command() {
        assert_eq!(
            spo_name(&options(None), &"/usr/bin/My_Tool".into()),
            "my-tool"
        );
        assert_eq!(spo_name(&options(None), &"___".into()), "profile");
        assert_eq!(
            spo_name(&options(Some("given")), &"/bin/ls".into()),
            "given"
        );
    }

    #[test]
    fn notices_say_what_the_profile_holds_beyond_the_command() {
        let quiet = Snapshot {
            recording: true,
            ..Snapshot::default()
        };
        assert!(notices(&quiet, &Counters::default(), &Parts::default()).is_empty());
        let never = notices(
            &Snapshot::default(),
            &Counters::default(),
            &Parts::default(),
        );
        assert_eq!(never.len(), 1);
        assert!(never[0].contains("never started recording"), "{never:?}");

        let probe = |id: u32, argv: Option<&[&str]>| crate::bpf::SessionSnapshot {
            id,
            kind: SessionKind::Exec,
            pid: id,
            argv: argv.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            first_seen: None,
            last_seen: None,
            count: 2,
            seen: Default::default(),
            ended: true,
        };
        let busy = Snapshot {
            recording: true,
            out_of_range: true,
            member_lost: true,
            sessions: vec![probe(1, Some(&["cat", "/x"])), probe(2, None)],
            ..Snapshot::default()
        };
        let parts = Parts::of(&busy, &SessionPolicy::IncludeAll);
        let counters = Counters {
            events_lost: 1,
            ..Counters::default()
        };
        let lines = notices(&busy, &counters, &parts);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].contains("processes of the command could not be tracked"));
        assert!(lines[1].contains("outside the recorded range"));
        assert_eq!(
            lines[2],
            "4 exec sessions ran in the command's cgroup, from outside the command ((command line unknown), [\"cat\", \"/x\"]): their syscalls are in the profile"
        );
        assert!(lines[3].contains("command lines of 2 sessions are unknown"));
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(
            exit_code_of(ExitStatus::from_raw(3 << 8)),
            ExitCode::from(3)
        );
        assert_eq!(
            exit_code_of(ExitStatus::from_raw(libc::SIGKILL)),
            ExitCode::from(137)
        );
    }
}
