//! Shared helpers for the root-only tests: where the binary is, what the
//! machine must have. A missing prerequisite fails the test with a message
//! that names it; nothing is skipped.
#![allow(clippy::unwrap_used, reason = "test helpers panic with context on failure")]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
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
    assert_eq!(euid, 0, "this test needs root: run it with `cargo xtask test` as root");
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
