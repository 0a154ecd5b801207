//! Unit tests of the machine: the node side (without Kubernetes).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeMap, time::Duration};

use super::{testkit::*, *};
use crate::{container_recording::State, syscalls::Arch};

fn names(recording: &ContainerRecording) -> Vec<&str> {
    recording
        .syscalls
        .names("SCMP_ARCH_X86_64")
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect()
}

#[test]
fn without_kubernetes_it_arms_at_once_and_leaves_running_containers_alone() {
    let mut cgroups = BTreeMap::new();
    cgroups.insert(
        9,
        Cgroup {
            path: path(9),
            populated: Some(true),
            rows: None,
            refused: None,
        },
    );
    let world = World::restarted(node_config(), None, cgroups.clone());
    assert!(matches!(world.log[0], Action::Arm { .. }));
    assert!(world.machine.is_armed());
    assert!(
        world.machine.containers().is_empty(),
        "running, not included"
    );

    let config = Config {
        include_running: true,
        ..node_config()
    };
    let world = World::restarted(config, None, cgroups);
    assert!(world.log.contains(&Action::MarkRunning {
        cgroup_id: 9,
        path: path(9)
    }));
    assert_eq!(world.machine.containers()[&9].start, Start::Late);
}

#[test]
fn a_new_container_is_tracked_and_its_runtime_asked_at_once() {
    let mut world = World::new(node_config());
    let pod = world.mkdir(1, path(2).rsplit_once('/').unwrap().0);
    let container = world.mkdir(2, &path(2));
    let actions = world.handle(Input::Cgroups(vec![pod, container]));
    let (id, _) = ids(2);
    assert_eq!(
        actions,
        vec![
            Action::UnmarkOrJoin {
                cgroup_id: 1,
                containers: vec![]
            },
            Action::AskRuntime(vec![(2, id.clone())])
        ],
        "the Pod's cgroup is let go, the container's runtime asked before any tick"
    );
    assert_eq!(world.machine.containers().len(), 1);
    // Once it answered, its profile.
    assert_eq!(
        world.handle(Input::RuntimeAnswers(vec![(2, Ok(named(2)))])),
        vec![Action::WatchRefusals(vec![(2, id.clone())])]
    );
    // Its profile is looked up often for a moment, then at ticks.
    let now = world.now();
    assert!(world.machine.fast_lookups(now.instant));
    assert_eq!(
        world.handle(Input::LookUpProfiles),
        vec![Action::WatchRefusals(vec![(2, id)])]
    );
    assert!(
        !world
            .machine
            .fast_lookups(now.instant + REFUSAL_FAST_LOOKUP)
    );
}

#[test]
fn an_ended_container_is_written_and_its_rows_dropped_only_after_the_checkpoint() {
    let mut world = World::new(node_config());
    world.runtime.insert(ids(1).0, Ok(named(1)));
    world.start_container(1);
    world.run(1, &["read", "write"]);
    world.tick();
    world.end(1, false);
    world.clear_log();
    world.advance(Duration::from_secs(2));
    world.tick();
    let recording = &world.results[&ids(1).0];
    assert_eq!(recording.state, State::Exited);
    assert_eq!(recording.container_name.as_deref(), Some("app"));
    assert_eq!(names(recording), ["read", "write"]);
    assert_eq!(recording.runtime_base_set.as_deref(), Some("runc"));
    let position = |f: &dyn Fn(&Action) -> bool| world.log.iter().position(f).unwrap();
    let written = position(&|a| matches!(a, Action::WriteResults(_)));
    let saved = position(&|a| matches!(a, Action::SaveCheckpoint(_)));
    let dropped = position(&|a| *a == Action::Unmark(1));
    assert!(written < saved && saved < dropped, "{:?}", world.log);
    assert!(world.machine.containers().is_empty());
    assert!(world.checkpoint.as_ref().unwrap().containers.is_empty());
}

#[test]
fn a_result_that_cannot_be_written_waits_and_nothing_is_dropped() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["uname"]);
    world.end(1, true);
    world.fail_results = true;
    world.tick();
    world.tick();
    assert!(world.results.is_empty());
    assert!(world.has_rows(1), "the rows are the only copy");
    assert_eq!(world.machine.containers().len(), 1);
    world.fail_results = false;
    world.tick();
    assert_eq!(names(&world.results[&ids(1).0]), ["uname"]);
    assert!(!world.has_rows(1));
}

#[test]
fn rows_wait_for_a_checkpoint_that_can_be_saved() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["uname"]);
    world.end(1, true);
    world.fail_checkpoint = true;
    world.tick();
    assert!(world.results.contains_key(&ids(1).0));
    assert!(world.has_rows(1));
    world.fail_checkpoint = false;
    world.tick();
    assert!(!world.has_rows(1));
}

#[test]
fn a_row_without_an_event_is_looked_for_only_on_the_second_tick() {
    let mut world = World::new(node_config());
    // The kernel made a row whose event waits behind a slow call.
    world.mkdir(1, &path(1));
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::FindCgroups { .. })), 0);
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::FindCgroups { ids, .. } if ids == &[1])),
        1
    );
    assert!(
        world.machine.containers().contains_key(&1),
        "adopted by its path"
    );
    // Its event, late, changes nothing.
    let event = MarkedCgroup {
        root: false,
        lost: false,
        cgroup_id: 1,
        level: 4,
        path: path(1),
    };
    world.feed(Input::Cgroups(vec![event]));
    assert_eq!(world.machine.containers().len(), 1);
}

#[test]
fn a_row_whose_event_came_meanwhile_is_not_taken_for_lost() {
    let mut world = World::new(node_config());
    let event = world.mkdir(1, &path(1));
    world.tick();
    world.feed(Input::Cgroups(vec![event]));
    world.tick();
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::FindCgroups { .. })), 0);
}

#[test]
fn a_row_whose_cgroup_is_gone_is_written_under_its_cgroup_id() {
    let mut world = World::new(node_config());
    world.mkdir(7, &path(7));
    world.run(7, &["uname"]);
    world.end(7, true);
    world.tick();
    world.tick();
    let recording = &world.results["cgroup-7"];
    assert_eq!(names(recording), ["uname"]);
    assert!(recording.pod.is_none());
    assert!(!world.has_rows(7));
    // A gone row that recorded nothing goes without a result.
    world.mkdir(8, &path(8));
    world.end(8, true);
    world.tick();
    world.tick();
    assert!(!world.results.contains_key("cgroup-8"));
    assert!(!world.has_rows(8));
}

#[test]
fn a_hung_runtime_is_left_alone_and_results_are_written_without_names() {
    let mut world = World::new(node_config());
    for n in 1..=3 {
        world
            .runtime
            .insert(ids(n).0, Err("deadline exceeded".into()));
    }
    world.start_container(1);
    assert_eq!(world.count(|a| matches!(a, Action::AskRuntime(_))), 1);
    // Within the quiet period nobody is asked, on events or ticks.
    world.advance(Duration::from_secs(1));
    world.start_container(2);
    world.run(2, &["uname"]);
    world.end(2, true);
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::AskRuntime(_))), 1);
    let recording = &world.results[&ids(2).0];
    assert_eq!(names(recording), ["uname"]);
    assert!(recording.container_name.is_none());
    // After it, the runtime is asked again, and stops at the first failure.
    world.advance(RUNTIME_QUIET);
    world.start_container(3);
    world.tick();
    let asked: Vec<&Action> = world
        .log
        .iter()
        .filter(|a| matches!(a, Action::AskRuntime(_)))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
}

#[test]
fn sandboxes_are_let_go_and_unknown_containers_asked_again() {
    let mut world = World::new(node_config());
    world.runtime.insert(ids(1).0, Ok(RuntimeAnswer::Sandbox));
    world.start_container(1);
    assert!(world.machine.containers().is_empty());
    assert!(!world.has_rows(1));
    world.start_container(2);
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::AskRuntime(list) if list[0].0 == 2)),
        2
    );
    world.runtime.insert(ids(2).0, Ok(named(2)));
    world.tick();
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::AskRuntime(list) if list[0].0 == 2)),
        3,
        "named once, asked no more"
    );
}

#[test]
fn a_cgroup_that_ended_before_its_entrypoint_has_no_result() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.end(1, true);
    world.tick();
    assert!(world.results.is_empty());
    assert!(!world.has_rows(1));
    assert!(world.machine.containers().is_empty());
}

#[test]
fn the_base_set_follows_no_new_privs_and_is_the_superset_until_known() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["read"]);
    world
        .cgroups
        .get_mut(&1)
        .unwrap()
        .rows
        .as_mut()
        .unwrap()
        .no_new_privs = true;
    world.feed(Input::Snapshot);
    assert_eq!(
        world.results[&ids(1).0].runtime_base_set.as_deref(),
        Some("runc-nnp")
    );
    let c = &world.machine.containers()[&1];
    assert_eq!(c.base_set.clone().flatten().unwrap().name, "runc-nnp");
}

#[test]
fn a_snapshot_writes_running_containers_and_is_confirmed_only_when_written() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["read"]);
    world.fail_results = true;
    world.feed(Input::Snapshot);
    assert_eq!(world.snapshots, 0);
    world.fail_results = false;
    world.feed(Input::Snapshot);
    assert_eq!(world.snapshots, 1);
    assert_eq!(world.results[&ids(1).0].state, State::Running);
    assert!(world.has_rows(1), "still running, still recorded");
}

#[test]
fn the_stop_writes_running_containers_and_saves_the_checkpoint() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.run(1, &["read", "openat"]);
    world.clear_log();
    world.feed(Input::Stop);
    assert_eq!(names(&world.results[&ids(1).0]), ["openat", "read"]);
    let checkpoint = world.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.containers.len(), 1);
    assert_eq!(checkpoint.containers[0].known, 2);
    assert!(world.has_rows(1), "the pinned rows carry on");
}

#[test]
fn a_restart_carries_on_with_the_containers_whose_rows_are_left() {
    let mut world = World::new(node_config());
    world.runtime.insert(ids(1).0, Ok(named(1)));
    world.start_container(1);
    world.start_container(2);
    world.run(1, &["read"]);
    world.tick();
    let checkpoint = world.machine.checkpoint();
    // Killed. Container 1 runs on and ends, container 2's rows are gone.
    let mut cgroups = world.cgroups.clone();
    cgroups.get_mut(&1).unwrap().rows = Some(saw(&["read", "uname"]));
    cgroups.get_mut(&1).unwrap().populated = None;
    cgroups.get_mut(&2).unwrap().rows = None;
    let mut world = World::restarted(node_config(), Some(checkpoint), cgroups);
    assert_eq!(world.machine.containers().len(), 1);
    world.tick();
    let recording = &world.results[&ids(1).0];
    assert_eq!(names(recording), ["read", "uname"]);
    assert_eq!(
        recording.container_name.as_deref(),
        Some("app"),
        "the name kept"
    );
    assert_eq!(world.count(|a| matches!(a, Action::AskRuntime(_))), 0);
}

#[test]
fn a_full_map_is_counted_and_a_root_made_again_replaces_the_old() {
    let mut world = World::new(node_config());
    world.feed(Input::Cgroups(vec![MarkedCgroup {
        root: false,
        lost: true,
        cgroup_id: 0,
        level: 4,
        path: path(1),
    }]));
    assert_eq!(world.machine.lost(), 1);
    let root = |id| MarkedCgroup {
        root: true,
        lost: false,
        cgroup_id: id,
        level: 1,
        path: ROOT.into(),
    };
    let actions = world.handle(Input::Cgroups(vec![root(5)]));
    assert_eq!(actions, vec![Action::Unwatch(1)]);
    assert!(world.handle(Input::Cgroups(vec![root(5)])).is_empty());
}

#[test]
fn progress_is_taken_every_poll_interval() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    let first = world.machine.containers()[&1].last_new_syscall;
    assert!(first.is_some());
    world.run(1, &["read", "write"]);
    world.advance(Duration::from_secs(1));
    world.tick();
    assert_eq!(world.machine.containers()[&1].known, 1, "not due yet");
    world.advance(Duration::from_secs(10));
    world.tick();
    let c = &world.machine.containers()[&1];
    assert_eq!(c.known, 2);
    assert!(c.last_new_syscall > first);
}

fn watched_profile() -> WatchAnswer {
    WatchAnswer::Watched(WatchedProfile {
        source: "runc".into(),
        default_action: "SCMP_ACT_ERRNO".into(),
        unknown_names: Vec::new(),
    })
}

#[test]
fn containers_under_a_profile_are_watched_and_their_refusals_reported_until_they_end() {
    use crate::refusal::report::{Counted, Counts, First, How};
    let mut world = World::new(node_config());
    // 1 runs under a profile, 2 without one, 3's runtime state never shows.
    world.profiles_held.insert(ids(1).0, watched_profile());
    world.profiles_held.insert(ids(3).0, WatchAnswer::NotFound);
    for n in 1..=3 {
        world.start_container(n);
        world.run(n, &["read"]);
    }
    world.tick();
    assert_eq!(world.machine.watched_refusals(), 1);
    let report = &world.refusal_reports[&ids(1).0];
    assert_eq!(report.state, State::Running);
    assert!(report.syscalls.is_empty(), "watched, nothing refused yet");
    assert_eq!(world.refusal_reports.len(), 1, "only 1 is watched");

    // The first refusal is written at once; the counts come with a look.
    let mkdir = Arch::native().number("mkdir").unwrap();
    world.clear_log();
    world.feed(Input::Refused(vec![First {
        cgroup_id: 1,
        abi: syscensus_common::abi::NATIVE,
        nr: mkdir,
        how: How::Errno,
        process: "app".into(),
        pid: 7,
        time: world.now().time,
    }]));
    assert_eq!(world.count(|a| matches!(a, Action::WriteRefusals(_))), 1);
    assert_eq!(world.refusal_reports[&ids(1).0].syscalls[0].count, 1);
    world.cgroups.get_mut(&1).unwrap().refused = Some(Counts {
        syscalls: vec![Counted {
            abi: syscensus_common::abi::NATIVE,
            nr: mkdir,
            count: 3,
            last: world.now().time,
        }],
        lost: false,
    });
    world.advance(Duration::from_millis(250));
    world.tick();
    let refused = &world.refusal_reports[&ids(1).0].syscalls;
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (
            refused[0].name.as_str(),
            refused[0].count,
            refused[0].process.as_deref()
        ),
        ("mkdir", 3, Some("app"))
    );
    let series = world.machine.refusal_series();
    assert_eq!(series.len(), 1);
    assert_eq!((series[0].syscall.as_str(), series[0].count), ("mkdir", 3));
    // Nothing changed: nothing written again.
    world.clear_log();
    world.advance(Duration::from_millis(250));
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::WriteRefusals(_))), 0);
    // 3 is asked again until REFUSAL_LOOKUP has passed, then not any more.
    assert!(
        world
            .log
            .iter()
            .any(|a| matches!(a, Action::WatchRefusals(asked) if asked == &vec![(3, ids(3).0)]))
    );
    world.advance(REFUSAL_LOOKUP);
    world.tick();
    world.clear_log();
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::WatchRefusals(_))), 0);

    // 1 ends: its last report, then the watch goes.
    world.end(1, false);
    world.clear_log();
    world.advance(Duration::from_secs(1));
    world.tick();
    let report = &world.refusal_reports[&ids(1).0];
    assert_eq!(report.state, State::Exited);
    assert_eq!(report.syscalls[0].count, 3);
    let write = world
        .log
        .iter()
        .rposition(|a| matches!(a, Action::WriteRefusals(r) if r[0].1.state == State::Exited))
        .unwrap();
    let unwatch = world
        .log
        .iter()
        .position(|a| a == &Action::UnwatchRefusals(1))
        .unwrap();
    assert!(write < unwatch, "{:?}", world.log);
    assert_eq!(world.machine.watched_refusals(), 0);
}

#[test]
fn a_watched_container_whose_rows_are_gone_is_unwatched() {
    let mut world = World::new(node_config());
    world.profiles_held.insert(ids(1).0, watched_profile());
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    assert_eq!(world.machine.watched_refusals(), 1);
    world.cgroups.get_mut(&1).unwrap().rows = None;
    world.clear_log();
    world.advance(Duration::from_secs(1));
    world.tick();
    assert!(
        world.log.contains(&Action::UnwatchRefusals(1)),
        "{:?}",
        world.log
    );
    assert_eq!(world.refusal_reports[&ids(1).0].state, State::Exited);
}

#[test]
fn a_runtime_that_fails_a_profile_lookup_is_left_alone() {
    let mut world = World::new(node_config());
    let (id, _) = ids(1);
    // Not there yet when its cgroup is made; then the runtime hangs.
    world
        .profiles_held
        .insert(id.clone(), WatchAnswer::NotFound);
    world.start_container(1);
    let failed = world.handle(Input::RefusalsWatched(vec![(
        1,
        WatchAnswer::RuntimeFailed("deadline has elapsed".into()),
    )]));
    assert!(failed.is_empty(), "{failed:?}");
    // Neither fast lookups nor ticks ask it while it is left alone.
    assert!(!world.machine.fast_lookups(world.now().instant));
    assert!(world.handle(Input::LookUpProfiles).is_empty());
    world.clear_log();
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::WatchRefusals(_))), 0);
    assert_eq!(world.count(|a| matches!(a, Action::AskRuntime(_))), 0);
    world.advance(RUNTIME_QUIET);
    world.tick();
    assert!(
        world.log.contains(&Action::WatchRefusals(vec![(1, id)])),
        "{:?}",
        world.log
    );
}
