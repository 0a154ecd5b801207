//! The scale harness of the cluster writes behind `cargo xtask bench
//! --cluster` (the scenario is tests/src/cluster_bench.rs): for each node
//! count, N simulated nodes' writers against the test API server; prints
//! the server's counts per phase, an extrapolation to 5,000 nodes, and the
//! targets of the cluster half of the scale work.
//!
//! `bench-cluster [--nodes 10,100,1000] [--deployments 5]
//! [--flush-interval-ms 5000] [--converged-rounds 6] [--watchers 3]
//! [--limit-s 600] [--json FILE]`
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark that prints its figures"
)]
#![allow(
    unused_crate_dependencies,
    reason = "a binary of the package uses some of its dependencies"
)]

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use serde_json::json;
use syscensus_tests::cluster_bench::{Options, Report, run};

/// The node count the figures are extrapolated to.
const TARGET_NODES: f64 = 5000.0;
/// The largest object allowed at [`TARGET_NODES`].
const MAX_OBJECT: f64 = 256.0 * 1024.0;
/// The first merge of 1,000 nodes settles within this.
const FIRST_MERGE_MAX_S: f64 = 60.0;

struct Args {
    nodes: Vec<usize>,
    options: Options,
    json: Option<PathBuf>,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        nodes: vec![10, 100, 1000],
        options: Options {
            nodes: 0,
            deployments: 5,
            flush_interval: Duration::from_secs(5),
            converged_rounds: 6,
            watchers: 3,
            limit: Duration::from_secs(600),
        },
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value (see the usage at the top of tests/src/bin/bench-cluster/main.rs)"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .with_context(|| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--nodes" => {
                args.nodes = value()?
                    .split(',')
                    .map(|n| number(n.trim().to_owned()).map(|n| n as usize))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--deployments" => args.options.deployments = number(value()?)? as usize,
            "--flush-interval-ms" => {
                args.options.flush_interval = Duration::from_millis(number(value()?)?);
            }
            "--converged-rounds" => args.options.converged_rounds = number(value()?)? as usize,
            "--watchers" => args.options.watchers = number(value()?)? as usize,
            "--limit-s" => args.options.limit = Duration::from_secs(number(value()?)?),
            "--json" => args.json = Some(PathBuf::from(value()?)),
            other => anyhow::bail!(
                "unknown option {other:?}: expected --nodes, --deployments, \
                 --flush-interval-ms, --converged-rounds, --watchers, --limit-s or --json"
            ),
        }
    }
    anyhow::ensure!(
        !args.nodes.is_empty() && args.nodes.iter().all(|n| *n > 0),
        "--nodes: give node counts above 0, such as 10,100,1000"
    );
    anyhow::ensure!(args.options.deployments > 0, "--deployments: at least 1");
    Ok(args)
}

/// Least-squares line through `points`, evaluated at `x` (the one value
/// when there is one point).
fn fit(points: &[(f64, f64)], x: f64) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    if sxx == 0.0 {
        return my;
    }
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    my + sxy / sxx * (x - mx)
}

/// Whether a target is met, from the node counts, the measured values and
/// the value modelled at 5,000 nodes.
type Judge = fn(&[f64], &[f64], f64) -> bool;

struct Row {
    name: &'static str,
    values: Vec<f64>,
    /// How the value at 5,000 is modelled.
    model: Model,
    target: &'static str,
    /// Whether the target is met, from the measured values and the model.
    met: Option<Judge>,
}

enum Model {
    Linear,
    /// The line through the two largest node counts: what stops growing
    /// once the sample of contributors is full (10 nodes) and every
    /// syscall of the pool is in.
    Bounded,
    /// Not extrapolated.
    None,
}

fn table(reports: &[Report]) -> (String, bool) {
    let ns: Vec<f64> = reports.iter().map(|r| r.nodes as f64).collect();
    let col = |f: &dyn Fn(&Report) -> f64| reports.iter().map(f).collect::<Vec<f64>>();
    let bytes =
        |kind: &'static str| move |r: &Report| r.largest.get(kind).map_or(0.0, |b| b.0 as f64);
    let rows = vec![
        Row {
            name: "first phase: seconds",
            values: col(&|r| r.first.elapsed.as_secs_f64()),
            model: Model::Linear,
            target: "",
            met: None,
        },
        Row {
            name: "first phase: writes",
            values: col(&|r| r.first.counters.writes() as f64),
            model: Model::Linear,
            target: "",
            met: None,
        },
        Row {
            name: "first phase: writes/s",
            values: col(&|r| r.first.writes_per_second()),
            model: Model::None,
            target: "",
            met: None,
        },
        Row {
            name: "first phase: 409 conflicts",
            values: col(&|r| r.first.counters.conflicts() as f64),
            model: Model::Linear,
            target: "",
            met: None,
        },
        Row {
            name: "first phase: contended flushes",
            values: col(&|r| r.contended_flushes as f64),
            model: Model::None,
            target: "",
            met: None,
        },
        Row {
            name: "first merge settled: s",
            values: col(&|r| r.first_merge.as_secs_f64()),
            model: Model::Linear,
            target: "< 60 s at 1,000",
            met: Some(|ns, vs, _| {
                ns.iter()
                    .zip(vs)
                    .filter(|(n, _)| **n >= 1000.0)
                    .all(|(_, v)| *v < FIRST_MERGE_MAX_S)
            }),
        },
        Row {
            name: "syscalls lost",
            values: col(&|r| r.lost.len() as f64),
            model: Model::None,
            target: "0",
            met: Some(|_, vs, _| vs.iter().all(|v| *v == 0.0)),
        },
        Row {
            name: "late node: writes",
            values: col(&|r| r.late.counters.writes() as f64),
            model: Model::Linear,
            target: "",
            met: None,
        },
        Row {
            name: "converged: writes/min",
            values: col(&|r| {
                r.converged.counters.writes() as f64 / r.converged.elapsed.as_secs_f64() * 60.0
            }),
            model: Model::Linear,
            target: "0",
            met: Some(|_, vs, at| vs.iter().all(|v| *v == 0.0) && at == 0.0),
        },
        Row {
            name: "converged: reads/min (restarted)",
            values: col(&|r| {
                r.converged.counters.count(|k| k.verb == "get") as f64
                    / r.converged.elapsed.as_secs_f64()
                    * 60.0
            }),
            model: Model::Linear,
            target: "",
            met: None,
        },
        Row {
            name: "watch events/agent: first",
            values: col(&|r| (r.agent_events.initial + r.agent_events.changes) as f64),
            model: Model::Bounded,
            target: "independent of N",
            met: Some(|_, vs, _| {
                vs.iter().copied().fold(f64::MIN, f64::max)
                    == vs.iter().copied().fold(f64::MAX, f64::min)
            }),
        },
        Row {
            name: "watch events/agent: converged",
            values: col(&|r| r.agent_events_converged.changes as f64),
            model: Model::Linear,
            target: "0",
            met: Some(|_, vs, _| vs.iter().all(|v| *v == 0.0)),
        },
        Row {
            name: "largest ContainerProfile: bytes",
            values: col(&bytes("ContainerProfile")),
            model: Model::Bounded,
            target: "< 256 KiB at 5,000",
            met: Some(|_, _, at| at < MAX_OBJECT),
        },
        Row {
            name: "largest ProfileRecording: bytes",
            values: col(&bytes("ProfileRecording")),
            model: Model::Bounded,
            target: "< 256 KiB at 5,000",
            met: Some(|_, _, at| at < MAX_OBJECT),
        },
        Row {
            name: "largest Lease: bytes",
            values: col(&bytes("Lease")),
            model: Model::Bounded,
            target: "< 256 KiB at 5,000",
            met: Some(|_, _, at| at < MAX_OBJECT),
        },
    ];
    let mut out = String::new();
    let mut all_met = true;
    let _ = write!(out, "{:<34}", "");
    for n in &ns {
        let _ = write!(out, "{:>10}", format!("N={n}"));
    }
    let _ = writeln!(out, "{:>12}  target", "5,000 (fit)");
    for row in rows {
        let _ = write!(out, "{:<34}", row.name);
        for v in &row.values {
            let _ = write!(out, "{:>10}", number(*v));
        }
        let points: Vec<(f64, f64)> = ns.iter().copied().zip(row.values.iter().copied()).collect();
        let at = match row.model {
            Model::Linear => fit(&points, TARGET_NODES).max(0.0),
            Model::Bounded => fit(&points[points.len().saturating_sub(2)..], TARGET_NODES).max(0.0),
            Model::None => f64::NAN,
        };
        let _ = write!(
            out,
            "{:>12}",
            if at.is_nan() {
                "-".to_owned()
            } else {
                number(at)
            }
        );
        if let Some(met) = row.met {
            let ok = met(&ns, &row.values, if at.is_nan() { 0.0 } else { at });
            all_met &= ok;
            let _ = write!(
                out,
                "  {} {}",
                row.target,
                if ok { "(met)" } else { "(MISSED)" }
            );
        }
        let _ = writeln!(out);
    }
    (out, all_met)
}

fn number(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse()?;
    // The nodes on this thread, the server on its own: the two cores of
    // a small machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut reports = Vec::new();
    for &nodes in &args.nodes {
        let options = Options {
            nodes,
            ..args.options.clone()
        };
        eprintln!(
            "bench-cluster: {nodes} nodes, {} Deployments, flush every {:?}",
            options.deployments, options.flush_interval
        );
        let report = runtime.block_on(run(&options));
        eprintln!(
            "bench-cluster: {nodes} nodes: first merge {:.1} s, {} writes, {} conflicts; \
             {} writes after convergence; {} syscalls lost",
            report.first_merge.as_secs_f64(),
            report.first.counters.writes(),
            report.first.counters.conflicts(),
            report.converged.counters.writes(),
            report.lost.len()
        );
        for line in report.lost.iter().chain(&report.miscounted).take(20) {
            eprintln!("  {line}");
        }
        reports.push(report);
    }
    let (text, met) = table(&reports);
    println!(
        "{} Deployments, one Pod of each per node; flush interval {:?}; window after \
         convergence {} flushes, every contribution marked changed",
        args.options.deployments, args.options.flush_interval, args.options.converged_rounds
    );
    println!(
        "counts from the test API server; watch events: one agent's Pod watch (its node) \
         and ProfileRecording watch"
    );
    println!(
        "5,000 (fit): least-squares line over every N; for object bytes and watch events, the \
         line through the two largest N (objects stop growing once the sample of 10 \
         contributors is full and every syscall is in)"
    );
    print!("{text}");
    if let Some(path) = &args.json {
        let value: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "nodes": r.nodes,
                    "deployments": r.deployments,
                    "first_seconds": r.first.elapsed.as_secs_f64(),
                    "first_writes": r.first.counters.writes(),
                    "first_writes_by_resource": r.first.writes_by_resource(),
                    "first_conflicts": r.first.counters.conflicts(),
                    "contended_flushes": r.contended_flushes,
                    "first_merge_seconds": r.first_merge.as_secs_f64(),
                    "late_writes": r.late.counters.writes(),
                    "converged_seconds": r.converged.elapsed.as_secs_f64(),
                    "converged_writes": r.converged.counters.writes(),
                    "agent_events_initial": r.agent_events.initial,
                    "agent_events_changes": r.agent_events.changes,
                    "agent_events_converged": r.agent_events_converged.changes,
                    "largest": r.largest.iter().map(|(k, (b, n))| (k.to_string(), json!({"bytes": b, "name": n}))).collect::<serde_json::Map<_, _>>(),
                    "lost": r.lost,
                    "miscounted": r.miscounted,
                })
            })
            .collect();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !met {
        eprintln!("bench-cluster: a target was missed (see the table)");
        std::process::exit(1);
    }
    Ok(())
}
