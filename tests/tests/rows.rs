//! The kernel program's rows, seen through its pinned maps: nothing is left
//! behind when a recording ends.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::path::PathBuf;

use aya::maps::{HashMap, Map, MapData};
use syscensus::bpf::{PIN_LAYOUT, Tracer, TracerOptions};
use syscensus_common::{ROWS_MAP, Row, RowKey, abi};
use syscensus_tests::{containers::random_hex, require_root};

/// A pin directory of its own on the BPF file system, removed afterwards.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A compat row that a `sys_enter` racing an unmark made after its
/// cgroup's rows were removed (it found the workload's row just before,
/// and made the compat one just after): the next unmark removes it, so it
/// neither holds a row of the map nor keeps its prefilter slot set.
#[test]
fn rows_left_without_their_cgroup_are_removed() {
    require_root();
    assert!(
        std::path::Path::new("/sys/fs/bpf").join(".").exists(),
        "/sys/fs/bpf is not mounted: scripts/setup mounts it"
    );
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/syscensus-test-{}",
        random_hex(8)
    )));
    let mut tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: false,
        pin_dir: Some(pins.0.clone()),
        ..TracerOptions::default()
    })
    .unwrap();
    let data = MapData::from_pin(pins.0.join(PIN_LAYOUT).join(ROWS_MAP)).unwrap();
    let mut rows: HashMap<MapData, RowKey, Row> = HashMap::try_from(Map::HashMap(data)).unwrap();
    // cgroup ids are inode numbers: these two are no cgroup's.
    let (gone, other) = (u64::MAX - 7, u64::MAX - 8);
    let orphan = RowKey::new(gone, abi::COMPAT);
    rows.insert(orphan, Row::new(0), 0).unwrap();
    tracer.mark(other).unwrap();
    tracer.unmark(other).unwrap();
    assert!(
        rows.get(&orphan, 0).is_err(),
        "the compat row of an unmarked cgroup is still there"
    );
    assert!(tracer.marked().unwrap().is_empty());
    drop(tracer);
}
