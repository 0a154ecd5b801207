//! `cargo xtask test` and `cargo xtask lint`.
use std::{
    io::BufRead as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use crate::run::{as_root, cargo, root, run, setup};

/// Every check and test, in order of increasing cost.
pub(crate) fn test(filter: Option<&str>, quick: bool) -> anyhow::Result<()> {
    if !quick {
        setup()?;
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        lint()?;
        crate::syscalls::generate(true)?;
        crate::crds::generate(true)?;
    }
    // Unprivileged: unit tests, golden files, parsers.
    let mut unit = cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "syscensus-ebpf",
        "--exclude",
        "syscensus-tests",
    ]);
    if let Some(filter) = filter {
        unit.args(["--", filter]);
    }
    run(&mut unit)?;
    // The agent's image, which the DaemonSet's Pod test runs.
    let image = crate::image::image()?;
    // Privileged: build as this user, run the test binaries as root.
    run(cargo().args(["build", "-p", "syscensus"]))?;
    let binary = root().join("target/debug/syscensus");
    for test_binary in test_binaries()? {
        let mut cmd = as_root(&test_binary);
        cmd.env("SYSCENSUS_BIN", &binary)
            .env("SYSCENSUS_IMAGE", &image.archive)
            .env("RUST_BACKTRACE", "1")
            .current_dir(root().join("tests"));
        if let Some(filter) = filter {
            cmd.arg(filter);
        }
        // One at a time: these tests share the kernel, the cgroup tree
        // (every agent watches /kubepods, every containerd makes Pods
        // there) and bpffs, so that in parallel one test's agent would see
        // another's containers.
        cmd.arg("--test-threads=1");
        run(&mut cmd)?;
    }
    eprintln!("all tests passed");
    Ok(())
}

/// Builds the root-only tests and returns their executables.
fn test_binaries() -> anyhow::Result<Vec<PathBuf>> {
    let mut child = cargo()
        .args([
            "test",
            "-p",
            "syscensus-tests",
            "--no-run",
            "--message-format=json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to build the root tests")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut binaries = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["profile"]["test"] == true
            && let Some(executable) = message["executable"].as_str()
        {
            binaries.push(PathBuf::from(executable));
        }
    }
    anyhow::ensure!(child.wait()?.success(), "building the root tests failed");
    // Cargo reports them in the order they finish building: sort, so that
    // every run takes them in the same order (each must also pass alone).
    binaries.sort();
    Ok(binaries)
}

/// The import rules of agent/src (see `layers.rs`), then clippy with
/// warnings as errors: the workspace, then the kernel program for the BPF
/// target (it only builds there).
pub(crate) fn lint() -> anyhow::Result<()> {
    let broken = crate::layers::check(&root().join("agent/src"))?;
    for line in &broken {
        eprintln!("{line}");
    }
    anyhow::ensure!(
        broken.is_empty(),
        "{} import rule(s) of agent/src broken (xtask/src/layers.rs)",
        broken.len()
    );
    let missing = crate::docpaths::check(&root())?;
    for line in &missing {
        eprintln!("{line}");
    }
    anyhow::ensure!(
        missing.is_empty(),
        "{} path(s) named in {} do not exist: update the documents (xtask/src/docpaths.rs)",
        missing.len(),
        crate::docpaths::DOCUMENTS.join(", ")
    );
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "syscensus-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(Command::new("rustup")
        .current_dir(root().join("ebpf"))
        .args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ]))
}

/// Records the agent through everything it does in a cluster
/// (tests/tests/own_profile.rs) and writes its own seccomp profile to
/// agent/profiles/syscensus-agent.json, which the DaemonSet installs. The
/// agent recorded is the release build, the binary of the image (`cargo
/// xtask image`), so that the profile fits what runs on the nodes.
pub(crate) fn gen_agent_profile() -> anyhow::Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "--locked", "-p", "syscensus"]))?;
    let binary = root().join("target/release/syscensus");
    let test_binary = test_binaries()?
        .into_iter()
        .find(|b| {
            b.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("own_profile-"))
        })
        .context("the own_profile test was not built")?;
    let mut cmd = as_root(&test_binary);
    cmd.env("SYSCENSUS_BIN", &binary)
        .env("SYSCENSUS_UPDATE_AGENT_PROFILE", "1")
        .current_dir(root().join("tests"));
    run(&mut cmd)?;
    // The profile is compiled into the agent (and so into the image).
    run(cargo().args(["build", "-p", "syscensus"]))?;
    crate::image::image().map(drop)
}
