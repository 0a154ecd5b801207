//! Running bundles with runc or crun: to completion ([`run`]), or detached
//! ([`Detached`]) for long-running containers that tests exec into.

use std::{
    fs::File,
    io::Read,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{Bundle, CgroupLease, CrunCgroups, wait_for};
use crate::require_program;

/// How long [`run`] lets a container run before killing it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// An OCI runtime from the Debian packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc 1.1 (`/usr/sbin/runc`).
    Runc,
    /// crun 1.8; needs [`CrunCgroups`] on the hybrid layout, which the
    /// functions here take themselves.
    Crun,
}

impl Runtime {
    /// The command name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
        }
    }

    /// The executable, or a panic naming the package to install.
    pub fn binary(self) -> PathBuf {
        require_program(self.name(), self.name())
    }

    fn command(self) -> Command {
        let mut command = Command::new(self.binary());
        command.stdin(Stdio::null());
        command
    }

    /// Runs `<runtime> args`, returning its output.
    pub fn cli(self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {} {args:?}: {e}", self.name()))
    }

    /// Runs `<runtime> args` and panics with its stderr unless it succeeds.
    fn cli_ok(self, args: &[&str]) -> Output {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}\nstdout: {}\nstderr: {}",
            self.name(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// What a container needs held while it exists: its cgroup lease and, for
/// crun, the cgroup2 controller move. Dropped after the container is
/// deleted, in that order.
#[derive(Debug)]
struct Holds {
    _lease: Option<CgroupLease>,
    _crun: Option<CrunCgroups>,
}

impl Holds {
    fn take(runtime: Runtime, bundle: &Bundle) -> Self {
        Self {
            _crun: (runtime == Runtime::Crun).then(CrunCgroups::acquire),
            _lease: bundle
                .spec()
                .cgroups_path
                .as_deref()
                .map(CgroupLease::acquire),
        }
    }
}

/// Runs the bundle's container to completion (`<runtime> run --bundle B ID`)
/// with `/dev/null` as stdin, and returns its stdout, stderr and exit
/// status. Panics after [`RUN_TIMEOUT`]. The container and the cgroup
/// directories it created are gone when this returns.
pub fn run(runtime: Runtime, bundle: &Bundle) -> Output {
    run_with_timeout(runtime, bundle, RUN_TIMEOUT)
}

/// [`run`] with a timeout of its own.
pub fn run_with_timeout(runtime: Runtime, bundle: &Bundle, timeout: Duration) -> Output {
    let id = bundle.id();
    let holds = Holds::take(runtime, bundle);
    let mut child = runtime
        .command()
        .arg("run")
        .arg("--bundle")
        .arg(bundle.path())
        .arg(id)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {} run: {e}", runtime.name()));
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = runtime.cli(&["kill", id, "KILL"]);
        let _ = child.kill();
        let _ = child.wait();
    }
    // `run` deletes the container itself when it ends; after a timeout or a
    // failed start the state may still be there.
    let _ = runtime.cli(&["delete", "--force", id]);
    let output = Output {
        status: status.unwrap_or_default(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    drop(holds);
    assert!(
        status.is_some(),
        "{} run {id} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
        runtime.name(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut out);
        }
        out
    })
}

/// Waits for `child` up to `timeout`; `None` if it is still running.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("failed to wait for a child process: {e}"),
        }
    }
}

/// A container started in the background (`create` then `start`), whose
/// stdout and stderr go to `stdout.log` and `stderr.log` in the bundle.
/// Dropping it kills and deletes the container and removes its cgroups.
#[derive(Debug)]
pub struct Detached<'b> {
    runtime: Runtime,
    bundle: &'b Bundle,
    holds: Option<Holds>,
}

impl<'b> Detached<'b> {
    /// Creates the container (`<runtime> create`): its init process waits,
    /// already in its cgroup and namespaces, until [`Detached::start`].
    pub fn create(runtime: Runtime, bundle: &'b Bundle) -> Self {
        let holds = Holds::take(runtime, bundle);
        let this = Self {
            runtime,
            bundle,
            holds: Some(holds),
        };
        let log = |name: &str| {
            File::create(bundle.file(name))
                .unwrap_or_else(|e| panic!("failed to create {name} in the bundle: {e}"))
        };
        let output = runtime
            .command()
            .arg("create")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(bundle.id())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .status()
            .unwrap_or_else(|e| panic!("failed to run {} create: {e}", runtime.name()));
        assert!(
            output.success(),
            "{} create {} failed: {output}\nstderr: {}",
            runtime.name(),
            bundle.id(),
            this.stderr()
        );
        this
    }

    /// Creates and starts the container.
    pub fn run(runtime: Runtime, bundle: &'b Bundle) -> Self {
        let this = Self::create(runtime, bundle);
        this.start();
        this
    }

    /// Lets the created container's process run (`<runtime> start`).
    pub fn start(&self) {
        self.runtime.cli_ok(&["start", self.id()]);
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.bundle.id()
    }

    /// The cgroup path (`linux.cgroupsPath`).
    pub fn cgroup(&self) -> Option<&str> {
        self.bundle.spec().cgroups_path.as_deref()
    }

    /// `<runtime> state`: the OCI state (`status`, `pid`, ...).
    pub fn state(&self) -> Value {
        let output = self.runtime.cli_ok(&["state", self.id()]);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{} state printed no JSON ({e}): {}",
                self.runtime.name(),
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The state's status: `created`, `running` or `stopped`.
    pub fn status(&self) -> String {
        self.state()["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The host PID of the container's init process.
    pub fn pid(&self) -> u32 {
        let state = self.state();
        state["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_else(|| panic!("no pid in {} state: {state}", self.runtime.name()))
    }

    /// Runs `args` in the container (`<runtime> exec`), to completion.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.id()];
        all.extend_from_slice(args);
        self.runtime.cli(&all)
    }

    /// Runs `args` in the container (`<runtime> exec`) for at most
    /// `timeout`: its output, or `None` if it had not ended by then (it is
    /// killed; what it started in the container goes with the container).
    pub fn exec_within(&self, args: &[&str], timeout: Duration) -> Option<Output> {
        let mut child = self
            .runtime
            .command()
            .args(["exec", self.id()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to run {} exec: {e}", self.runtime.name()));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(child.wait_with_output().expect("the exec's output"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Sends `signal` (a name such as `TERM` or `KILL`) to the init process.
    pub fn kill(&self, signal: &str) {
        self.runtime.cli_ok(&["kill", self.id(), signal]);
    }

    /// Waits until the container's status is `stopped`.
    pub fn wait_stopped(&self, timeout: Duration) {
        wait_for(timeout, &format!("container {} to stop", self.id()), || {
            (self.status() == "stopped").then_some(())
        });
    }

    /// What the container's processes wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.bundle.file("stdout.log")).unwrap_or_default()
    }

    /// What the container's processes wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.bundle.file("stderr.log")).unwrap_or_default()
    }

    /// Kills and deletes the container now, panicking if the runtime fails.
    pub fn delete(mut self) {
        self.remove(true);
    }

    fn remove(&mut self, strict: bool) {
        let Some(holds) = self.holds.take() else {
            return;
        };
        // `delete --force` kills what still runs.
        let output = self.runtime.cli(&["delete", "--force", self.id()]);
        let gone = !self.runtime.cli(&["state", self.id()]).status.success();
        drop(holds);
        if strict {
            assert!(
                gone,
                "{} delete {} failed: {}",
                self.runtime.name(),
                self.id(),
                String::from_utf8_lossy(&output.stderr)
            );
        } else if !gone {
            super::cleanup_failed(&format!(
                "{} delete {} failed: {}",
                self.runtime.name(),
                self.id(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        self.remove(false);
    }
}
