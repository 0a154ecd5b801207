//! Builds the kernel program (`ebpf/`) for the BPF target with aya-build; the
//! object lands in `OUT_DIR` and `src/bpf.rs` embeds it. Also names the
//! commit the agent is built from (`SYSCENSUS_REVISION`, for its build
//! information).
use std::{path::Path, process::Command};

// The build-dependency on the kernel program's crate is there so that cargo
// rebuilds the agent (and the embedded object) when the program changes.
use syscensus_ebpf as _;

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// `git ARGS` in the package's directory, its trimmed output when it worked.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The commit: `SYSCENSUS_REVISION` when set (an image built from a copy of
/// the sources without `.git`), else git's HEAD, else `unknown`. The build
/// script runs again when HEAD moves: a checkout changes HEAD, a commit the
/// branch's ref (or `packed-refs`).
fn revision() -> String {
    println!("cargo:rerun-if-env-changed=SYSCENSUS_REVISION");
    if let Ok(revision) = std::env::var("SYSCENSUS_REVISION")
        && !revision.is_empty()
    {
        return revision;
    }
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        // Asked again whenever the package's files change, so that one
        // failed call does not leave every later build `unknown`.
        println!("cargo:rerun-if-changed={}", env!("CARGO_MANIFEST_DIR"));
        return "unknown".into();
    };
    let git_path = |path: &str| git(&["rev-parse", "--path-format=absolute", "--git-path", path]);
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for path in ["HEAD"].into_iter().chain(branch.as_deref()) {
        // A file that does not exist would make cargo run this every time.
        let watched = git_path(path)
            .filter(|p| Path::new(p).exists())
            .or_else(|| git_path("packed-refs").filter(|p| Path::new(p).exists()));
        if let Some(watched) = watched {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    head
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rustc-env=SYSCENSUS_REVISION={}", revision());
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "syscensus-ebpf")
        .ok_or_else(|| anyhow!("package syscensus-ebpf not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
