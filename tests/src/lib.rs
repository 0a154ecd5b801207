//! Shared helpers for the root-only tests: where the binary is, what the
//! machine must have. A missing prerequisite fails the test with a message
//! that names it; nothing is skipped.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic with context on failure"
)]
#![allow(
    unused_crate_dependencies,
    reason = "the fixtures use some of the package's dependencies, its tests and benchmarks the rest"
)]

pub mod agent;
pub mod cluster_bench;
pub mod containers;

/// The fake Kubernetes API server (a crate of its own, tests/apiserver).
pub use syscensus_fake_apiserver as apiserver;
pub mod judge;
pub mod manifests;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What `syscensus export --from` writes for the ContainerProfile `profile`
/// (as the API server holds it): the LocalhostProfile object that installs
/// it, as a production cluster receives it from git, and the profile file.
pub fn exported_localhost_profile(profile: &serde_json::Value) -> (serde_json::Value, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("profile.json");
    std::fs::write(&input, profile.to_string()).unwrap();
    let out = dir.path().join("out");
    let output = Command::new(syscensus_bin())
        .args(["export", "--to"])
        .arg(&out)
        .arg("--from")
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "export failed: {output:?}");
    let spec = &profile["spec"];
    let relative = format!(
        "{}/{}-{}/{}",
        profile["metadata"]["namespace"].as_str().unwrap(),
        spec["workload"]["kind"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase(),
        spec["workload"]["name"].as_str().unwrap(),
        spec["container"].as_str().unwrap()
    );
    let text =
        std::fs::read_to_string(out.join(format!("{relative}.localhostprofile.yaml"))).unwrap();
    let object: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let bytes = std::fs::read(out.join(format!("{relative}.json"))).unwrap();
    (object, bytes)
}

/// The `syscensus` binary under test: `$SYSCENSUS_BIN` (set by `cargo xtask
/// test`), else the debug build in the workspace's target directory.
pub fn syscensus_bin() -> PathBuf {
    let path = std::env::var_os("SYSCENSUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/syscensus"));
    assert!(
        path.exists(),
        "syscensus binary not found at {}: build it first (cargo build -p syscensus) or run `cargo xtask test`",
        path.display()
    );
    path
}

/// Panics unless running as root: these tests load BPF programs and start
/// containers.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root: run it with `cargo xtask test` as root"
    );
}

/// Panics unless `program` is on PATH, naming the package that provides it.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{program} not found: install the Debian package {package} (scripts/setup does)")
    })
}

/// Runs the syscensus binary with `args`, returning its output.
pub fn syscensus(args: &[&str]) -> Output {
    Command::new(syscensus_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("failed to run syscensus {args:?}: {e}"))
}

/// Compiles `tests/programs/<name>.c` statically (once per test binary run)
/// and returns the executable. `flags` are extra gcc flags such as `-m32`.
pub fn program(name: &str, flags: &[&str]) -> PathBuf {
    use std::sync::Mutex;
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_program("gcc", "gcc (and gcc-multilib for -m32)");
    let source = workspace_root()
        .join("tests/programs")
        .join(format!("{name}.c"));
    let suffix = flags.join("").replace(['-', '='], "");
    let dir = workspace_root().join("target/test-programs");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}{suffix}"));
    let fresh = out
        .metadata()
        .and_then(|o| Ok(o.modified()? >= source.metadata()?.modified()?));
    if !matches!(fresh, Ok(true)) {
        let status = Command::new("gcc")
            .args(["-O2", "-static", "-pthread", "-o"])
            .arg(&out)
            .arg(&source)
            .args(flags)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "gcc failed to build {} with {flags:?}",
            source.display()
        );
    }
    out
}

/// The syscall names `strace -f -c` reports for a command: every syscall the
/// command and its descendants made.
pub fn strace_names(command: &[&str]) -> std::collections::BTreeSet<String> {
    require_program("strace", "strace");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("strace.txt");
    // Output to a pipe, as under `record`: stdio makes different calls for
    // a terminal or /dev/null (an isatty ioctl).
    let output = Command::new("strace")
        .args(["-f", "-qq", "-c", "-o"])
        .arg(&out)
        .args(command)
        .output()
        .unwrap();
    assert!(output.status.success(), "strace {command:?} failed");
    parse_strace_summary(&std::fs::read_to_string(&out).unwrap())
}

/// The syscall names of an `strace -c` summary table.
pub fn parse_strace_summary(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('-') && !l.trim_start().starts_with('%'))
        .filter_map(|l| l.split_whitespace().last())
        .filter(|name| {
            *name != "total" && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The names a profile (OCI JSON) allows, per architecture: for profiles
/// written by syscensus, the rule comment says which architecture recorded
/// each name.
pub fn allowed_names(profile_json: &str) -> std::collections::BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(profile_json)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{profile_json}"));
    value["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| {
            r["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
        })
        .collect()
}

/// The names a syscensus profile recorded for one architecture (from the
/// rule whose comment is `recorded: <arch>`).
pub fn recorded_names(profile_json: &str, arch: &str) -> std::collections::BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(profile_json).unwrap();
    value["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["comment"] == format!("recorded: {arch}").as_str())
        .flat_map(|r| {
            r["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
        })
        .collect()
}

/// Records `command` with `syscensus record` (extra options before `--`)
/// and returns the profile; panics with stderr if it fails.
pub fn record(options: &[&str], command: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("profile.json");
    let output = Command::new(syscensus_bin())
        .arg("record")
        .arg("--output")
        .arg(&out)
        .args(options)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "syscensus record {command:?} failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(&out).unwrap()
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` from a server on the loopback's `port`: the status code and
/// the body; status 0 when nothing answers.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut text).is_err() {
        return (0, String::new());
    }
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
