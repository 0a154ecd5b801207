//! `cargo xtask bench`: the per-syscall overhead and the memory and scale
//! figures, measured on this machine, checked against the targets, and
//! written as JSON.
//!
//! The measuring is done by two programs of the root-only test crate, built
//! in release and run as root: `bench` (tests/src/bin/bench/, the syscall
//! loop under each configuration) and `bench-scale`
//! (tests/src/bin/bench-scale/: idle attachments, start latency, the
//! agent with many containers, export). This file builds and runs them and
//! judges their JSON; it does not depend on the syscensus crate, so that it
//! builds before the machine is set up.
//!
//! `--cluster` runs the cluster harness instead (`bench-cluster`,
//! tests/src/bin/bench-cluster/): no root, no kernel program.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::run::{as_root, cargo, root, run, setup};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Rounds of the per-syscall benchmark; every configuration runs once per
    /// round, in a rotating order. Each configuration's figure is its
    /// lowest 10th percentile of 2,000-call chunks over the rounds (the
    /// median of the rounds' means, which carries the host's noise, is
    /// reported beside it).
    #[arg(long, default_value_t = 11)]
    rounds: usize,
    /// Syscalls per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    iterations: u64,
    /// The CPU the syscall loop is pinned to.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// Also measure the kernel program reading the cgroup id with the helper
    /// instead of plain loads (two more configurations per round).
    #[arg(long)]
    helper: bool,
    /// Numbers of containers for the agent's memory figures.
    #[arg(long, default_value = "10,100,1000", value_name = "N,N,...")]
    counts: String,
    /// Container cgroups made for the start latency.
    #[arg(long, default_value_t = 200)]
    latency_cgroups: usize,
    /// Workload profiles exported.
    #[arg(long, default_value_t = 1000)]
    profiles: usize,
    /// Only the per-syscall benchmark.
    #[arg(long)]
    no_scale: bool,
    /// Skip the machine set-up (scripts/setup).
    #[arg(long)]
    quick: bool,
    /// Where to write the results.
    #[arg(long, default_value = "target/bench/latest.json")]
    json: PathBuf,
    /// Print the figures and the targets, but exit 0 when a target is
    /// missed (CI's short pass, on a machine that is not quiet).
    #[arg(long)]
    no_judge: bool,
    /// Instead of the figures above, the cluster writes at scale: N
    /// simulated nodes' writers against the test API server
    /// (tests/src/cluster_bench.rs), per node count; prints the server's
    /// counts, an extrapolation to 5,000 nodes and the targets, and writes
    /// target/bench/cluster.json. Needs neither root nor set-up.
    #[arg(long)]
    cluster: bool,
    /// Node counts of `--cluster`.
    #[arg(long, default_value = "10,100,1000", value_name = "N,N,...")]
    nodes: String,
    /// Deployments recorded in `--cluster`, one Pod of each per node.
    #[arg(long, default_value_t = 5)]
    deployments: usize,
    /// Flush intervals of `--cluster` measured after convergence.
    #[arg(long, default_value_t = 6)]
    converged_rounds: usize,
    /// Build `--cluster`'s harness in debug, from the tests' build, instead
    /// of in release (as agents run, and as the figures in the README
    /// are): quicker to build, slower to run, and its first merge of 1,000
    /// nodes misses its target.
    #[arg(long)]
    debug: bool,
}

/// The targets of the performance work.
const RECORDED_MAX: f64 = 2.0;
const NOT_RECORDED_MAX: f64 = 1.3;
const RSS_MAX_MIB: f64 = 40.0;
const RSS_AT: u64 = 1000;
const EXPORT_MAX_MS: f64 = 2000.0;

/// Builds, measures, reports, and writes the JSON.
pub(crate) fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    if args.cluster {
        return cluster(args);
    }
    if !args.quick {
        setup()?;
    }
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "syscensus",
        "-p",
        "syscensus-tests",
        "--bin",
        "syscensus",
        "--bin",
        "bench",
        "--bin",
        "bench-scale",
    ]))?;
    let release = root().join("target/release");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let loop_binary = out.join("syscall_loop");
    run(Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&loop_binary)
        .arg(root().join("tests/programs/syscall_loop.c")))?;

    let syscall_json = out.join("syscall.json");
    let mut syscall = as_root(release.join("bench"));
    syscall
        .arg("--loop")
        .arg(&loop_binary)
        .args(["--rounds", &args.rounds.to_string()])
        .args(["--iterations", &args.iterations.to_string()])
        .args(["--cpu", &args.cpu.to_string()])
        .arg("--json")
        .arg(&syscall_json)
        .current_dir(root());
    if args.helper {
        syscall.arg("--helper");
    }
    run(&mut syscall)?;
    let syscall = read_json(&syscall_json)?;

    let scale = if args.no_scale {
        Value::Null
    } else {
        let scale_json = out.join("scale.json");
        run(as_root(release.join("bench-scale"))
            .arg("--syscensus")
            .arg(release.join("syscensus"))
            .args(["--counts", &args.counts])
            .args(["--latency-cgroups", &args.latency_cgroups.to_string()])
            .args(["--profiles", &args.profiles.to_string()])
            .arg("--json")
            .arg(&scale_json)
            .current_dir(root()))?;
        read_json(&scale_json)?
    };

    let targets = judge(&syscall, &scale);
    let machine = machine();
    eprintln!("\n{}", report(&machine, &syscall, &scale, &targets));
    let results = json!({
        "schema": "syscensus.io/bench/v1",
        "date": machine["date"],
        "machine": machine,
        "command": command_line(args),
        "targets": targets,
        "syscall": syscall,
        "scale": scale,
    });
    let path = if args.json.is_absolute() {
        args.json.clone()
    } else {
        root().join(&args.json)
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    let missed: Vec<&str> = targets
        .iter()
        .filter(|t| t["met"] == false)
        .filter_map(|t| t["target"].as_str())
        .collect();
    if !missed.is_empty() && !args.no_judge {
        anyhow::bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// `--cluster`: builds and runs the cluster harness
/// (tests/src/bin/bench-cluster/), which prints its table and judges the
/// targets itself.
fn cluster(args: &BenchArgs) -> anyhow::Result<()> {
    let mut build = cargo();
    build.args(["build", "-p", "syscensus-tests", "--bin", "bench-cluster"]);
    if !args.debug {
        build.arg("--release");
    }
    run(&mut build)?;
    let profile = if args.debug { "debug" } else { "release" };
    let json = root().join("target/bench/cluster.json");
    let mut harness = Command::new(root().join("target").join(profile).join("bench-cluster"));
    harness
        .args(["--nodes", &args.nodes])
        .args(["--deployments", &args.deployments.to_string()])
        .args(["--converged-rounds", &args.converged_rounds.to_string()])
        .arg("--json")
        .arg(&json)
        .current_dir(root());
    eprintln!("{profile} build; load average before: {}", load_average());
    let result = run(&mut harness);
    eprintln!("load average after: {}", load_average());
    match result {
        Err(error) if args.no_judge => {
            eprintln!("{error:#} (not judged: --no-judge)");
            Ok(())
        }
        other => other,
    }
}

/// The first three fields of /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn command_line(args: &BenchArgs) -> String {
    let mut line = format!(
        "cargo xtask bench --rounds {} --iterations {} --cpu {}",
        args.rounds, args.iterations, args.cpu
    );
    if args.helper {
        line.push_str(" --helper");
    }
    if args.no_judge {
        line.push_str(" --no-judge");
    }
    if args.no_scale {
        line.push_str(" --no-scale");
    } else {
        let _ = write!(
            line,
            " --counts {} --latency-cgroups {} --profiles {}",
            args.counts, args.latency_cgroups, args.profiles
        );
    }
    line
}

/// The CPU, vCPUs, kernel, mitigations and date of this machine.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|t| t.trim().to_owned())
            .unwrap_or_default()
    };
    let date = Command::new("date")
        .arg("+%Y-%m-%d %H:%M:%S %Z")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "cpu": model,
        "vcpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "spectre_v2": read("/sys/devices/system/cpu/vulnerabilities/spectre_v2"),
        "spec_rstack_overflow": read("/sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow"),
        "date": date,
    })
}

/// One target: what was asked, what was measured, whether it is met
/// (`null`: not measured in this run).
fn target(name: &str, goal: &str, measured: String, met: Option<bool>) -> Value {
    json!({ "target": name, "goal": goal, "measured": measured, "met": met })
}

/// Checks the figures against the targets.
fn judge(syscall: &Value, scale: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for name in ["getppid", "read"] {
        for (key, what, max) in [
            ("recorded", "recorded process", RECORDED_MAX),
            ("other", "process not recorded", NOT_RECORDED_MAX),
            ("watched", "process watched for refusals", RECORDED_MAX),
            ("watch_other", "process not watched", NOT_RECORDED_MAX),
        ] {
            // Both statistics must meet the target: the lowest 10th
            // percentile of chunks, and the median of the rounds' means.
            let figures = &syscall[name][key];
            let ratio = figures["ratio_to_floor_overhead"].as_f64();
            let ratio_of_means = figures["ratio_of_means"].as_f64();
            let overhead = figures["overhead_ns"].as_f64();
            // The watch's hook is sys_exit, judged against an empty
            // program there (the bench computes its ratios so).
            let watch = key.starts_with("watch");
            let floor = syscall[name][if watch {
                "floor_sys_exit_overhead_ns"
            } else {
                "floor_overhead_ns"
            }]
            .as_f64();
            let hook = if watch { "sys_exit" } else { "sys_enter" };
            out.push(target(
                &format!("{what} ({name})"),
                &format!("overhead <= {max}x the empty program's on {hook}, on both statistics"),
                match (ratio, ratio_of_means, overhead, floor) {
                    (Some(r), Some(m), Some(o), Some(f)) => {
                        format!("{r:.2}x ({o:+.1} ns vs {f:+.1} ns), {m:.2}x of the means")
                    }
                    _ => "not measured".into(),
                },
                ratio.zip(ratio_of_means).map(|(r, m)| r <= max && m <= max),
            ));
        }
    }
    let idle_links = scale["idle"]["links_loaded_idle"]
        .as_u64()
        .or_else(|| syscall["idle_sys_enter_links"].as_u64());
    let idle_ns: Vec<String> = ["getppid", "read"]
        .iter()
        .filter_map(|s| {
            syscall[s]["idle"]["overhead_ns"]
                .as_f64()
                .map(|o| format!("{s} {o:+.1} ns"))
        })
        .collect();
    out.push(target(
        "no recording active",
        "no sys_enter program attached",
        match idle_links {
            Some(n) => format!(
                "{n} sys_enter link(s) while loaded and idle ({})",
                idle_ns.join(", ")
            ),
            None => "not measured".into(),
        },
        idle_links.map(|n| n == 0),
    ));
    let idle_exit_links = syscall["idle_sys_exit_links"].as_u64();
    out.push(target(
        "no container watched for refusals",
        "no sys_exit program attached",
        match idle_exit_links {
            Some(n) => format!("{n} sys_exit link(s) while loaded and idle"),
            None => "not measured".into(),
        },
        idle_exit_links.map(|n| n == 0),
    ));
    let latency = &scale["start_latency"];
    if let Some(cgroups) = latency["cgroups"].as_u64() {
        let marked = latency["marked_when_mkdir_returned"].as_u64().unwrap_or(0);
        let armed = latency["armed_when_exec_returned"].as_u64().unwrap_or(0);
        out.push(target(
            "containers started after a recording begins",
            "recorded from their first exec",
            format!(
                "{marked}/{cgroups} marked when mkdir returned, {armed}/{cgroups} recording when the first exec returned; mkdir → row median {:.1} µs, p99 {:.1} µs",
                latency["mkdir_to_row_us"]["median"].as_f64().unwrap_or(f64::NAN),
                latency["mkdir_to_row_us"]["p99"].as_f64().unwrap_or(f64::NAN),
            ),
            Some(marked == cgroups && armed == cgroups),
        ));
    }
    let agents = scale["agent"].as_array().cloned().unwrap_or_default();
    let at = agents
        .iter()
        .find(|a| a["containers"].as_u64() == Some(RSS_AT));
    out.push(target(
        "agent memory",
        &format!("< {RSS_MAX_MIB} MiB RSS with {RSS_AT} containers tracked"),
        match at {
            Some(a) => format!(
                "{:.1} MiB RSS (peak {:.1} MiB)",
                kib_to_mib(&a["rss_kib"]),
                kib_to_mib(&a["hwm_kib"])
            ),
            None => "not measured".into(),
        },
        at.map(|a| kib_to_mib(&a["rss_kib"]) < RSS_MAX_MIB),
    ));
    let (first, last) = (agents.first(), agents.last());
    out.push(target(
        "kernel map memory",
        "reported and bounded",
        match (first, last) {
            (Some(f), Some(l)) => format!(
                "{:.2} MiB with {} containers, {:.2} MiB with {} (capacity {} rows, {:.0} B per row; metric says {:.2} MiB)",
                bytes_to_mib(&f["kernel_map_bytes"]),
                f["containers"],
                bytes_to_mib(&l["kernel_map_bytes"]),
                l["containers"],
                l["rows_capacity"],
                l["rows_map_bytes_per_row"].as_f64().unwrap_or(f64::NAN),
                bytes_to_mib(&l["metrics_map_bytes"]),
            ),
            _ => "not measured".into(),
        },
        // Bounded: fixed at load by the capacity, not growing with the
        // containers (a little slack for the process map, which grows with
        // the workloads' processes up to its own capacity).
        match (first, last) {
            (Some(f), Some(l)) => Some(
                l["kernel_map_bytes"].as_f64().unwrap_or(f64::INFINITY)
                    <= f["kernel_map_bytes"].as_f64().unwrap_or(0.0) * 1.05
                    && l["metrics_map_bytes"].as_f64().unwrap_or(0.0) > 0.0,
            ),
            _ => None,
        },
    ));
    let export = &scale["export"];
    let export_ms = export["fresh_ms"]["median"].as_f64();
    out.push(target(
        "export",
        &format!(
            "{} profiles in < {:.0} s",
            export["profiles"].as_u64().unwrap_or(1000),
            EXPORT_MAX_MS / 1000.0
        ),
        match export_ms {
            Some(ms) => format!(
                "{ms:.0} ms (median of {}; {:.0} ms into an up-to-date export)",
                export["runs"],
                export["unchanged_ms"]["median"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            ),
            None => "not measured".into(),
        },
        export_ms.map(|ms| ms < EXPORT_MAX_MS),
    ));
    out
}

fn kib_to_mib(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN) / 1024.0
}

fn bytes_to_mib(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN) / (1024.0 * 1024.0)
}

/// The report printed at the end.
fn report(machine: &Value, syscall: &Value, scale: &Value, targets: &[Value]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "== syscensus benchmark, {} — {} ({} vCPUs), Linux {}",
        machine["date"].as_str().unwrap_or(""),
        machine["cpu"].as_str().unwrap_or(""),
        machine["vcpus"],
        machine["kernel"].as_str().unwrap_or(""),
    );
    let settings = &syscall["settings"];
    let _ = writeln!(
        text,
        "\nper syscall: {} interleaved rounds of {} calls, pinned to CPU {}; per configuration the lowest\n10th percentile of 2,000-call chunks (in brackets: overhead and ratio of the medians of the rounds' means)",
        settings["rounds"], settings["iterations"], settings["cpu"]
    );
    let _ = writeln!(
        text,
        "  {:<30} {:>10} {:>10} {:>9} {:>18}   {:>10} {:>10} {:>9} {:>18}",
        "",
        "getppid",
        "overhead",
        "x floor",
        "(of means)",
        "read",
        "overhead",
        "x floor",
        "(of means)"
    );
    let rows = syscall["configs"].as_array().cloned().unwrap_or_default();
    for row in rows {
        let key = row["key"].as_str().unwrap_or("");
        let mut line = format!("  {:<30}", row["name"].as_str().unwrap_or(key));
        for name in ["getppid", "read"] {
            let figures = &syscall[name][key];
            let _ = write!(
                line,
                " {:>7.1} ns {:>+7.1} ns {:>8.2}x ({:>+6.1} ns {:>5.2}x)  ",
                figures["ns_per_call"].as_f64().unwrap_or(f64::NAN),
                figures["overhead_ns"].as_f64().unwrap_or(f64::NAN),
                figures["ratio_to_floor_overhead"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                figures["overhead_of_means_ns"].as_f64().unwrap_or(f64::NAN),
                figures["ratio_of_means"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }
    let _ = writeln!(
        text,
        "  (the refusal watch's rows: x the empty program on sys_exit, the watch's hook)"
    );
    let others = syscall["other_sys_enter_programs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !others.is_empty() {
        let _ = writeln!(
            text,
            "  WARNING: other programs were attached to sys_enter during the run: {others:?}"
        );
    }
    if let Some(agents) = scale["agent"].as_array() {
        let _ = writeln!(
            text,
            "\nagent: {:>10} {:>10} {:>10} {:>8} {:>14} {:>14}",
            "containers", "RSS MiB", "peak MiB", "CPU %", "kernel maps", "metric"
        );
        for a in agents {
            let _ = writeln!(
                text,
                "       {:>10} {:>10.1} {:>10.1} {:>8.1} {:>10.2} MiB {:>10.2} MiB",
                a["containers"],
                kib_to_mib(&a["rss_kib"]),
                kib_to_mib(&a["hwm_kib"]),
                a["cpu_percent"].as_f64().unwrap_or(f64::NAN),
                bytes_to_mib(&a["kernel_map_bytes"]),
                bytes_to_mib(&a["metrics_map_bytes"]),
            );
        }
    }
    let latency = &scale["start_latency"];
    if latency.is_object() {
        let _ = writeln!(text, "\nstart latency ({} cgroups):", latency["cgroups"]);
        for (what, key) in [
            ("mkdir → row in the kernel", "mkdir_to_row_us"),
            ("mkdir → event read by userspace", "mkdir_to_event_us"),
            ("mkdir → first exec → recording", "mkdir_to_recording_us"),
        ] {
            let _ = writeln!(
                text,
                "  {what:<34} median {:>8.1} µs   p99 {:>8.1} µs",
                latency[key]["median"].as_f64().unwrap_or(f64::NAN),
                latency[key]["p99"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    let _ = writeln!(text, "\ntargets:");
    for t in targets {
        let verdict = match t["met"].as_bool() {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "----",
        };
        let _ = writeln!(
            text,
            "  {verdict}  {}: {} — {}",
            t["target"].as_str().unwrap_or(""),
            t["goal"].as_str().unwrap_or(""),
            t["measured"].as_str().unwrap_or("")
        );
    }
    text
}
