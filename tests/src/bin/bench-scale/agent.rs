//! The node agent with 10, 100 and 1,000 containers: its memory, CPU,
//! maps and metrics.
use std::{
    collections::BTreeSet,
    fs,
    io::{Read as _, Write as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use syscensus::cgroup::Hierarchy;

use crate::{Cgroups, Options, Rng, bpftool, start_sleeper};

/// `GET /metrics` of the agent, as name → value.
pub(crate) fn metrics(port: u16) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("syscensus_"))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub(crate) fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is 3,
    // utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("bad /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// The BPF maps a process holds (from its file descriptors), with what
/// `bpftool map show` says each costs in kernel memory.
pub(crate) fn maps_of(pid: u32) -> anyhow::Result<Vec<Value>> {
    let mut ids = BTreeSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(text) = fs::read_to_string(entry?.path()) else {
            continue;
        };
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            ids.insert(id);
        }
    }
    let all = bpftool(&["map", "show"])?;
    Ok(all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .map(|m| {
            json!({
                "name": m["name"],
                "type": m["type"],
                "max_entries": m["max_entries"],
                "bytes_key": m["bytes_key"],
                "bytes_value": m["bytes_value"],
                "bytes_memlock": m["bytes_memlock"],
            })
        })
        .collect())
}

/// A running agent; stopped (SIGTERM, then SIGKILL) on drop.
pub(crate) struct AgentProcess {
    child: Child,
}

impl AgentProcess {
    fn stop(&mut self) {
        // SAFETY: kill(2) with a signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The agent with `count` running containers: its memory, CPU and maps.
pub(crate) fn agent_scale(
    options: &Options,
    hierarchy: &Hierarchy,
    count: usize,
) -> anyhow::Result<Value> {
    let state = tempfile::tempdir()?;
    let mut cgroups = Cgroups::new();
    let path = format!("/syscensus-bench-{}-agent{count}", std::process::id());
    cgroups.mkdir(&hierarchy.dir(&path))?;
    let root = format!("{path}/kubepods");
    let kubepods = hierarchy.dir(&root);
    cgroups.mkdir(&kubepods)?;
    let qos = kubepods.join("besteffort");
    cgroups.mkdir(&qos)?;
    let port = free_port()?;
    let log = fs::File::create(state.path().join("agent.log"))?;
    let mut cmd = Command::new(&options.syscensus);
    // Only the flags given here: no setting inherited from the environment.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SYSCENSUS_") || name == "NODE_NAME" {
            cmd.env_remove(name);
        }
    }
    let child = cmd
        // Nothing pinned: its SIGTERM would leave the programs attached.
        .args([
            "agent",
            "--no-kube",
            "--no-pin",
            "--cgroup-root",
            &root,
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .env("SYSCENSUS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the agent")?;
    let mut agent = AgentProcess { child };
    let pid = agent.child.id();
    let agent_log = || fs::read_to_string(state.path().join("agent.log")).unwrap_or_default();
    let started = Instant::now();
    let mut last = loop {
        if let Ok(m) = metrics(port)
            && m.get("syscensus_sys_enter_attached") == Some(&1.0)
        {
            break m;
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            bail!("the agent exited ({status}):\n{}", agent_log());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the agent did not serve /metrics:\n{}",
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (rss_empty, _) = memory_kib(pid)?;

    let mut rng = Rng(0xc0ff_ee00 ^ count as u64);
    let creating = Instant::now();
    for _ in 0..count {
        let pod = qos.join(format!("pod{}", rng.uuid()));
        cgroups.mkdir(&pod)?;
        let dir = pod.join(rng.container_id());
        cgroups.mkdir(&dir)?;
        let child = start_sleeper(&dir)?;
        cgroups.sleepers.push(child);
    }
    let created_s = creating.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(m) = metrics(port) {
            last = m;
        }
        if last.get("syscensus_containers_tracked") == Some(&(count as f64)) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agent tracks {:?} of {count} containers:\n{}",
            last.get("syscensus_containers_tracked"),
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tracked_after_s = creating.elapsed().as_secs_f64();
    // Steady state: every container read at least once, then CPU over a
    // window.
    std::thread::sleep(Duration::from_secs(1));
    let window = Duration::from_secs(4);
    let ticks_before = cpu_ticks(pid)?;
    std::thread::sleep(window);
    let ticks = cpu_ticks(pid)? - ticks_before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_percent = ticks as f64 / hz / window.as_secs_f64() * 100.0;
    let (rss, hwm) = memory_kib(pid)?;
    if let Ok(m) = metrics(port) {
        last = m;
    }
    let maps = maps_of(pid)?;
    let kernel_bytes: u64 = maps
        .iter()
        .filter_map(|m| m["bytes_memlock"].as_u64())
        .sum();
    let rows = maps.iter().find(|m| m["name"] == "ROWS");
    let per_row = rows.and_then(|m| {
        Some(m["bytes_memlock"].as_u64()? as f64 / m["max_entries"].as_u64()? as f64)
    });
    let metric = |name: &str| last.get(name).copied().unwrap_or(f64::NAN);

    cgroups.stop_sleepers();
    agent.stop();
    cgroups.remove();

    println!(
        "agent with {count:>5} containers: RSS {:>6.1} MiB (peak {:.1}, {:.1} with none), CPU {cpu_percent:.1}%, kernel maps {:.2} MiB ({} rows in use of {}; {:.0} B per row)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss_empty as f64 / 1024.0,
        kernel_bytes as f64 / (1024.0 * 1024.0),
        metric("syscensus_map_rows_used"),
        metric("syscensus_map_rows_capacity"),
        per_row.unwrap_or(f64::NAN),
    );
    Ok(json!({
        "containers": count,
        "tracked": metric("syscensus_containers_tracked"),
        "rss_kib": rss,
        "hwm_kib": hwm,
        "rss_kib_no_containers": rss_empty,
        "cpu_percent": cpu_percent,
        "cpu_window_s": window.as_secs_f64(),
        "create_s": created_s,
        "all_tracked_after_s": tracked_after_s,
        "metrics_map_bytes": metric("syscensus_map_bytes"),
        "rows_used": metric("syscensus_map_rows_used"),
        "rows_capacity": metric("syscensus_map_rows_capacity"),
        "events_lost": metric("syscensus_events_lost_total"),
        "kernel_map_bytes": kernel_bytes,
        "rows_map_bytes_per_row": per_row,
        "maps": maps,
    }))
}
