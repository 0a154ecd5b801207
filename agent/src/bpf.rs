//! The loaded kernel program: load and attach it, mark cgroups for recording,
//! read what they did.
//!
//! One [`Tracer`] owns the loaded program for as long as it is needed:
//! dropping it detaches both hooks and frees the maps.
use std::collections::{BTreeMap, HashMap as StdHashMap};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{BtfTracePoint, ProgramError, tp_btf::BtfTracePointLinkId},
};
use syscensus_common::{
    COUNTERS_MAP, EXEC_PROGRAM, FILTER_MAP, KernelOffsets, OFFSETS_GLOBAL, ROWS_CAPACITY, ROWS_MAP,
    Row, RowKey, SYS_ENTER_PROGRAM, SYSCALL_SLOTS, abi, counter, filter_slot, flag, state,
};
use tracing::debug;

use crate::btf::BtfError;

/// The kernel program, built by `build.rs` for the BPF target.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/syscensus"));

/// The kernel program could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("cannot read kernel BTF for the BPF loader: {0}")]
    LoaderBtf(#[source] aya::BtfError),
    #[error(
        "failed to load the kernel program: {0}: syscensus needs root (CAP_BPF, CAP_PERFMON) and a kernel with BTF tracepoints (5.5+)"
    )]
    Load(#[source] aya::EbpfError),
    #[error(
        "kernel program has no {what} {name}: the embedded object is broken; rebuild syscensus"
    )]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("failed to {action} program {name}: {source}")]
    Program {
        action: &'static str,
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("failed to access map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot record cgroup {cgroup_id}: {capacity} cgroups are already being recorded")]
    Full { cgroup_id: u64, capacity: u32 },
}

impl BpfError {
    /// The exit status for this error.
    pub fn exit_status(&self) -> u8 {
        match self {
            BpfError::Load(_) | BpfError::Btf(_) | BpfError::LoaderBtf(_) => {
                crate::error::exit::UNAVAILABLE
            }
            _ => crate::error::exit::SOFTWARE,
        }
    }
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> BpfError {
    move |source| BpfError::Map { name, source }
}

/// How to load the program.
#[derive(Clone, Debug)]
pub struct TracerOptions {
    /// Capacity of the rows map: cgroups × ABIs recorded at once.
    pub rows_capacity: u32,
    /// Attach `sys_enter` at load. Otherwise [`Tracer::attach_sys_enter`]
    /// does it when the first recording starts, so that an idle node pays
    /// nothing per syscall.
    pub attach_sys_enter: bool,
    /// Read the cgroup id with `bpf_get_current_cgroup_id()` even where the
    /// kernel's layout allows plain loads (the benchmark compares both).
    pub cgroup_id_helper: bool,
}

impl Default for TracerOptions {
    fn default() -> Self {
        Self {
            rows_capacity: ROWS_CAPACITY,
            attach_sys_enter: true,
            cgroup_id_helper: false,
        }
    }
}

/// Finds the kernel struct offsets the program needs in the running kernel.
///
/// The cgroup-id path (`task_struct.cgroups`, `css_set.dfl_cgrp`,
/// `cgroup.kn`, `kernfs_node.id`) has had this shape since v5.5; where a
/// member is missing the program falls back to the helper.
pub fn kernel_offsets(btf: &crate::btf::Btf) -> Result<KernelOffsets, BtfError> {
    let mut offsets = KernelOffsets::default();
    let direct = (|| -> Result<[u32; 4], BtfError> {
        Ok([
            btf.member_offset("task_struct", "cgroups")?,
            btf.member_offset("css_set", "dfl_cgrp")?,
            btf.member_offset("cgroup", "kn")?,
            btf.member_offset("kernfs_node", "id")?,
        ])
    })();
    match direct {
        Ok([task_cgroups, css_set_dfl_cgrp, cgroup_kn, kernfs_node_id]) => {
            offsets.direct_cgroup_id = 1;
            offsets.task_cgroups = task_cgroups;
            offsets.css_set_dfl_cgrp = css_set_dfl_cgrp;
            offsets.cgroup_kn = cgroup_kn;
            offsets.kernfs_node_id = kernfs_node_id;
        }
        Err(error) => debug!(%error, "reading the cgroup id with the helper"),
    }
    #[cfg(target_arch = "x86_64")]
    {
        // TS_COMPAT: arch/x86/include/asm/thread_info.h at v6.18 (a #define,
        // so not in BTF; unchanged since 2.6).
        const TS_COMPAT: u32 = 0x0002;
        let thread_info = btf.member_offset("task_struct", "thread_info")?;
        let status = btf.member_offset("thread_info", "status")?;
        offsets.ti_status = thread_info + status;
        offsets.ts_compat = TS_COMPAT;
    }
    Ok(offsets)
}

/// What one cgroup did, read from the kernel without disturbing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether the first exec happened (recording has started).
    pub recording: bool,
    /// Syscall numbers seen, per ABI (`syscensus_common::abi`), sorted.
    pub seen: BTreeMap<u32, Vec<u32>>,
    /// A syscall number out of the recorded range was seen.
    pub out_of_range: bool,
    /// A compat or x32 syscall was lost because the map was full.
    pub row_lost: bool,
}

impl Snapshot {
    /// Number of distinct (ABI, syscall) pairs seen.
    pub fn len(&self) -> usize {
        self.seen.values().map(Vec::len).sum()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn seen_numbers(row: &Row) -> Vec<u32> {
    (0..SYSCALL_SLOTS)
        .filter(|&nr| row.seen[nr] != 0)
        .map(|nr| nr as u32)
        .collect()
}

/// Totals of the kernel program's event counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub out_of_range: u64,
    pub row_map_full: u64,
    pub armed: u64,
}

/// The loaded and attached kernel program.
pub struct Tracer {
    ebpf: Ebpf,
    loader_btf: Btf,
    rows: HashMap<MapData, RowKey, Row>,
    filter: Array<MapData, u64>,
    counters: PerCpuArray<MapData, u64>,
    /// How many marked cgroups share each prefilter bit.
    filter_users: StdHashMap<u32, u32>,
    /// Cgroups marked by this tracer.
    marked: StdHashMap<u64, ()>,
    sys_enter_link: Option<BtfTracePointLinkId>,
    rows_capacity: u32,
}

impl Tracer {
    /// Loads the program into the kernel and attaches the exec hook (and
    /// `sys_enter` if asked).
    pub fn load(options: &TracerOptions) -> Result<Tracer, BpfError> {
        let btf = crate::btf::Btf::from_kernel()?;
        let mut offsets = kernel_offsets(&btf)?;
        if options.cgroup_id_helper {
            offsets.direct_cgroup_id = 0;
        }
        let loader_btf = Btf::parse_file(crate::btf::kernel_btf_path(), aya::Endianness::default())
            .map_err(BpfError::LoaderBtf)?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&loader_btf))
            .override_global(OFFSETS_GLOBAL, &offsets, true)
            .map_max_entries(ROWS_MAP, options.rows_capacity)
            .load(OBJECT)
            .map_err(BpfError::Load)?;
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name)
                .ok_or(BpfError::Missing { what: "map", name })
        };
        let rows = HashMap::try_from(take(&mut ebpf, ROWS_MAP)?).map_err(map_err(ROWS_MAP))?;
        let filter = Array::try_from(take(&mut ebpf, FILTER_MAP)?).map_err(map_err(FILTER_MAP))?;
        let counters =
            PerCpuArray::try_from(take(&mut ebpf, COUNTERS_MAP)?).map_err(map_err(COUNTERS_MAP))?;
        let mut tracer = Tracer {
            ebpf,
            loader_btf,
            rows,
            filter,
            counters,
            filter_users: StdHashMap::new(),
            marked: StdHashMap::new(),
            sys_enter_link: None,
            rows_capacity: options.rows_capacity,
        };
        tracer.load_program(EXEC_PROGRAM)?;
        tracer.load_program(SYS_ENTER_PROGRAM)?;
        let exec = tracer.program(EXEC_PROGRAM)?;
        exec.attach().map_err(|source| BpfError::Program {
            action: "attach",
            name: EXEC_PROGRAM,
            source,
        })?;
        if options.attach_sys_enter {
            tracer.attach_sys_enter()?;
        }
        debug!(offsets = ?offsets, "kernel program loaded");
        Ok(tracer)
    }

    fn program(&mut self, name: &'static str) -> Result<&mut BtfTracePoint, BpfError> {
        let program = self.ebpf.program_mut(name).ok_or(BpfError::Missing {
            what: "program",
            name,
        })?;
        program.try_into().map_err(|source| BpfError::Program {
            action: "find",
            name,
            source,
        })
    }

    fn load_program(&mut self, name: &'static str) -> Result<(), BpfError> {
        // The tracepoint and the program share a name.
        let btf = self.loader_btf.clone();
        self.program(name)?
            .load(name, &btf)
            .map_err(|source| BpfError::Program {
                action: "load",
                name,
                source,
            })
    }

    /// Attaches `sys_enter`; from now on every syscall on the machine runs
    /// the program.
    pub fn attach_sys_enter(&mut self) -> Result<(), BpfError> {
        if self.sys_enter_link.is_none() {
            let link = self
                .program(SYS_ENTER_PROGRAM)?
                .attach()
                .map_err(|source| BpfError::Program {
                    action: "attach",
                    name: SYS_ENTER_PROGRAM,
                    source,
                })?;
            self.sys_enter_link = Some(link);
        }
        Ok(())
    }

    /// Detaches `sys_enter`: syscalls cost nothing extra again.
    pub fn detach_sys_enter(&mut self) -> Result<(), BpfError> {
        if let Some(link) = self.sys_enter_link.take() {
            self.program(SYS_ENTER_PROGRAM)?
                .detach(link)
                .map_err(|source| BpfError::Program {
                    action: "detach",
                    name: SYS_ENTER_PROGRAM,
                    source,
                })?;
        }
        Ok(())
    }

    /// Whether `sys_enter` is attached.
    pub fn sys_enter_attached(&self) -> bool {
        self.sys_enter_link.is_some()
    }

    /// Marks a cgroup: its syscalls are recorded from the first exec
    /// completed inside it on.
    pub fn mark(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        self.mark_in_state(cgroup_id, state::WAITING_FOR_EXEC)
    }

    /// Marks a cgroup whose processes already run the workload: recording
    /// starts at once.
    pub fn mark_recording(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        self.mark_in_state(cgroup_id, state::RECORDING)
    }

    fn mark_in_state(&mut self, cgroup_id: u64, row_state: u8) -> Result<(), BpfError> {
        if self.marked.contains_key(&cgroup_id) {
            return Ok(());
        }
        // Prefilter first: the exec hook only looks at rows whose bit is set.
        self.filter_add(cgroup_id)?;
        let inserted =
            self.rows
                .insert(RowKey::new(cgroup_id, abi::NATIVE), Row::new(row_state), 0);
        if let Err(error) = inserted {
            self.filter_remove(cgroup_id)?;
            return Err(match error {
                MapError::SyscallError(ref e) if e.io_error.raw_os_error() == Some(libc::E2BIG) => {
                    BpfError::Full {
                        cgroup_id,
                        capacity: self.rows_capacity,
                    }
                }
                other => map_err(ROWS_MAP)(other),
            });
        }
        self.marked.insert(cgroup_id, ());
        debug!(cgroup_id, "cgroup marked");
        Ok(())
    }

    /// Stops recording a cgroup and forgets what it did: take a
    /// [`snapshot`](Self::snapshot) first.
    pub fn unmark(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        for abi_id in 0..abi::COUNT {
            match self.rows.remove(&RowKey::new(cgroup_id, abi_id)) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(ref e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(other) => return Err(map_err(ROWS_MAP)(other)),
            }
        }
        if self.marked.remove(&cgroup_id).is_some() {
            self.filter_remove(cgroup_id)?;
        }
        debug!(cgroup_id, "cgroup unmarked");
        Ok(())
    }

    fn filter_add(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let (word, bit) = filter_slot(cgroup_id);
        let users = self.filter_users.entry(bit_index(word, bit)).or_insert(0);
        *users += 1;
        if *users == 1 {
            let value = self.filter.get(&word, 0).map_err(map_err(FILTER_MAP))?;
            self.filter
                .set(word, value | bit, 0)
                .map_err(map_err(FILTER_MAP))?;
        }
        Ok(())
    }

    fn filter_remove(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let (word, bit) = filter_slot(cgroup_id);
        let index = bit_index(word, bit);
        let Some(users) = self.filter_users.get_mut(&index) else {
            return Ok(());
        };
        *users -= 1;
        if *users == 0 {
            self.filter_users.remove(&index);
            let value = self.filter.get(&word, 0).map_err(map_err(FILTER_MAP))?;
            self.filter
                .set(word, value & !bit, 0)
                .map_err(map_err(FILTER_MAP))?;
        }
        Ok(())
    }

    /// What a marked cgroup did so far. `None` if it is not marked.
    pub fn snapshot(&self, cgroup_id: u64) -> Result<Option<Snapshot>, BpfError> {
        let native = match self.rows.get(&RowKey::new(cgroup_id, abi::NATIVE), 0) {
            Ok(row) => row,
            Err(MapError::KeyNotFound) => return Ok(None),
            Err(other) => return Err(map_err(ROWS_MAP)(other)),
        };
        let mut snapshot = Snapshot {
            recording: native.state == state::RECORDING,
            out_of_range: native.flags[flag::OUT_OF_RANGE] != 0,
            row_lost: native.flags[flag::ROW_LOST] != 0,
            ..Snapshot::default()
        };
        snapshot.seen.insert(abi::NATIVE, seen_numbers(&native));
        for abi_id in [abi::COMPAT, abi::X32] {
            match self.rows.get(&RowKey::new(cgroup_id, abi_id), 0) {
                Ok(row) => {
                    snapshot.seen.insert(abi_id, seen_numbers(&row));
                }
                Err(MapError::KeyNotFound) => {}
                Err(other) => return Err(map_err(ROWS_MAP)(other)),
            }
        }
        snapshot.seen.retain(|_, v| !v.is_empty());
        Ok(Some(snapshot))
    }

    /// The kernel program's event counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, BpfError> {
        let sum = |index: u32| -> Result<u64, BpfError> {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(map_err(COUNTERS_MAP))?;
            Ok(values.iter().sum())
        };
        Ok(Counters {
            out_of_range: sum(counter::OUT_OF_RANGE)?,
            row_map_full: sum(counter::ROW_MAP_FULL)?,
            armed: sum(counter::ARMED)?,
        })
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("marked", &self.marked.len())
            .field("sys_enter_attached", &self.sys_enter_attached())
            .finish_non_exhaustive()
    }
}

fn bit_index(word: u32, bit: u64) -> u32 {
    word * 64 + bit.trailing_zeros()
}
