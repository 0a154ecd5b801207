//! The loaded kernel program: load and attach it, mark cgroups for recording,
//! read what they did.
//!
//! One [`Tracer`] owns the loaded program for as long as it is needed:
//! dropping it detaches every hook and frees the maps.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
};
use syscensus_common::{
    ALIAS_MAP, COUNTERS_MAP, EPOCH_MAP, EVENTS_MAP, FILTER_MAP, KernelOffsets, MEMBERS_MAP, Member,
    OFFSETS_GLOBAL, ROOT_PATH_BYTES, ROOT_PATHS, ROOT_PATHS_MAP, ROWS_CAPACITY, ROWS_MAP, Row,
    RowKey, SYSCALL_SLOTS, WATCH_MAP, ancestors, counter, program, refusal::WATCH_CONFIG_GLOBAL,
};
use tracing::debug;

mod error;
mod events;
mod filter;
mod links;
mod offsets;
mod rows;
mod sessions;
mod watch;

pub use error::BpfError;
pub use events::{Events, MarkedCgroup};
pub use filter::Filter;
use links::Attached;
pub use offsets::kernel_offsets;
pub use sessions::{SessionKind, SessionSnapshot};
pub use watch::{
    FirstRefusal, RefusalCountTotal, RefusalEvents, RefusalKind, Refusals, Verdict, WatchCounters,
    WatchError, WatchPolicy, monotonic_to_system,
};

/// The kernel program, built by `build.rs` for the BPF target.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/syscensus"));

/// Gives free heap memory back to the system.
fn trim_heap() {
    // SAFETY: malloc_trim only releases free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> BpfError {
    move |source| BpfError::Map { name, source }
}

fn is_not_found(error: &MapError) -> bool {
    match error {
        MapError::KeyNotFound => true,
        MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
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
    /// A directory on a BPF file system to pin the maps and links in. The
    /// maps, and the programs attached through pinned links, outlive this
    /// process: a restarted agent finds the rows where it left them, and
    /// nothing is lost while no agent runs (after a crash; a graceful
    /// [`Tracer::release`] detaches the programs).
    pub pin_dir: Option<std::path::PathBuf>,
}

impl Default for TracerOptions {
    fn default() -> Self {
        Self {
            rows_capacity: ROWS_CAPACITY,
            attach_sys_enter: true,
            cgroup_id_helper: false,
            pin_dir: None,
        }
    }
}

/// Maps pinned when a pin directory is given: everything the kernel program
/// writes or userspace needs after a restart.
/// The recorded path's cache (`SEEN_MAP`) is not: a restarted program
/// starts with an empty one, and the epoch, which is, invalidates what a
/// program left attached by a crashed run cached.
const PINNED_MAPS: [&str; 9] = [
    ROWS_MAP,
    FILTER_MAP,
    EPOCH_MAP,
    COUNTERS_MAP,
    WATCH_MAP,
    ROOT_PATHS_MAP,
    MEMBERS_MAP,
    ALIAS_MAP,
    EVENTS_MAP,
];

/// The sub-directory of the pin directory for this version of the maps'
/// layout: a restart after an upgrade that changed a map starts afresh
/// instead of reading maps it does not understand. v2: rows per session,
/// members with their session, cgroups below recorded ones. v3: the rows'
/// epoch, without which a restarted agent could not invalidate the cache of
/// the program left attached.
pub const PIN_LAYOUT: &str = "v3";

/// What one cgroup did, read from the kernel without disturbing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether the first exec happened (recording has started).
    pub recording: bool,
    /// Host PID of the process whose exec started the recording.
    pub init_tgid: u32,
    /// Syscall numbers seen, per ABI (`syscensus_common::abi`), sorted.
    pub seen: BTreeMap<u32, Vec<u32>>,
    /// A syscall number out of the recorded range was seen.
    pub out_of_range: bool,
    /// A compat, x32 or session row was lost because the map was full: its
    /// syscalls are missing.
    pub row_lost: bool,
    /// Processes in no session (the runtime's helper for an exec session,
    /// before it execs the session's command) made syscalls in the cgroup;
    /// they are not recorded.
    pub outsiders: bool,
    /// A workload or session process could not be tracked (the map was
    /// full): its syscalls are missing.
    pub member_lost: bool,
    /// A cgroup made below this one could not be tracked (the map was
    /// full): what ran in it is missing.
    pub alias_lost: bool,
    /// The kernel marked the cgroup as it was made.
    pub from_mkdir: bool,
    /// The first process had `no_new_privs` set when it exec'd.
    pub no_new_privs: bool,
    /// Exec sessions and hooks, running and ended (ended ones with the same
    /// kind and command line merged), by id.
    pub sessions: Vec<SessionSnapshot>,
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
    pub mkdir_marked: u64,
    pub events_lost: u64,
    pub members_added: u64,
    pub outsider_syscalls: u64,
    pub members_full: u64,
    pub sessions: u64,
    pub hooks: u64,
    pub aliases: u64,
    pub alias_full: u64,
}

/// The loaded and attached kernel program.
pub struct Tracer {
    ebpf: Ebpf,
    offsets: KernelOffsets,
    rows: HashMap<MapData, RowKey, Row>,
    filter: Filter,
    counters: PerCpuArray<MapData, u64>,
    watch: HashMap<MapData, u64, u8>,
    root_paths: Array<MapData, [u8; ROOT_PATH_BYTES]>,
    members: HashMap<MapData, u32, Member>,
    alias: HashMap<MapData, u64, u64>,
    /// The rows' epoch (`EPOCH_MAP`) and its value, written by this tracer
    /// only.
    epoch: Array<MapData, u64>,
    epoch_value: u64,
    events: Option<RingBuf<MapData>>,
    links: std::collections::HashMap<&'static str, Attached>,
    pin_dir: Option<std::path::PathBuf>,
    rows_capacity: u32,
    /// The sessions' command lines and what ended sessions did.
    book: Arc<Mutex<sessions::Book>>,
    /// Marked cgroups that userspace joined to the recorded cgroup they are
    /// below (see [`Tracer::unmark_or_join`]): sub-cgroup → container.
    joined: std::collections::HashMap<u64, u64>,
    /// `events_lost` when sessions were last looked for in the rows.
    events_lost_seen: u64,
    /// The refusal watch's maps (`watch.rs`).
    refusal: watch::WatchMaps,
}

impl Tracer {
    /// Loads the program into the kernel and attaches every hook but
    /// `sys_enter`, which is attached only if asked.
    pub fn load(options: &TracerOptions) -> Result<Tracer, BpfError> {
        let btf = crate::btf::Btf::from_kernel()?;
        let mut offsets = kernel_offsets(&btf)?;
        if options.cgroup_id_helper {
            offsets.direct_cgroup_id = 0;
        }
        let (watch_config, watch_unavailable) = watch::kernel_config(&btf);
        // Every parse of the kernel's BTF takes tens of MiB for a few MiB of
        // file: each is given back to the system before the next is made,
        // so that loading peaks at one of them, not their sum. aya's loader
        // parses /sys/kernel/btf/vmlinux as it is made; that copy is
        // dropped for the one read from `kernel_btf_path()`, which the
        // programs need too.
        drop(btf);
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        trim_heap();
        let loader_btf = Btf::parse_file(crate::btf::kernel_btf_path(), aya::Endianness::default())
            .map_err(BpfError::LoaderBtf)?;
        let pin_dir = match &options.pin_dir {
            Some(dir) => {
                let dir = dir.join(PIN_LAYOUT);
                std::fs::create_dir_all(dir.join("links")).map_err(|source| BpfError::PinDir {
                    path: dir.clone(),
                    source,
                })?;
                Some(dir)
            }
            None => None,
        };
        loader
            .btf(Some(&loader_btf))
            .override_global(OFFSETS_GLOBAL, &offsets, true)
            .override_global(WATCH_CONFIG_GLOBAL, &watch_config, true)
            .map_max_entries(ROWS_MAP, options.rows_capacity);
        if let Some(dir) = &pin_dir {
            for name in PINNED_MAPS.into_iter().chain(watch::PINNED_MAPS) {
                // An existing pin is reused: the rows survive a restart.
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader.load(OBJECT).map_err(BpfError::Load)?;
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name)
                .ok_or(BpfError::Missing { what: "map", name })
        };
        let rows = HashMap::try_from(take(&mut ebpf, ROWS_MAP)?).map_err(map_err(ROWS_MAP))?;
        let filter_map = match take(&mut ebpf, FILTER_MAP)? {
            aya::maps::Map::Array(data) => data,
            _ => {
                return Err(BpfError::Missing {
                    what: "array map",
                    name: FILTER_MAP,
                });
            }
        };
        let filter = Filter::map(filter_map).map_err(BpfError::MapFilter)?;
        let counters =
            PerCpuArray::try_from(take(&mut ebpf, COUNTERS_MAP)?).map_err(map_err(COUNTERS_MAP))?;
        let watch = HashMap::try_from(take(&mut ebpf, WATCH_MAP)?).map_err(map_err(WATCH_MAP))?;
        let root_paths =
            Array::try_from(take(&mut ebpf, ROOT_PATHS_MAP)?).map_err(map_err(ROOT_PATHS_MAP))?;
        let members =
            HashMap::try_from(take(&mut ebpf, MEMBERS_MAP)?).map_err(map_err(MEMBERS_MAP))?;
        let alias = HashMap::try_from(take(&mut ebpf, ALIAS_MAP)?).map_err(map_err(ALIAS_MAP))?;
        let epoch = Array::try_from(take(&mut ebpf, EPOCH_MAP)?).map_err(map_err(EPOCH_MAP))?;
        // A pinned epoch goes on from where the last run left it.
        let epoch_value = epoch.get(&0, 0).map_err(map_err(EPOCH_MAP))?;
        let events =
            RingBuf::try_from(take(&mut ebpf, EVENTS_MAP)?).map_err(map_err(EVENTS_MAP))?;
        let refusal = watch::WatchMaps::take(&mut ebpf, watch_unavailable)?;
        let mut tracer = Tracer {
            ebpf,
            offsets,
            rows,
            filter,
            counters,
            watch,
            root_paths,
            members,
            alias,
            epoch,
            epoch_value,
            events: Some(events),
            links: std::collections::HashMap::new(),
            pin_dir,
            rows_capacity: options.rows_capacity,
            book: Arc::default(),
            joined: std::collections::HashMap::new(),
            events_lost_seen: 0,
            refusal,
        };
        tracer.rows_changed()?;
        for name in [
            program::SYS_ENTER,
            program::EXEC,
            program::FORK,
            program::EXIT,
            program::CGROUP_MKDIR,
            program::CGROUP_ATTACH,
        ] {
            tracer.load_program(name, &loader_btf)?;
        }
        watch::load_programs(&mut tracer, &loader_btf)?;
        // The loader's BTF is most of what loading allocated: give it back
        // to the system now rather than keep it resident for the agent's
        // life.
        drop(loader_btf);
        trim_heap();
        let mut always = vec![program::EXEC, program::FORK, program::EXIT];
        if offsets.ancestors_mode != ancestors::NONE {
            always.push(program::CGROUP_MKDIR);
        }
        if offsets.cgroup_root != 0 {
            always.push(program::CGROUP_ATTACH);
        }
        for name in always {
            tracer.attach(name)?;
        }
        // A pinned sys_enter from a run that crashed keeps recording until
        // the new one replaces it.
        let left_attached = tracer
            .pin_path(program::SYS_ENTER)
            .is_some_and(|p| p.exists());
        if options.attach_sys_enter || left_attached {
            tracer.attach_sys_enter()?;
        }
        tracer.resume_refusal_watch()?;
        debug!(?offsets, "kernel program loaded");
        Ok(tracer)
    }

    /// Starts a new epoch of the rows: call after every change to the rows,
    /// members or aliases, so that `sys_enter` stops trusting what it
    /// cached about them before (see `syscensus_common::Seen`).
    fn rows_changed(&mut self) -> Result<(), BpfError> {
        self.epoch_value = self.epoch_value.wrapping_add(1);
        self.epoch
            .set(0, self.epoch_value, 0)
            .map_err(map_err(EPOCH_MAP))
    }

    /// The kernel offsets in use.
    pub fn offsets(&self) -> &KernelOffsets {
        &self.offsets
    }

    /// Whether the kernel marks cgroups made below watched ones itself.
    pub fn marks_on_mkdir(&self) -> bool {
        self.offsets.ancestors_mode != ancestors::NONE
    }

    /// Watches a cgroup: every cgroup made below it from now on is marked by
    /// the kernel as it is made, and reported by [`take_events`](Self::take_events).
    pub fn watch(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        self.watch
            .insert(cgroup_id, 1, 0)
            .map_err(map_err(WATCH_MAP))
    }

    /// Sets the paths (from the hierarchy's root, like `/kubepods`) of
    /// cgroups to watch as soon as they are made.
    pub fn set_root_paths(&mut self, paths: &[&str]) -> Result<(), BpfError> {
        if paths.len() > ROOT_PATHS as usize {
            return Err(BpfError::RootPath {
                path: paths.join(","),
            });
        }
        for i in 0..ROOT_PATHS {
            let mut entry = [0u8; ROOT_PATH_BYTES];
            if let Some(path) = paths.get(i as usize) {
                if path.len() >= ROOT_PATH_BYTES || path.is_empty() {
                    return Err(BpfError::RootPath {
                        path: (*path).to_owned(),
                    });
                }
                entry[..path.len()].copy_from_slice(path.as_bytes());
            }
            self.root_paths
                .set(i, entry, 0)
                .map_err(map_err(ROOT_PATHS_MAP))?;
        }
        Ok(())
    }

    /// Stops watching a cgroup.
    pub fn unwatch(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        match self.watch.remove(&cgroup_id) {
            Err(e) if !is_not_found(&e) => Err(map_err(WATCH_MAP)(e)),
            _ => Ok(()),
        }
    }

    /// The ring buffer of cgroups the kernel marked, for a task that polls
    /// it (it can be taken once). Session events read from it still reach
    /// this tracer; until it is taken, the tracer reads them itself.
    pub fn take_events(&mut self) -> Option<Events> {
        self.events.take().map(|ring| Events {
            ring,
            book: self.book.clone(),
        })
    }

    /// Bytes of kernel memory the maps hold at their capacity (rows,
    /// prefilter, ring buffer), for the metrics. The members and alias maps
    /// are allocated as used and not counted.
    pub fn map_bytes(&self) -> u64 {
        let row = (size_of::<RowKey>() + size_of::<Row>()) as u64;
        u64::from(self.rows_capacity) * row
            + syscensus_common::FILTER_SLOTS as u64
            + u64::from(syscensus_common::EVENTS_BYTES)
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
            mkdir_marked: sum(counter::MKDIR_MARKED)?,
            events_lost: sum(counter::EVENTS_LOST)?,
            members_added: sum(counter::MEMBERS_ADDED)?,
            outsider_syscalls: sum(counter::OUTSIDER_SYSCALLS)?,
            members_full: sum(counter::MEMBERS_FULL)?,
            sessions: sum(counter::SESSIONS)?,
            hooks: sum(counter::HOOKS)?,
            aliases: sum(counter::ALIASES)?,
            alias_full: sum(counter::ALIAS_FULL)?,
        })
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("sys_enter_attached", &self.sys_enter_attached())
            .finish_non_exhaustive()
    }
}
