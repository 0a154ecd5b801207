//! How long an export of 1,000 workload profiles takes.
use std::{collections::BTreeSet, fs, path::Path, process::Command, time::Instant};

use serde_json::{Value, json};
use syscensus::syscalls::Arch;

use crate::{Options, Rng, summary};

/// Names a workload of this kind is plausibly called, and the syscalls it
/// plausibly makes.
pub(crate) const KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicaSet",
    "Pod",
];

/// A ContainerProfile object of one workload: 60 to 120 syscalls drawn from
/// the x86_64 table, most of them common to every workload (as the runtime
/// and libc make them) and the rest its own.
pub(crate) fn container_profile(index: usize, rng: &mut Rng) -> Value {
    let table = Arch::X86_64.syscalls();
    let count = 60 + rng.below(61) as usize;
    // The first 40 syscall numbers (read, write, open, mmap, ...) are made by
    // nearly every program; the rest vary by workload.
    let mut names: BTreeSet<&str> = table
        .iter()
        .take(40)
        .filter(|_| rng.below(10) < 9)
        .map(|&(_, name)| name)
        .collect();
    while names.len() < count {
        names.insert(table[rng.below(table.len() as u64) as usize].1);
    }
    let names: Vec<&str> = names.into_iter().collect();
    let kind = KINDS[index % KINDS.len()];
    let namespace = format!("team-{:02}", index % 25);
    let workload = format!("svc-{index:04}");
    let container = ["app", "server", "worker"][index % 3];
    let recording = "bench";
    json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ContainerProfile",
        "metadata": {
            "name": syscensus_api::object_name(recording, kind, &workload, container),
            "namespace": namespace,
            "labels": {
                "syscensus.io/recording": recording,
                "syscensus.io/workload-kind": kind.to_ascii_lowercase(),
                "syscensus.io/workload-name": workload,
                "syscensus.io/container": container,
            },
        },
        "spec": {
            "recording": recording,
            "workload": {"kind": kind, "name": workload},
            "container": container,
            "initContainer": false,
            "syscalls": {"SCMP_ARCH_X86_64": names},
            "syscallCount": names.len(),
            "runtimeBaseSet": {"name": "runc-1.1", "syscalls": ["capget", "capset", "execve", "futex", "rt_sigreturn"]},
            "nodes": [{
                "node": format!("node-{}", index % 12),
                "pods": [format!("svc-{index:04}-{:05x}", rng.below(1 << 20))],
                "containers": 1 + rng.below(5),
                "firstSeen": "2025-01-10T08:00:00Z",
                "lastSeen": "2025-01-10T09:00:00Z",
            }],
            "firstSeen": "2025-01-10T08:00:00Z",
            "lastSeen": "2025-01-10T09:00:00Z",
            "lastNewSyscall": "2025-01-10T08:05:00Z",
        },
    })
}

/// `syscensus export --to DIR --from PROFILES`, timed.
pub(crate) fn time_export(options: &Options, from: &Path, to: &Path) -> anyhow::Result<f64> {
    let start = Instant::now();
    let output = Command::new(&options.syscensus)
        .args(["export", "--to"])
        .arg(to)
        .arg("--from")
        .arg(from)
        .output()?;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        output.status.success(),
        "syscensus export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(elapsed)
}

pub(crate) fn count_files(dir: &Path, extension: &str) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                count_files(&path, extension)
            } else {
                usize::from(path.extension().is_some_and(|x| x == extension))
            }
        })
        .sum()
}

/// Export of `options.profiles` workload profiles from files.
pub(crate) fn export(options: &Options) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let from = dir.path().join("profiles");
    fs::create_dir(&from)?;
    let mut rng = Rng(0xe4a0_7e11);
    let mut syscalls = Vec::new();
    let mut input_bytes = 0;
    for index in 0..options.profiles {
        let profile = container_profile(index, &mut rng);
        syscalls.push(profile["spec"]["syscallCount"].as_f64().unwrap_or(0.0));
        let text = serde_json::to_string_pretty(&profile)? + "\n";
        input_bytes += text.len();
        fs::write(from.join(format!("cprof-{index:04}.json")), text)?;
    }
    let mut fresh = Vec::new();
    for run in 0..options.export_runs {
        let to = dir.path().join(format!("out-{run}"));
        fresh.push(time_export(options, &from, &to)?);
    }
    let out = dir.path().join("out-0");
    let written = count_files(&out, "json");
    anyhow::ensure!(
        written == options.profiles,
        "the export wrote {written} profiles, not {}",
        options.profiles
    );
    // Again into an export that is up to date: every file compared, none
    // rewritten.
    let mut unchanged = Vec::new();
    for _ in 0..options.export_runs {
        unchanged.push(time_export(options, &from, &out)?);
    }
    let report = json!({
        "profiles": options.profiles,
        "syscalls_per_profile": summary(&syscalls),
        "input_bytes": input_bytes,
        "fresh_ms": summary(&fresh),
        "unchanged_ms": summary(&unchanged),
        "runs": options.export_runs,
    });
    println!(
        "export of {} profiles: median {:.0} ms into an empty directory, {:.0} ms into an up-to-date one",
        options.profiles,
        report["fresh_ms"]["median"].as_f64().unwrap_or(f64::NAN),
        report["unchanged_ms"]["median"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );
    Ok(report)
}
