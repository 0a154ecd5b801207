//! `cargo xtask demo`: the main job on a built-in example.
use std::process::Command;

use crate::run::{as_root, cargo, root, run, setup};

/// Records a small shell pipeline, shows its profile, runs it under the
/// profile, and shows a syscall outside the profile blocked.
pub(crate) fn demo() -> anyhow::Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "syscensus"]))?;
    let syscensus = root().join("target/release/syscensus");
    let dir = root().join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let profile = dir.join("profile.json");
    let example = [
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox ls / | /bin/busybox wc -l",
    ];

    eprintln!("\n== recording: {}", example.join(" "));
    run(as_root(&syscensus)
        .args(["record", "--output"])
        .arg(&profile)
        .arg("--")
        .args(example))?;
    eprintln!("\n== the profile ({}):", profile.display());
    eprintln!("{}", std::fs::read_to_string(&profile)?);

    eprintln!("== running the example under its profile:");
    run(Command::new(&syscensus)
        .args(["run", "--profile"])
        .arg(&profile)
        .arg("--")
        .args(example))?;

    eprintln!("\n== mkdir is not in the profile, so it is refused:");
    // A path that does not exist, so that only the profile can make mkdir
    // fail, and with EPERM (the profile's errno), not EEXIST.
    let target = dir.join(format!("refused-{}", std::process::id()));
    let _ = std::fs::remove_dir(&target);
    let output = Command::new(&syscensus)
        .args(["run", "--profile"])
        .arg(&profile)
        .args(["--", "/bin/busybox", "mkdir"])
        .arg(&target)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    anyhow::ensure!(
        !output.status.success() && stderr.contains("Operation not permitted") && !target.exists(),
        "mkdir should have failed with EPERM under the profile ({}): {stderr}",
        output.status
    );
    eprintln!(
        "({}: refused with EPERM, as the profile says)",
        output.status
    );
    Ok(())
}
