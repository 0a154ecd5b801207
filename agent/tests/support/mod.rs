//! Helpers of the integration tests that run programs of the machine.
use std::path::PathBuf;

/// The program `program` on PATH; panics naming the package that provides
/// it (scripts/setup installs them) rather than skip the test.
pub(crate) fn require_program(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{program} not found: install the Debian package {package} (scripts/setup does)")
    })
}
