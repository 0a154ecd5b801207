//! A `syscensus agent` process for tests: started with a state directory of
//! its own, stopped with SIGTERM when dropped. An agent pins nothing unless
//! its test says where (`--pin-dir` with a [`PinDir`] of its own, which it
//! removes): the agent's default, /sys/fs/bpf/syscensus, would be shared by
//! every test and left attached by SIGTERM. Only
//! [`Agent::start_with_default_pins`] lets the agent choose.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{containers::random_hex, syscensus_bin};

/// A pin directory of its own on the BPF file system (for `--pin-dir`),
/// removed when dropped.
#[derive(Debug)]
pub struct PinDir(PathBuf);

impl Default for PinDir {
    /// A new, not yet existing, directory below /sys/fs/bpf.
    fn default() -> PinDir {
        assert!(
            Path::new("/sys/fs/bpf").join(".").exists(),
            "/sys/fs/bpf is not mounted: scripts/setup mounts it"
        );
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/syscensus-test-{}",
            random_hex(8)
        )))
    }
}

impl PinDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The directory, as an argument.
    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    /// The state directory, and the temporary directory that owns it if the
    /// agent made it.
    state: PathBuf,
    _owned: Option<tempfile::TempDir>,
    log: PathBuf,
}

impl Agent {
    /// Starts `syscensus agent ARGS --state-dir <temp>` and waits until it
    /// records (it wrote its PID file).
    pub fn start(args: &[&str]) -> Agent {
        Self::start_with_env(args, &[])
    }

    /// As [`start`](Self::start), with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Agent {
        let owned = tempfile::tempdir().expect("temp dir");
        let mut agent = Self::start_in(owned.path(), args, env);
        agent._owned = Some(owned);
        agent
    }

    /// Starts an agent with the state directory `state` (kept when the agent
    /// goes: for restarts). Its log is appended to `state/agent.log`.
    pub fn start_in(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::start_wrapped(&[], state, args, env)
    }

    /// As [`start_in`](Self::start_in), run through the command line
    /// `wrapper` (such as `syscensus run --profile P --`), which must pass
    /// SIGTERM on and exec or wait for the agent.
    pub fn start_wrapped(
        wrapper: &[&str],
        state: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let chosen = args.iter().any(|a| *a == "--pin-dir" || *a == "--no-pin")
            || env
                .iter()
                .any(|(name, _)| *name == "SYSCENSUS_PIN_DIR" || *name == "SYSCENSUS_NO_PIN");
        let mut args = args.to_vec();
        if !chosen {
            args.push("--no-pin");
        }
        Self::spawn(wrapper, state, &args, env)
    }

    /// As [`start_wrapped`](Self::start_wrapped), with no pin option: the
    /// agent pins where it pins by default. The test must uninstall.
    pub fn start_with_default_pins(
        wrapper: &[&str],
        state: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        Self::spawn(wrapper, state, args, env)
    }

    fn spawn(wrapper: &[&str], state: &Path, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let log = state.join("agent.log");
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        // A PID file left by a killed agent is not this one's.
        let _ = fs::remove_file(state.join("agent.pid"));
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(syscensus_bin());
                command
            }
            None => Command::new(syscensus_bin()),
        };
        let child = command
            .arg("agent")
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .env("SYSCENSUS_LOG", "info,syscensus=debug")
            .env_remove("SYSCENSUS_PIN_DIR")
            .env_remove("SYSCENSUS_NO_PIN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start the agent");
        let mut agent = Agent {
            child: Some(child),
            state: state.to_path_buf(),
            _owned: None,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !agent.state.join("agent.pid").exists() {
            if let Some(child) = agent.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the agent exited ({status}) before it was ready:\n{}",
                    agent.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not start:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// Starts `syscensus agent --install-only ARGS`, which keeps no state
    /// directory, and waits until it says it installs.
    pub fn start_install_only(args: &[&str], env: &[(&str, &str)]) -> Agent {
        let owned = tempfile::tempdir().expect("temp dir");
        let log = owned.path().join("agent.log");
        let log_file = fs::File::create(&log).expect("log file");
        let child = Command::new(syscensus_bin())
            .args(["agent", "--install-only"])
            .args(args)
            .env("SYSCENSUS_LOG", "info,syscensus=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start the agent");
        let mut agent = Agent {
            child: Some(child),
            state: owned.path().to_path_buf(),
            _owned: Some(owned),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !agent.log().contains("recording nothing") {
            if let Some(child) = agent.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the agent exited ({status}) before it was ready:\n{}",
                    agent.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not start:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Kills the agent with SIGKILL (a crash: nothing is flushed).
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent records new containers: it has armed the
    /// container cgroup roots (watched, or watched from when they are made)
    /// and says so with `<state-dir>/watching`, whether or not the roots
    /// exist yet. A container made before then counts as already running
    /// and is not recorded (as on a node where the agent starts after the
    /// workloads). With Kubernetes that is once the first recording is seen.
    pub fn wait_watching(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.state.join("watching").exists() {
            assert!(
                Instant::now() < deadline,
                "the agent did not start watching:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The PID of the agent.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The recording of a container, if written.
    pub fn recording(&self, container_id: &str) -> Option<Value> {
        let path = self
            .state_dir()
            .join("containers")
            .join(format!("{container_id}.json"));
        let text = fs::read_to_string(path).ok()?;
        Some(serde_json::from_str(&text).expect("a recording is JSON"))
    }

    /// Waits for a container's recording in `state` (`Exited` or `Running`).
    pub fn wait_for_recording(&self, container_id: &str, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(recording) = self.recording(container_id)
                && recording["state"] == state
            {
                return recording;
            }
            assert!(
                Instant::now() < deadline,
                "no {state} recording of {container_id} after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `syscensus snapshot` against this agent.
    pub fn snapshot(&self) {
        let output = Command::new(syscensus_bin())
            .args(["snapshot", "--state-dir"])
            .arg(self.state_dir())
            .output()
            .expect("run syscensus snapshot");
        assert!(
            output.status.success(),
            "snapshot failed: {output:?}\n{}",
            self.log()
        );
    }

    /// Stops the agent with SIGTERM and waits; returns its log.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The syscall names of a recording, for one architecture.
pub fn recorded(recording: &Value, arch: &str) -> std::collections::BTreeSet<String> {
    recording["syscalls"][arch]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
