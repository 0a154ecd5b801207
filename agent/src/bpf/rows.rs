//! What the tracer records: marking cgroups, reading and freeing their rows,
//! the cgroups below them, and their sessions.
use std::collections::{BTreeMap, HashSet};

use aya::maps::MapError;
use syscensus_common::{Member, Row, RowKey, abi, filter_slot, flag, session, state};
use tracing::debug;

use super::{
    BpfError, Snapshot, Tracer, events, is_not_found, map_err, seen_numbers,
    sessions::{SessionKind, SessionSnapshot},
};
use syscensus_common::{ALIAS_MAP, MEMBERS_MAP, ROWS_MAP};

/// `BPF_NOEXIST`: create the element only if it is absent.
const BPF_NOEXIST: u64 = 1;

/// The ABIs a row can be kept under.
const ABIS: [u32; 3] = [abi::NATIVE, abi::COMPAT, abi::X32];

impl Tracer {
    /// Marks a cgroup: its syscalls are recorded from the first exec
    /// completed inside it on. Marking a marked cgroup changes nothing.
    pub fn mark(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let marked = self.mark_in_state(cgroup_id, state::WAITING_FOR_EXEC, 0);
        self.rows_changed()?;
        marked
    }

    /// Marks a cgroup whose processes already run the workload: recording
    /// starts at once. An existing row is set to recording. `init_tgid` is
    /// the workload's first process and `members` the others already
    /// running (their children join as they are forked); with no
    /// `init_tgid`, the first process to enter or exec in the cgroup is the
    /// workload's.
    pub fn mark_recording(
        &mut self,
        cgroup_id: u64,
        init_tgid: u32,
        members: &[u32],
    ) -> Result<(), BpfError> {
        let marked = self.add_members_and_mark(cgroup_id, init_tgid, members);
        self.rows_changed()?;
        marked
    }

    fn add_members_and_mark(
        &mut self,
        cgroup_id: u64,
        init_tgid: u32,
        members: &[u32],
    ) -> Result<(), BpfError> {
        let member = Member::new(cgroup_id, 0, session::WORKLOAD);
        for &tgid in members.iter().filter(|&&t| t != init_tgid) {
            self.members
                .insert(tgid, member, 0)
                .map_err(map_err(MEMBERS_MAP))?;
        }
        self.mark_in_state(cgroup_id, state::RECORDING, init_tgid)
    }

    fn mark_in_state(
        &mut self,
        cgroup_id: u64,
        row_state: u8,
        init_tgid: u32,
    ) -> Result<(), BpfError> {
        let key = RowKey::new(cgroup_id, abi::NATIVE);
        // Prefilter first: the exec hook only looks at rows whose slot is set.
        self.filter.set(cgroup_id);
        match self.rows.get(&key, 0) {
            Ok(mut row) => {
                if row_state == state::RECORDING && row.state != state::RECORDING {
                    // Not atomic with the kernel's writes to the row: only
                    // done for rows still waiting, which nothing writes yet.
                    row.state = state::RECORDING;
                    row.init_tgid = init_tgid;
                    self.rows.insert(key, row, 0).map_err(map_err(ROWS_MAP))?;
                }
                return Ok(());
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(map_err(ROWS_MAP)(e)),
        }
        let mut row = Row::new(row_state);
        row.init_tgid = init_tgid;
        if let Err(error) = self.rows.insert(key, row, BPF_NOEXIST) {
            self.release_slots(&[cgroup_id])?;
            return Err(match error {
                MapError::SyscallError(ref e) if e.io_error.raw_os_error() == Some(libc::E2BIG) => {
                    BpfError::Full {
                        cgroup_id,
                        capacity: self.rows_capacity,
                    }
                }
                // The kernel made the row meanwhile: fine.
                MapError::SyscallError(ref e)
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
                {
                    return Ok(());
                }
                other => map_err(ROWS_MAP)(other),
            });
        }
        debug!(cgroup_id, "cgroup marked");
        Ok(())
    }

    /// Records the cgroup `cgroup_id`, below the marked cgroup `owner`, as
    /// part of it: for cgroups that existed before their container was
    /// marked (the kernel adds those made later itself).
    pub fn alias(&mut self, cgroup_id: u64, owner: u64) -> Result<(), BpfError> {
        // Prefilter first, as for rows.
        self.filter.set(cgroup_id);
        let inserted = self.alias.insert(cgroup_id, owner, 0);
        self.rows_changed()?;
        match inserted {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(ref e))
                if e.io_error.raw_os_error() == Some(libc::E2BIG) =>
            {
                self.release_slots(&[cgroup_id])?;
                Err(BpfError::AliasFull { cgroup_id, owner })
            }
            Err(other) => Err(map_err(ALIAS_MAP)(other)),
        }
    }

    /// Decides about a marked cgroup that is not a container itself: if the
    /// kernel made its row below a marked cgroup that is (or is part of) a
    /// container, as `is_container` tells, it is joined to that container,
    /// whose [`snapshot`](Self::snapshot) then includes what it did and
    /// whose [`unmark`](Self::unmark) removes it; otherwise it is unmarked.
    /// Returns the container it was joined to.
    ///
    /// This is for cgroups made below a container before it recorded
    /// anything (crun makes its `container` sub-cgroup while it sets the
    /// container up); those made later are recorded in the container's rows
    /// by the kernel directly.
    pub fn unmark_or_join(
        &mut self,
        cgroup_id: u64,
        is_container: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>, BpfError> {
        let parent = match self.rows.get(&RowKey::new(cgroup_id, abi::NATIVE), 0) {
            Ok(row) => row.parent,
            Err(e) if is_not_found(&e) => 0,
            Err(e) => return Err(map_err(ROWS_MAP)(e)),
        };
        if parent != 0 {
            let owner = self.joined.get(&parent).copied().unwrap_or(parent);
            if is_container(owner) {
                debug!(cgroup_id, owner, "cgroup joined to its container");
                self.joined.insert(cgroup_id, owner);
                return Ok(Some(owner));
            }
        }
        self.unmark(cgroup_id)?;
        Ok(None)
    }

    /// Stops recording a cgroup (with the cgroups joined to it and those
    /// made below it) and forgets what it did: take a
    /// [`snapshot`](Self::snapshot) first. Rows left without their cgroup's
    /// (a compat row a racing `sys_enter` made after an earlier unmark) are
    /// removed too.
    pub fn unmark(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let unmarked = self.remove_marked(cgroup_id);
        self.rows_changed()?;
        unmarked
    }

    fn remove_marked(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let mut ids: HashSet<u64> = self
            .joined
            .iter()
            .filter(|&(_, &owner)| owner == cgroup_id)
            .map(|(&sub, _)| sub)
            .collect();
        ids.insert(cgroup_id);
        self.joined
            .retain(|sub, owner| !ids.contains(sub) && !ids.contains(owner));

        let keys = self.row_keys()?;
        let workloads: HashSet<u64> = keys
            .iter()
            .filter(|k| k.abi == abi::NATIVE && k.session == 0)
            .map(|k| k.cgroup_id)
            .collect();
        let mut released: Vec<u64> = ids.iter().copied().collect();
        for key in &keys {
            let orphan = !workloads.contains(&key.cgroup_id);
            if !(ids.contains(&key.cgroup_id) || orphan) {
                continue;
            }
            if orphan {
                debug!(?key, "row without its cgroup's removed");
                released.push(key.cgroup_id);
            }
            match self.rows.remove(key) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(other) => return Err(map_err(ROWS_MAP)(other)),
            }
        }
        let aliases: Vec<u64> = self
            .alias
            .iter()
            .filter_map(Result::ok)
            .filter(|(child, owner)| ids.contains(owner) || ids.contains(child))
            .map(|(child, _)| child)
            .collect();
        for child in aliases {
            match self.alias.remove(&child) {
                Ok(()) => released.push(child),
                Err(e) if is_not_found(&e) => {}
                Err(other) => return Err(map_err(ALIAS_MAP)(other)),
            }
        }
        let members: Vec<u32> = self
            .members
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, member)| ids.contains(&member.cgroup_id))
            .map(|(tgid, _)| tgid)
            .collect();
        for tgid in members {
            let _ = self.members.remove(&tgid);
        }
        {
            let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
            for id in &ids {
                book.forget(*id);
            }
        }
        self.release_slots(&released)?;
        debug!(cgroup_id, "cgroup unmarked");
        Ok(())
    }

    fn row_keys(&self) -> Result<Vec<RowKey>, BpfError> {
        self.rows
            .keys()
            .map(|k| k.map_err(map_err(ROWS_MAP)))
            .collect()
    }

    /// Clears the prefilter slots of `ids` unless another row or alias still
    /// uses them. Cleared first and looked at second, with a full fence
    /// between: the kernel sets a slot after making its row or alias, so one
    /// made meanwhile is either seen here or sets the slot again after the
    /// clear. Without the fence the clear could become visible only after
    /// the look, and overwrite the kernel's set.
    fn release_slots(&mut self, ids: &[u64]) -> Result<(), BpfError> {
        if ids.is_empty() {
            return Ok(());
        }
        let slots: HashSet<usize> = ids.iter().map(|&id| filter_slot(id)).collect();
        for &id in ids {
            self.filter.clear(id);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        for key in self.row_keys()? {
            if slots.contains(&filter_slot(key.cgroup_id)) {
                self.filter.set(key.cgroup_id);
            }
        }
        for child in self.alias.keys() {
            let child = child.map_err(map_err(ALIAS_MAP))?;
            if slots.contains(&filter_slot(child)) {
                self.filter.set(child);
            }
        }
        Ok(())
    }

    /// The cgroups that have rows of their own, whoever made them, but those
    /// joined to another.
    pub fn marked(&self) -> Result<Vec<u64>, BpfError> {
        let mut ids: Vec<u64> = self
            .row_keys()?
            .into_iter()
            .filter(|k| k.abi == abi::NATIVE && k.session == 0)
            .map(|k| k.cgroup_id)
            .filter(|id| !self.joined.contains_key(id))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// What a marked cgroup did so far (with the cgroups joined to it and
    /// below it, and its sessions). `None` if it is not marked. Call
    /// [`reap`](Self::reap) first for the latest sessions.
    pub fn snapshot(&self, cgroup_id: u64) -> Result<Option<Snapshot>, BpfError> {
        let Some(mut snapshot) = self.snapshot_of(cgroup_id)? else {
            return Ok(None);
        };
        let mut subs: Vec<u64> = self
            .joined
            .iter()
            .filter(|&(_, &owner)| owner == cgroup_id)
            .map(|(&sub, _)| sub)
            .collect();
        subs.sort_unstable();
        for sub in subs {
            if let Some(part) = self.snapshot_of(sub)? {
                snapshot.absorb(part);
            }
        }
        Ok(Some(snapshot))
    }

    fn snapshot_of(&self, cgroup_id: u64) -> Result<Option<Snapshot>, BpfError> {
        let native = match self.rows.get(&RowKey::new(cgroup_id, abi::NATIVE), 0) {
            Ok(row) => row,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(other) => return Err(map_err(ROWS_MAP)(other)),
        };
        let mut snapshot = Snapshot {
            recording: native.state == state::RECORDING,
            init_tgid: native.init_tgid,
            out_of_range: native.flags[flag::OUT_OF_RANGE] != 0,
            row_lost: native.flags[flag::ROW_LOST] != 0,
            outsiders: native.flags[flag::OUTSIDER] != 0,
            member_lost: native.flags[flag::MEMBER_LOST] != 0,
            alias_lost: native.flags[flag::ALIAS_LOST] != 0,
            from_mkdir: native.flags[flag::FROM_MKDIR] != 0,
            no_new_privs: native.flags[flag::NO_NEW_PRIVS] != 0,
            ..Snapshot::default()
        };
        snapshot.seen.insert(abi::NATIVE, seen_numbers(&native));
        for abi_id in [abi::COMPAT, abi::X32] {
            if let Some(row) = self.row(RowKey::new(cgroup_id, abi_id))? {
                snapshot.seen.insert(abi_id, seen_numbers(&row));
            }
        }
        snapshot.seen.retain(|_, v| !v.is_empty());
        let entries: Vec<(u32, super::sessions::Entry)> = {
            let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
            book.by_cgroup
                .get(&cgroup_id)
                .map(|s| s.iter().map(|(id, e)| (*id, e.clone())).collect())
                .unwrap_or_default()
        };
        for (id, entry) in entries {
            let live = if entry.ended {
                BTreeMap::new()
            } else {
                self.session_seen(cgroup_id, id)?
            };
            snapshot.sessions.push(entry.snapshot(id, &live));
        }
        Ok(Some(snapshot))
    }

    fn row(&self, key: RowKey) -> Result<Option<Row>, BpfError> {
        match self.rows.get(&key, 0) {
            Ok(row) => Ok(Some(row)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(other) => Err(map_err(ROWS_MAP)(other)),
        }
    }

    /// What session `id` of `cgroup_id` made so far, per ABI, from its rows.
    fn session_seen(&self, cgroup_id: u64, id: u32) -> Result<BTreeMap<u32, Vec<u32>>, BpfError> {
        let mut seen = BTreeMap::new();
        for abi_id in ABIS {
            if let Some(row) = self.row(RowKey::session(cgroup_id, abi_id, id))? {
                let numbers = seen_numbers(&row);
                if !numbers.is_empty() {
                    seen.insert(abi_id, numbers);
                }
            }
        }
        Ok(seen)
    }

    /// Takes in the sessions that started (their command lines, unless
    /// another task took the event buffer), and frees the rows of the
    /// sessions that ended, keeping what they did: call it regularly while
    /// sessions run, so that their rows do not fill the map. A session has
    /// ended once no process of it is left, so nothing can write to its
    /// rows any more when they are read and deleted.
    pub fn reap(&mut self) -> Result<(), BpfError> {
        if let Some(ring) = self.events.as_mut() {
            // `syscensus record` watches no cgroup: only sessions come.
            let _ = events::drain(ring, &self.book);
        }
        let lost = self.counters()?.events_lost;
        if lost != self.events_lost_seen {
            // A session whose start event was lost is found by its rows.
            self.events_lost_seen = lost;
            self.find_sessions()?;
        }
        let running = self
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running();
        if running.is_empty() {
            return Ok(());
        }
        let live: HashSet<(u64, u32)> = self
            .members
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, m)| m.session != 0)
            .map(|(_, m)| (m.cgroup_id, m.session))
            .collect();
        let now = jiff::Timestamp::now();
        for (cgroup_id, id) in running {
            if live.contains(&(cgroup_id, id)) {
                continue;
            }
            let seen = self.session_seen(cgroup_id, id)?;
            for abi_id in ABIS {
                let removed = self.rows.remove(&RowKey::session(cgroup_id, abi_id, id));
                self.rows_changed()?;
                match removed {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(other) => return Err(map_err(ROWS_MAP)(other)),
                }
            }
            debug!(cgroup_id, session = id, "session ended");
            self.book
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ended(cgroup_id, id, seen, now);
        }
        Ok(())
    }

    /// Adds the sessions that have rows but no entry in the book.
    fn find_sessions(&mut self) -> Result<(), BpfError> {
        for key in self.row_keys()? {
            if key.session == 0 || key.abi != abi::NATIVE {
                continue;
            }
            let (kind, pid) = match self.row(key)? {
                Some(row) => (SessionKind::from_raw(u32::from(row.state)), row.init_tgid),
                None => continue,
            };
            self.book.lock().unwrap_or_else(|e| e.into_inner()).found(
                key.cgroup_id,
                key.session,
                kind,
                pid,
            );
        }
        Ok(())
    }
}

impl Snapshot {
    /// Adds what a cgroup joined to this one did.
    fn absorb(&mut self, part: Snapshot) {
        if !self.recording && part.recording {
            self.no_new_privs = part.no_new_privs;
        }
        self.recording |= part.recording;
        if self.init_tgid == 0 {
            self.init_tgid = part.init_tgid;
        }
        self.out_of_range |= part.out_of_range;
        self.row_lost |= part.row_lost;
        self.outsiders |= part.outsiders;
        self.member_lost |= part.member_lost;
        self.alias_lost |= part.alias_lost;
        for (abi_id, numbers) in part.seen {
            let all = self.seen.entry(abi_id).or_default();
            all.extend(numbers);
            all.sort_unstable();
            all.dedup();
        }
        self.sessions.extend(part.sessions);
    }

    /// The sessions of a kind.
    pub fn sessions_of(&self, kind: SessionKind) -> impl Iterator<Item = &SessionSnapshot> {
        self.sessions.iter().filter(move |s| s.kind == kind)
    }
}
