//! Exec sessions and hooks, seen from userspace: what the kernel told about
//! each when it started (its command line, through the ring buffer), and
//! what the sessions that ended did, kept here once their rows are freed.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use syscensus_common::{EVENT_ARGV_BYTES, SessionEvent, session};

/// What kind of session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionKind {
    /// An exec session: `runc exec`, `kubectl exec`, an exec probe or
    /// lifecycle hook run through the runtime.
    Exec,
    /// An OCI hook the runtime ran inside the container before the
    /// entrypoint (createContainer, startContainer).
    Hook,
    /// Not known: neither the session's start event nor its first row was
    /// seen (the ring buffer or the rows map was full).
    Unknown,
}

impl SessionKind {
    /// The kind a row or event names (`syscensus_common::session`).
    pub fn from_raw(raw: u32) -> SessionKind {
        match u8::try_from(raw) {
            Ok(session::EXEC) => SessionKind::Exec,
            Ok(session::HOOK) => SessionKind::Hook,
            _ => SessionKind::Unknown,
        }
    }
}

/// A session (or, once ended, every ended session of the same kind and
/// command line) of a recorded cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The session's id (of the first, for merged ended sessions).
    pub id: u32,
    pub kind: SessionKind,
    /// Host PID of the session's first process (of the last one started).
    pub pid: u32,
    /// The command line as exec'd, if its start event was read (cut at
    /// `syscensus_common::EVENT_ARGV_BYTES` bytes).
    pub argv: Option<Vec<String>>,
    /// When the first of these sessions started, and when one was last seen
    /// (started, running or found ended).
    pub first_seen: Option<jiff::Timestamp>,
    pub last_seen: Option<jiff::Timestamp>,
    /// How many sessions this stands for.
    pub count: u64,
    /// Syscall numbers seen, per ABI (`syscensus_common::abi`), sorted.
    pub seen: BTreeMap<u32, Vec<u32>>,
    /// Whether every process of the session(s) has exited.
    pub ended: bool,
}

/// One session as the book keeps it.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub kind: SessionKind,
    pub pid: u32,
    pub argv: Option<Vec<String>>,
    pub first_seen: Option<jiff::Timestamp>,
    pub last_seen: Option<jiff::Timestamp>,
    pub count: u64,
    pub seen: BTreeMap<u32, BTreeSet<u32>>,
    pub ended: bool,
}

impl Entry {
    fn new(kind: SessionKind, pid: u32) -> Entry {
        Entry {
            kind,
            pid,
            argv: None,
            first_seen: None,
            last_seen: None,
            count: 1,
            seen: BTreeMap::new(),
            ended: false,
        }
    }

    /// The snapshot of this entry with `live` (syscalls read from its rows)
    /// added.
    pub(super) fn snapshot(&self, id: u32, live: &BTreeMap<u32, Vec<u32>>) -> SessionSnapshot {
        let mut seen = self.seen.clone();
        for (abi, numbers) in live {
            seen.entry(*abi).or_default().extend(numbers);
        }
        SessionSnapshot {
            id,
            kind: self.kind,
            pid: self.pid,
            argv: self.argv.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            count: self.count,
            seen: seen
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(abi, v)| (abi, v.into_iter().collect()))
                .collect(),
            ended: self.ended,
        }
    }
}

/// The sessions of every recorded cgroup, by cgroup and session id. Ended
/// sessions of one cgroup with the same kind and command line are merged
/// into the first, so that a probe run every few seconds keeps one entry.
#[derive(Debug, Default)]
pub(super) struct Book {
    pub by_cgroup: HashMap<u64, BTreeMap<u32, Entry>>,
}

impl Book {
    /// Takes in a session's start.
    pub(super) fn started(&mut self, event: &SessionEvent, at: Option<jiff::Timestamp>) {
        let entry = self
            .by_cgroup
            .entry(event.cgroup_id)
            .or_default()
            .entry(event.session)
            .or_insert_with(|| Entry::new(SessionKind::from_raw(event.session_kind), event.pid));
        entry.kind = SessionKind::from_raw(event.session_kind);
        entry.pid = event.pid;
        entry.argv = Some(argv_of(event));
        entry.first_seen = entry.first_seen.or(at);
        entry.last_seen = at.or(entry.last_seen);
    }

    /// A session found by its rows (its start event was lost).
    pub(super) fn found(&mut self, cgroup_id: u64, id: u32, kind: SessionKind, pid: u32) {
        let entry = self
            .by_cgroup
            .entry(cgroup_id)
            .or_default()
            .entry(id)
            .or_insert_with(|| Entry::new(kind, pid));
        if entry.kind == SessionKind::Unknown {
            entry.kind = kind;
        }
        if entry.pid == 0 {
            entry.pid = pid;
        }
    }

    /// The sessions still running, as (cgroup, id).
    pub(super) fn running(&self) -> Vec<(u64, u32)> {
        self.by_cgroup
            .iter()
            .flat_map(|(cgroup, sessions)| {
                sessions
                    .iter()
                    .filter(|(_, e)| !e.ended)
                    .map(move |(id, _)| (*cgroup, *id))
            })
            .collect()
    }

    /// Records that a session ended having made `seen`, and merges it into
    /// an earlier ended session of the same kind and command line.
    pub(super) fn ended(
        &mut self,
        cgroup_id: u64,
        id: u32,
        seen: BTreeMap<u32, Vec<u32>>,
        at: jiff::Timestamp,
    ) {
        let Some(sessions) = self.by_cgroup.get_mut(&cgroup_id) else {
            return;
        };
        let Some(mut entry) = sessions.remove(&id) else {
            return;
        };
        for (abi, numbers) in seen {
            entry.seen.entry(abi).or_default().extend(numbers);
        }
        entry.ended = true;
        entry.last_seen = Some(at);
        entry.first_seen = entry.first_seen.or(Some(at));
        let same = sessions
            .iter_mut()
            .find(|(_, e)| e.ended && e.kind == entry.kind && e.argv == entry.argv);
        match same {
            Some((_, earlier)) => {
                earlier.count += entry.count;
                earlier.pid = entry.pid;
                earlier.last_seen = entry.last_seen.max(earlier.last_seen);
                earlier.first_seen = match (earlier.first_seen, entry.first_seen) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                for (abi, numbers) in entry.seen {
                    earlier.seen.entry(abi).or_default().extend(numbers);
                }
            }
            None => {
                sessions.insert(id, entry);
            }
        }
    }

    /// Forgets a cgroup's sessions.
    pub(super) fn forget(&mut self, cgroup_id: u64) {
        self.by_cgroup.remove(&cgroup_id);
    }
}

/// The arguments of a session's command line: zero-terminated strings, the
/// last one possibly cut.
pub(super) fn argv_of(event: &SessionEvent) -> Vec<String> {
    let len = usize::from(event.argv_len).min(EVENT_ARGV_BYTES);
    let bytes = &event.argv[..len];
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The wall-clock time of `boot_ns` (`CLOCK_BOOTTIME`), if the clocks can be
/// read.
pub(super) fn wall_time_of(boot_ns: u64) -> Option<jiff::Timestamp> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    let now_boot = i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec);
    let ago = now_boot - i128::from(boot_ns);
    let wall = jiff::Timestamp::now().as_nanosecond() - ago.max(0);
    jiff::Timestamp::from_nanosecond(wall).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn event(id: u32, kind: u8, argv: &[u8]) -> SessionEvent {
        let mut event = SessionEvent {
            cgroup_id: 7,
            session: id,
            argv_len: argv.len() as u16,
            kind: syscensus_common::event::SESSION,
            pid: 100 + id,
            session_kind: u32::from(kind),
            boot_ns: 0,
            argv: [0xaa; EVENT_ARGV_BYTES],
        };
        event.argv[..argv.len()].copy_from_slice(argv);
        event
    }

    #[test]
    fn command_lines_are_split_at_zero_bytes() {
        assert_eq!(
            argv_of(&event(1, session::EXEC, b"sh\0-c\0test -f /ready\0")),
            vec!["sh", "-c", "test -f /ready"]
        );
        // Cut in the middle of an argument: what was read is kept.
        assert_eq!(
            argv_of(&event(1, session::EXEC, b"cat\0/etc/pa")),
            vec!["cat", "/etc/pa"]
        );
        assert!(argv_of(&event(1, session::EXEC, b"")).is_empty());
    }

    #[test]
    fn ended_sessions_with_the_same_command_are_merged() {
        let mut book = Book::default();
        let t = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        for (id, argv) in [(1, &b"probe\0"[..]), (2, b"probe\0"), (3, b"sh\0")] {
            book.started(&event(id, session::EXEC, argv), Some(t(i64::from(id))));
        }
        book.started(&event(4, session::HOOK, b"probe\0"), Some(t(4)));
        assert_eq!(book.running().len(), 4);
        book.ended(7, 1, BTreeMap::from([(0, vec![1, 2])]), t(10));
        book.ended(7, 2, BTreeMap::from([(0, vec![3])]), t(20));
        book.ended(7, 4, BTreeMap::new(), t(30));
        let sessions = &book.by_cgroup[&7];
        assert_eq!(sessions.len(), 3, "{sessions:?}");
        let probe = &sessions[&1];
        assert_eq!(probe.count, 2);
        assert_eq!(probe.first_seen, Some(t(1)));
        assert_eq!(probe.last_seen, Some(t(20)));
        assert_eq!(probe.seen[&0], BTreeSet::from([1, 2, 3]));
        // A hook with the same command line is not an exec session.
        assert_eq!(sessions[&4].kind, SessionKind::Hook);
        assert_eq!(book.running(), vec![(7, 3)]);
    }
}
