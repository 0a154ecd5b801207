//! Unit tests of the machine: production containers (Pods under a
//! Localhost profile syscensus installed, no recording) watched for what
//! their profile refuses, reported in Events and the LocalhostProfile's
//! status.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use super::{
    events::{Kind, Reason},
    testkit::*,
    *,
};
use crate::{
    container_recording::State,
    daemon::identity::StatusEntry,
    refusal::report::{Counted, How},
    syscalls::Arch,
};

const INSTALLED: &str = "syscensus/shop/deployment-web/app.json";

fn watched_profile() -> WatchAnswer {
    WatchAnswer::Watched(WatchedProfile {
        source: "cri".into(),
        default_action: "SCMP_ACT_ERRNO".into(),
        unknown_names: Vec::new(),
    })
}

/// The Pod of container `n`, running it as `app` under `profile` (a
/// `localhostProfile`, or none).
fn running_pod(n: u64, profile: Option<&str>) -> PodView {
    let mut view = pod(n, "web");
    view.running = vec![StatusEntry {
        id: ids(n).0,
        name: "app".into(),
        init: false,
    }];
    if let Some(profile) = profile {
        view.localhost_profiles.insert("app".into(), profile.into());
    }
    view
}

/// A Kubernetes-mode node with no recording, running containers `pods`
/// (cgroup id `n`, no rows: nothing records them) with their profiles.
fn world(pods: &[(u64, Option<&str>)]) -> World {
    let mut world = World::new(kube_config());
    world.cluster = Some(Cluster {
        ready: true,
        pods: pods.iter().map(|(n, p)| running_pod(*n, *p)).collect(),
        recordings: Vec::new(),
    });
    for (n, _) in pods {
        world.cgroups.insert(
            *n,
            Cgroup {
                path: path(*n),
                populated: Some(true),
                rows: None,
                refused: None,
            },
        );
        world.profiles_held.insert(ids(*n).0, watched_profile());
    }
    world
}

fn mkdir() -> u32 {
    Arch::native().number("mkdir").unwrap()
}

fn refused(world: &mut World, n: u64) {
    let event = First {
        cgroup_id: n,
        abi: syscensus_common::abi::NATIVE,
        nr: mkdir(),
        how: How::Errno,
        process: "mkdir".into(),
        pid: 7,
        time: world.now().time,
    };
    world.feed(Input::Refused(vec![event]));
}

fn counted(world: &mut World, n: u64, count: u64) {
    let last = world.now().time;
    world.cgroups.get_mut(&n).unwrap().refused = Some(Counts {
        syscalls: vec![Counted {
            abi: syscensus_common::abi::NATIVE,
            nr: mkdir(),
            count,
            last,
        }],
        lost: false,
    });
}

fn object() -> ProfileObject {
    ProfileObject::of_path(INSTALLED).unwrap()
}

fn mkdir_count(world: &World) -> i64 {
    world
        .reports
        .get(&object())
        .and_then(|s| s.refused.iter().find(|r| r.syscall == "mkdir"))
        .map_or(0, |r| r.count)
}

#[test]
fn the_path_of_an_installed_profile_names_its_localhost_profile() {
    let object = object();
    assert_eq!(object.namespace, "shop");
    assert_eq!(object.name, "deployment-web.app");
    assert_eq!(object.workload, deployment("web"));
    assert_eq!(
        ProfileObject::of_path("other/shop/deployment-web/app.json"),
        None
    );
    assert_eq!(ProfileObject::of_path("syscensus/app.json"), None);
}

#[test]
fn pods_under_an_installed_profile_are_watched_without_a_recording_and_without_sys_enter() {
    // 1 runs under an installed profile, 2 under one of its own, 3 under
    // none.
    let mut world = world(&[(1, Some(INSTALLED)), (2, Some("other/x.json")), (3, None)]);
    world.tick();
    assert_eq!(world.machine.watched_refusals(), 1);
    let watched: Vec<u64> = world.machine.enforced().unwrap().keys().copied().collect();
    assert_eq!(watched, [1]);
    assert!(!world.machine.is_armed());
    assert_eq!(world.count(|a| matches!(a, Action::Arm { .. })), 0);
    // Not recorded: nothing is marked, nothing written as a recording.
    assert_eq!(world.count(|a| matches!(a, Action::MarkRunning { .. })), 0);
    assert!(world.results.is_empty());
    // Looked for once: a found container is not looked for again.
    world.clear_log();
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::FindContainers { .. })),
        0
    );
    assert_eq!(world.count(|a| matches!(a, Action::WatchEnforced(_))), 0);
}

#[test]
fn a_first_refusal_is_an_event_on_the_pod_and_the_localhost_profile_and_counts_in_its_status() {
    let mut world = world(&[(1, Some(INSTALLED)), (2, Some(INSTALLED))]);
    world.tick();
    world.clear_log();
    refused(&mut world, 1);
    // At once: the status and the report, and the Events.
    assert_eq!(mkdir_count(&world), 1);
    let entry = &world.reports[&object()].refused[0];
    assert_eq!(entry.how.as_deref(), Some("errno"));
    assert_eq!(entry.reported_by[0].node, "node-a");
    assert_eq!(entry.reported_by[0].pod, "web-1");
    let report = &world.refusal_reports[&ids(1).0];
    assert_eq!(report.syscalls[0].name, "mkdir");
    assert_eq!(report.workload, Some(deployment("web")));
    let created = world.created();
    let kinds: Vec<(Kind, &str)> = created
        .iter()
        .map(|(_, o)| (o.regarding.kind, o.regarding.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Kind::Pod, "web-1"),
            (Kind::LocalhostProfile, "deployment-web.app")
        ]
    );
    assert!(
        created
            .iter()
            .all(|(_, o)| o.reason == Reason::SyscallRefused)
    );
    assert!(created[0].1.note.contains("mkdir"), "{}", created[0].1.note);
    assert_eq!(
        created[0].1.regarding.uid.as_deref(),
        Some(ids(1).1.as_str())
    );
    // The same syscall again is no new Event; its counts come with the
    // looks, added to the status every flush interval, not per refusal.
    refused(&mut world, 1);
    assert_eq!(world.created().len(), 2);
    counted(&mut world, 1, 5);
    world.tick();
    assert_eq!(mkdir_count(&world), 1, "not due yet");
    world.advance(Duration::from_secs(5));
    world.tick();
    assert_eq!(mkdir_count(&world), 5, "the node's count, added once");
    world.advance(Duration::from_secs(5));
    world.tick();
    assert_eq!(mkdir_count(&world), 5);
    // Another Pod's first refusal of it: its own Pod Event, and the
    // profile's Event for the same node and container folds into a series.
    world.clear_log();
    refused(&mut world, 2);
    assert_eq!(mkdir_count(&world), 6);
    assert_eq!(world.reports[&object()].refused[0].reported_by.len(), 2);
    let created = world.created();
    assert_eq!(created.len(), 3);
    assert_eq!(created[2].1.regarding.kind, Kind::Pod);
    assert_eq!(created[2].1.regarding.name, "web-2");
}

#[test]
fn a_failed_status_write_is_retried_without_losing_or_doubling_counts() {
    let mut world = world(&[(1, Some(INSTALLED))]);
    world.tick();
    world.fail_status = Some(StatusFailure::Other("conflict".into()));
    refused(&mut world, 1);
    counted(&mut world, 1, 3);
    world.tick();
    assert_eq!(mkdir_count(&world), 0);
    world.fail_status = None;
    // Backing off: not at the next tick.
    world.tick();
    assert_eq!(mkdir_count(&world), 0);
    world.advance(Duration::from_secs(6));
    world.tick();
    assert_eq!(mkdir_count(&world), 3);
    assert_eq!(world.machine.refusal_status_errors(), 1);
    // A LocalhostProfile that is gone: dropped, not retried for ever.
    world.fail_status = Some(StatusFailure::Gone);
    counted(&mut world, 1, 4);
    world.advance(Duration::from_secs(6));
    world.tick();
    world.clear_log();
    world.advance(Duration::from_secs(6));
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::WriteRefusalStatus(_))),
        0
    );
}

#[test]
fn a_container_that_ends_gets_its_last_report_and_is_unwatched() {
    let mut world = world(&[(1, Some(INSTALLED)), (2, Some(INSTALLED))]);
    world.tick();
    refused(&mut world, 1);
    world.clear_log();
    // 1 is no longer running in its Pod's status; 2's cgroup is gone.
    world.cluster.as_mut().unwrap().pods[0].running.clear();
    world.cgroups.get_mut(&2).unwrap().populated = None;
    world.tick();
    assert_eq!(world.count(|a| matches!(a, Action::UnwatchRefusals(_))), 2);
    assert_eq!(world.refusal_reports[&ids(1).0].state, State::Exited);
    assert_eq!(world.refusal_reports[&ids(2).0].state, State::Exited);
    assert_eq!(world.machine.watched_refusals(), 0);
}

#[test]
fn a_container_a_recording_records_is_left_to_the_recording() {
    let mut world = World::new(kube_config());
    world.cluster = Some(Cluster {
        ready: true,
        pods: vec![running_pod(1, Some(INSTALLED))],
        recordings: vec![recording("rec", false)],
    });
    world.workloads.insert(ids(1).1, Ok(deployment("web")));
    world.profiles_held.insert(ids(1).0, watched_profile());
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    assert!(world.machine.enforced().unwrap().is_empty());
    assert_eq!(world.machine.watched_refusals(), 1, "watched as recorded");
}

#[test]
fn a_container_not_below_the_roots_is_looked_for_less_often() {
    let mut world = world(&[(1, Some(INSTALLED))]);
    world.cgroups.clear();
    for _ in 0..4 {
        world.tick();
        world.advance(REFUSAL_LOOKUP / 4);
    }
    world.clear_log();
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::FindContainers { .. })),
        1
    );
    world.tick();
    assert_eq!(
        world.count(|a| matches!(a, Action::FindContainers { .. })),
        1
    );
}

#[test]
fn counts_not_written_yet_are_written_when_the_agent_stops() {
    let mut world = world(&[(1, Some(INSTALLED))]);
    world.tick();
    refused(&mut world, 1);
    counted(&mut world, 1, 2);
    world.tick();
    assert_eq!(mkdir_count(&world), 1, "not due yet");
    // Counted since the last look: taken by the stop's look, and written.
    counted(&mut world, 1, 4);
    world.feed(Input::Stop);
    assert_eq!(mkdir_count(&world), 4);
}
