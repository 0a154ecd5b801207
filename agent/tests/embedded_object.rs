//! The kernel program embedded in the agent holds every map and program
//! the loader takes, by the names `syscensus-common` gives both sides:
//! checked by parsing the object as the loader does (aya-obj), without
//! loading it, so no privileges are needed. Add a name here when the loader
//! takes a new map or program.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use syscensus_common::{
    COUNTERS_MAP, EVENTS_MAP, FILTER_MAP, MEMBERS_MAP, ROOT_PATHS_MAP, ROWS_MAP, WATCH_MAP, program,
};

#[test]
fn the_embedded_object_has_every_map_and_program_the_loader_takes() {
    let object = aya_obj::Object::parse(syscensus::bpf::OBJECT).unwrap();
    for map in [
        ROWS_MAP,
        FILTER_MAP,
        COUNTERS_MAP,
        WATCH_MAP,
        ROOT_PATHS_MAP,
        MEMBERS_MAP,
        EVENTS_MAP,
    ] {
        assert!(
            object.maps.contains_key(map),
            "no map {map} in the object: {:?}",
            object.maps.keys().collect::<Vec<_>>()
        );
    }
    for name in [
        program::SYS_ENTER,
        program::EXEC,
        program::FORK,
        program::EXIT,
        program::CGROUP_MKDIR,
        program::CGROUP_ATTACH,
    ] {
        assert!(
            object.programs.contains_key(name),
            "no program {name} in the object: {:?}",
            object.programs.keys().collect::<Vec<_>>()
        );
    }
}
