//! The standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), as Prometheus's Go client names
//! and computes them, read from `/proc/self` at each scrape.
//!
//! Hand-written: prometheus-client has no process collector, and the one
//! crate that adds it (kubert-prometheus-process) lags three releases of
//! prometheus-client behind and reports the registration time as the start
//! time. Everything here is read from procfs files (no new syscall for the
//! agent's own seccomp profile beyond opening and reading them).
use std::path::Path;

/// One reading of the process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Process {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    /// Since the Unix epoch, seconds.
    pub start_time_seconds: f64,
    pub threads: u64,
    pub open_fds: u64,
    /// The soft limit on open file descriptors; `None`: unlimited.
    pub max_fds: Option<u64>,
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Stat {
    /// Clock ticks.
    pub utime: u64,
    pub stime: u64,
    pub threads: u64,
    /// Clock ticks after boot.
    pub start_time: u64,
    /// Bytes.
    pub vsize: u64,
    /// Pages.
    pub rss: u64,
}

/// Parses `/proc/<pid>/stat` (proc(5)). The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so the fields are
/// counted from after the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Fields 3 (state) onwards.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        start_time: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
pub(super) fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`: `Some(None)`
/// when unlimited.
pub(super) fn parse_max_fds(text: &str) -> Option<Option<u64>> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

/// Reads the process whose procfs directory is `proc_dir` (`/proc/self`),
/// with the system's `/proc/stat`. `None` when a file cannot be read or
/// parsed.
pub(super) fn read(proc_dir: &Path, proc_stat: &Path) -> Option<Process> {
    let stat = parse_stat(&std::fs::read_to_string(proc_dir.join("stat")).ok()?)?;
    let boot = parse_boot_time(&std::fs::read_to_string(proc_stat).ok()?)?;
    let max_fds = parse_max_fds(&std::fs::read_to_string(proc_dir.join("limits")).ok()?)?;
    let open_fds = std::fs::read_dir(proc_dir.join("fd")).ok()?.count() as u64;
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)? as f64;
    let page = u64::try_from(page).ok()?;
    Some(Process {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_memory_bytes: stat.rss * page,
        virtual_memory_bytes: stat.vsize,
        start_time_seconds: boot as f64 + stat.start_time as f64 / ticks,
        threads: stat.threads,
        open_fds,
        max_fds,
    })
}

/// Reads this process.
pub fn current() -> Option<Process> {
    read(Path::new("/proc/self"), Path::new("/proc/stat"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and parentheses, as a process may
        // choose (prctl PR_SET_NAME).
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    250 75 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                threads: 7,
                start_time: 123456,
                vsize: 104857600,
                rss: 2560,
            })
        );
        assert_eq!(parse_stat("4242 (truncated"), None);
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }

    #[test]
    fn limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(Some(1024)));
        let unlimited = limits.replace("1024 ", "unlimited");
        assert_eq!(parse_max_fds(&unlimited), Some(None));
        assert_eq!(parse_max_fds("Limit\n"), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1800000000\nprocesses 9\n"),
            Some(1_800_000_000)
        );
    }

    /// This test process, read through the collector, agrees with what
    /// other procfs files and the clock say about it.
    #[test]
    fn this_process_as_other_sources_see_it() {
        // Some CPU time, so that a wrong field shows, compared with what
        // getrusage says before and after the reading.
        let rusage = || {
            // SAFETY: getrusage fills the struct it is given.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            secs(usage.ru_utime) + secs(usage.ru_stime)
        };
        let mut x = 0u64;
        while rusage() < 0.2 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let before = rusage();
        let p = current().unwrap();
        let after = rusage();
        // procfs counts in clock ticks (10 ms).
        assert!(
            p.cpu_seconds > before - 0.05 && p.cpu_seconds < after + 0.05,
            "{p:?}: getrusage said {before} before and {after} after"
        );
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap()
        };
        // Threads come and go in the test harness: close, not equal.
        assert!(
            p.threads >= 1 && p.threads.abs_diff(field("Threads:")) <= 2,
            "{p:?}"
        );
        let rss = field("VmRSS:") * 1024;
        assert!(
            p.resident_memory_bytes > rss / 2 && p.resident_memory_bytes < rss * 2,
            "{p:?} against VmRSS {rss}"
        );
        assert!(p.virtual_memory_bytes >= p.resident_memory_bytes, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 3600.0,
            "{p:?}, now {now}"
        );
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.max_fds.is_none_or(|m| m >= p.open_fds), "{p:?}");
    }
}
