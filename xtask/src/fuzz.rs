//! `cargo xtask fuzz`: builds the libFuzzer targets in fuzz/ (cargo-fuzz,
//! nightly, AddressSanitizer, debug assertions) and runs each for a bounded
//! time, failing if any input crashes, panics or hangs one.
//!
//! Each target starts from its seeds (real files of the repository and
//! fuzz/seeds/) and keeps what it learns in fuzz/corpus/<target>, so that
//! later runs on the same machine start further on. An input that fails
//! is saved in fuzz/artifacts/<target>/; `cargo +nightly fuzz run <target>
//! <file>` replays it.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::run::{describe, root, run, setup};

/// The cargo-fuzz release installed when none is.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// How long one input may run before it counts as a hang.
const INPUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Every target and its seed directories, relative to the workspace root.
const TARGETS: [(&str, &[&str]); 10] = [
    (
        "profile_parse",
        &["tests/data/third-party", "agent/tests/golden"],
    ),
    ("seccomp_compile", &[]),
    ("seccomp_evaluate", &[]),
    ("container_recording", &["fuzz/seeds/container_recording"]),
    (
        "export_source",
        &["fuzz/seeds/export_source", "agent/tests/golden/export"],
    ),
    ("crd_objects", &["fuzz/seeds/crd_objects", "deploy/base"]),
    ("names", &["fuzz/seeds/names"]),
    ("mountinfo", &["fuzz/seeds/mountinfo"]),
    ("kubepath", &["fuzz/seeds/kubepath"]),
    ("btf", &["fuzz/seeds/btf"]),
];

/// Runs `only` (every target when empty) for `seconds` each.
pub(crate) fn fuzz(seconds: u64, only: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = only
        .iter()
        .find(|t| !TARGETS.iter().any(|(name, _)| name == t))
    {
        let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
        bail!(
            "no fuzz target {unknown:?}: choose from {}",
            names.join(", ")
        );
    }
    ensure_tools()?;
    let started = Instant::now();
    run(&mut cargo_fuzz(&["build"]))?;
    eprintln!("fuzz targets built in {:.0?}", started.elapsed());

    let mut failed = Vec::new();
    for (target, seeds) in TARGETS
        .iter()
        .filter(|(name, _)| only.is_empty() || only.iter().any(|t| t == name))
    {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("failed to create {}", corpus.display()))?;
        let mut cmd = cargo_fuzz(&["run", target]);
        cmd.arg(&corpus);
        cmd.args(seeds.iter().map(|dir| root().join(dir)));
        cmd.arg("--").args([
            format!("-max_total_time={seconds}"),
            format!("-timeout={}", INPUT_TIMEOUT.as_secs()),
            "-rss_limit_mb=2048".to_owned(),
            "-print_final_stats=1".to_owned(),
        ]);
        eprintln!("+ {}", describe(&cmd));
        let target_started = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("failed to start {}", describe(&cmd)))?;
        eprintln!(
            "fuzz target {target}: {} after {:.0?}",
            if status.success() { "passed" } else { "FAILED" },
            target_started.elapsed()
        );
        if !status.success() {
            failed.push(*target);
        }
    }
    eprintln!("fuzzing took {:.0?}", started.elapsed());
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {}; the inputs are in fuzz/artifacts/<target>/ (replay one with `cargo +nightly fuzz run <target> <file>`)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly fuzz <args>` in the workspace root, without the
/// variables of the cargo that runs xtask (they name the stable toolchain
/// and this workspace's target directory).
fn cargo_fuzz(args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .arg("fuzz")
        .args(args)
        .args(["--fuzz-dir", "fuzz"])
        .current_dir(root());
    for var in [
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Installs cargo-fuzz if it is missing, and runs the set-up if the
/// agent's build needs it (bpf-linker builds the kernel program that the
/// agent embeds).
fn ensure_tools() -> anyhow::Result<()> {
    if !succeeds(Command::new("bpf-linker").arg("--version")) {
        setup()?;
    }
    if !succeeds(Command::new("cargo").args(["+nightly", "--version"])) {
        bail!(
            "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly (cargo xtask setup adds its rust-src)"
        );
    }
    let version = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if version.is_none_or(|v| !v.contains(CARGO_FUZZ_VERSION)) {
        eprintln!("installing cargo-fuzz {CARGO_FUZZ_VERSION} (a minute or two)");
        run(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ]))?;
    }
    Ok(())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target of fuzz/Cargo.toml is run, with its source and seeds
    /// in place.
    #[test]
    fn targets_and_seeds_exist() {
        let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap_or_default();
        assert_eq!(manifest.matches("[[bin]]").count(), TARGETS.len());
        for (target, seeds) in TARGETS {
            let source = format!("fuzz_targets/{target}.rs");
            assert!(root().join("fuzz").join(&source).is_file(), "{source}");
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target}"
            );
            for dir in seeds {
                assert!(root().join(dir).is_dir(), "{dir}");
            }
        }
    }
}
