//! Unit tests of the machine: Kubernetes mode.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeMap, time::Duration};

use super::{testkit::*, *};
use crate::daemon::identity::StatusEntry;

/// A Kubernetes-mode node with a ready cluster holding recording `rec` of
/// `app=web` Pods and the Pods of `web` containers `pods` (their workload:
/// Deployment `web`).
fn kube_world(pods: &[u64]) -> World {
    let mut world = World::new(kube_config());
    world.cluster = Some(Cluster {
        ready: true,
        pods: pods.iter().map(|n| pod(*n, "web")).collect(),
        recordings: vec![recording("rec", false)],
    });
    for n in pods {
        world.workloads.insert(ids(*n).1, Ok(deployment("web")));
    }
    world
}

fn syscalls(contribution: &Contribution) -> Vec<&str> {
    contribution
        .syscalls
        .names("SCMP_ARCH_X86_64")
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect()
}

fn chosen(world: &World, id: u64) -> bool {
    matches!(
        world.machine.containers().get(&id).map(|c| &c.decision),
        Some(Decision::Chosen(_))
    )
}

#[test]
fn without_containers_carried_over_it_starts_idle() {
    let world = World::new(kube_config());
    assert_eq!(world.log, vec![Action::Disarm { roots: Vec::new() }]);
    assert!(!world.machine.is_armed());
}

#[test]
fn idle_until_a_recording_is_active_and_idle_again_after() {
    let mut world = World::new(kube_config());
    world.cluster = Some(Cluster {
        ready: false,
        ..Cluster::default()
    });
    world.tick();
    world.cluster = Some(Cluster {
        ready: false,
        recordings: vec![recording("rec", false)],
        ..Cluster::default()
    });
    world.tick();
    assert!(!world.machine.is_armed(), "not before the first lists");
    world.cluster.as_mut().unwrap().ready = true;
    world.tick();
    assert!(world.machine.is_armed());
    // Paused: nothing records, and an undecided container is let go.
    world.start_container(1);
    world.cluster.as_mut().unwrap().recordings = vec![recording("rec", true)];
    world.clear_log();
    world.tick();
    assert!(!world.machine.is_armed());
    assert!(world.log.contains(&Action::Unmark(1)));
    assert!(
        world
            .log
            .iter()
            .any(|a| matches!(a, Action::Disarm { roots } if roots == &[1]))
    );
}

#[test]
fn a_selected_container_is_recorded_into_its_workloads_profile() {
    let mut world = kube_world(&[1]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read", "uname"]);
    world.tick();
    assert!(chosen(&world, 1));
    assert_eq!(
        world.count(|a| matches!(a, Action::ResolveWorkloads(pods) if pods[0].uid == ids(1).1)),
        1
    );
    world.end(1, true);
    world.advance(Duration::from_secs(5));
    world.tick();
    // Written to the state directory, merged, and to the cluster.
    assert!(world.results.contains_key(&ids(1).0));
    let written = &world.profiles[&web_key("rec")];
    assert_eq!(syscalls(written), ["read", "uname"]);
    assert_eq!(written.pods, ["web-1"]);
    assert_eq!(world.machine.pending(), 0);
    let report = world.machine.status_report();
    let summary = &report.recordings[&("shop".to_owned(), "rec".to_owned())];
    assert_eq!(summary.recorded_containers, 1);
    assert_eq!(summary.syscalls, 2);
}

#[test]
fn a_container_no_recording_selects_is_let_go() {
    let mut world = kube_world(&[]);
    world.cluster.as_mut().unwrap().pods.push(pod(1, "db"));
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    assert!(world.machine.containers().is_empty());
    assert!(!world.has_rows(1));
    assert_eq!(world.count(|a| matches!(a, Action::ResolveWorkloads(_))), 0);
}

#[test]
fn a_container_whose_pod_never_appears_is_let_go_after_a_minute() {
    let mut world = kube_world(&[]);
    world.tick();
    world.start_container(1);
    world.tick();
    world.advance(POD_TIMEOUT - Duration::from_secs(1));
    world.tick();
    assert!(world.machine.containers().contains_key(&1));
    world.advance(Duration::from_secs(2));
    world.tick();
    assert!(world.machine.containers().is_empty());
}

#[test]
fn an_ended_container_waits_for_its_pod_and_is_named_by_its_status() {
    let mut world = kube_world(&[]);
    world.tick();
    // The runtime does not know it; its Pod is not in the watch yet.
    world.start_container(1);
    world.run(1, &["read"]);
    world.end(1, true);
    world.tick();
    assert_eq!(world.machine.ended().len(), 1);
    assert!(world.results.is_empty(), "not selected yet: not written");
    world.advance(Duration::from_secs(5));
    world.cluster.as_mut().unwrap().pods.push(pod(1, "web"));
    world.workloads.insert(ids(1).1, Ok(deployment("web")));
    world.tick();
    assert!(world.machine.ended().is_empty());
    let recording = &world.results[&ids(1).0];
    assert_eq!(recording.container_name.as_deref(), Some("app"));
    assert_eq!(
        recording.pod.as_ref().unwrap().name.as_deref(),
        Some("web-1")
    );
    assert_eq!(syscalls(&world.profiles[&web_key("rec")]), ["read"]);
}

#[test]
fn an_ended_containers_result_named_by_a_late_decision_is_written_once_the_disk_has_room() {
    let mut world = kube_world(&[]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read", "statfs"]);
    world.end(1, true);
    world.tick();
    assert_eq!(world.machine.ended().len(), 1);
    // Its Pod comes while the state directory is full.
    world.fail_results = true;
    world.cluster.as_mut().unwrap().pods.push(pod(1, "web"));
    world.workloads.insert(ids(1).1, Ok(deployment("web")));
    world.tick();
    world.advance(Duration::from_secs(2));
    world.tick();
    assert!(world.results.is_empty());
    assert!(
        !world.has_rows(1),
        "its rows go: the result is kept in memory"
    );
    // Kept over a restart too.
    let checkpoint = world.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.unwritten.len(), 1, "{checkpoint:?}");
    let mut world = World::restarted(kube_config(), Some(checkpoint), BTreeMap::new());
    world.cluster = Some(Cluster {
        ready: true,
        ..Cluster::default()
    });
    world.fail_results = true;
    world.tick();
    assert!(world.results.is_empty());
    world.fail_results = false;
    world.tick();
    let recording = &world.results[&ids(1).0];
    assert_eq!(recording.container_name.as_deref(), Some("app"));
    assert!(
        recording
            .syscalls
            .names("SCMP_ARCH_X86_64")
            .unwrap()
            .contains("statfs"),
        "{recording:?}"
    );
}

#[test]
fn an_ended_container_whose_pod_never_appears_is_dropped_after_a_minute() {
    let mut world = kube_world(&[]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.end(1, true);
    world.tick();
    world.advance(POD_TIMEOUT + Duration::from_secs(1));
    world.tick();
    assert!(world.machine.ended().is_empty());
    assert!(world.profiles.is_empty());
}

#[test]
fn a_chosen_container_whose_pod_is_gone_still_gives_its_result() {
    let mut world = kube_world(&[1]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    assert!(chosen(&world, 1));
    world.cluster.as_mut().unwrap().pods.clear();
    world.run(1, &["read", "uname"]);
    world.end(1, true);
    world.advance(Duration::from_secs(5));
    world.tick();
    assert_eq!(
        syscalls(&world.profiles[&web_key("rec")]),
        ["read", "uname"]
    );
}

#[test]
fn results_wait_out_an_api_outage_with_backoff() {
    let mut world = kube_world(&[1]);
    if let Some(kube) = world.machine.config.kube.as_mut() {
        kube.flush_interval = Duration::from_secs(1);
    }
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.end(1, true);
    world.fail_profiles = true;
    let attempts = |w: &World| w.count(|a| matches!(a, Action::WriteProfiles(_)));
    let mut at = Vec::new();
    for second in 1..=8 {
        world.advance(Duration::from_secs(1));
        let before = attempts(&world);
        world.tick();
        if attempts(&world) > before {
            at.push(second);
        }
    }
    // Every flush interval (1 s), then doubling from 1 s after each
    // failure: 1, 2, 4 s apart.
    assert_eq!(at, [1, 2, 4, 8]);
    assert_eq!(world.machine.pending(), 1);
    assert_eq!(world.machine.api_errors(), 4);
    assert!(world.profiles.is_empty());
    // Kept in the checkpoint meanwhile.
    assert_eq!(world.checkpoint.as_ref().unwrap().contributions.len(), 1);
    world.fail_profiles = false;
    world.advance(Duration::from_secs(8));
    world.tick();
    assert_eq!(syscalls(&world.profiles[&web_key("rec")]), ["read"]);
    assert_eq!(world.machine.pending(), 0);
}

#[test]
fn decisions_back_off_while_workloads_cannot_be_found() {
    let mut world = kube_world(&[1]);
    world.workloads.insert(ids(1).1, Err("503".into()));
    world.tick();
    world.start_container(1);
    world.tick();
    assert!(!chosen(&world, 1));
    assert_eq!(world.machine.api_errors(), 1);
    let asked = |w: &World| w.count(|a| matches!(a, Action::ResolveWorkloads(_)));
    world.tick();
    assert_eq!(asked(&world), 1, "backing off");
    world.advance(Duration::from_millis(600));
    world.tick();
    assert_eq!(asked(&world), 2);
    world.workloads.insert(ids(1).1, Ok(deployment("web")));
    world.advance(Duration::from_secs(2));
    world.tick();
    assert!(chosen(&world, 1));
}

#[test]
fn two_recordings_selecting_one_container_each_get_its_syscalls() {
    let mut world = kube_world(&[1]);
    world
        .cluster
        .as_mut()
        .unwrap()
        .recordings
        .push(recording("other", false));
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.end(1, true);
    world.advance(Duration::from_secs(5));
    world.tick();
    for name in ["rec", "other"] {
        assert_eq!(
            syscalls(&world.profiles[&web_key(name)]),
            ["read"],
            "{name}"
        );
    }
}

#[test]
fn running_chosen_containers_are_merged_every_poll_interval() {
    let mut world = kube_world(&[1]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.advance(Duration::from_secs(10));
    world.tick();
    assert_eq!(syscalls(&world.profiles[&web_key("rec")]), ["read"]);
    let report = world.machine.status_report();
    let summary = &report.recordings[&("shop".to_owned(), "rec".to_owned())];
    assert_eq!(summary.recording_containers, 1);
    assert_eq!(summary.recorded_containers, 0);
}

/// Issue 11, scenario 6: killed with SIGKILL, a chosen container ends and
/// its Pod goes while no agent runs; the restarted agent still knows it was
/// chosen, by whom, and who it was.
#[test]
fn a_restart_keeps_what_was_chosen_and_what_ended_meanwhile() {
    let mut world = kube_world(&[1, 2]);
    world.runtime.insert(ids(1).0, Ok(named(1)));
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    assert!(chosen(&world, 1));
    // Container 2 ended before its Pod was known: waiting for a decision.
    world
        .cluster
        .as_mut()
        .unwrap()
        .pods
        .retain(|p| p.uid == ids(1).1);
    world.start_container(2);
    world.run(2, &["write"]);
    world.end(2, true);
    world.advance(Duration::from_secs(2));
    world.tick();
    assert_eq!(world.machine.ended().len(), 1);
    let checkpoint = world.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.ended.len(), 1);
    assert!(checkpoint.containers[0].chosen.is_some());

    // Down: container 1 makes a new syscall and ends, its Pod is deleted.
    let mut cgroups = world.cgroups.clone();
    cgroups.get_mut(&1).unwrap().rows = Some(saw(&["read", "uname"]));
    cgroups.get_mut(&1).unwrap().populated = None;
    let mut world = World::restarted(kube_config(), Some(checkpoint), cgroups);
    assert!(world.machine.is_armed(), "a chosen container carried over");
    world.cluster = Some(Cluster {
        ready: true,
        pods: vec![pod(2, "web")],
        recordings: vec![recording("rec", false)],
    });
    world.workloads.insert(ids(2).1, Ok(deployment("web")));
    world.tick();
    let profile = &world.profiles[&web_key("rec")];
    assert_eq!(syscalls(profile), ["read", "uname", "write"]);
    assert_eq!(profile.pods, ["web-1", "web-2"]);
    assert_eq!(
        world.results[&ids(1).0].container_name.as_deref(),
        Some("app")
    );
    assert!(!world.has_rows(1));
    assert_eq!(world.count(|a| matches!(a, Action::ResolveWorkloads(pods) if pods.iter().any(|p| p.uid == ids(1).1))), 0);
}

#[test]
fn unwritten_results_survive_a_restart_and_are_written_at_once() {
    let mut world = kube_world(&[1]);
    world.fail_profiles = true;
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.end(1, true);
    world.advance(Duration::from_secs(5));
    world.tick();
    let checkpoint = world.checkpoint.clone().unwrap();
    let mut world = World::restarted(kube_config(), Some(checkpoint), BTreeMap::new());
    assert!(!world.machine.is_armed(), "no container carried over");
    world.cluster = Some(Cluster {
        ready: true,
        ..Cluster::default()
    });
    world.tick();
    assert_eq!(syscalls(&world.profiles[&web_key("rec")]), ["read"]);
}

#[test]
fn the_stop_writes_everything_pending_at_once() {
    let mut world = kube_world(&[1]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.advance(Duration::from_secs(1));
    world.run(1, &["read", "openat"]);
    world.feed(Input::Stop);
    assert_eq!(
        syscalls(&world.profiles[&web_key("rec")]),
        ["openat", "read"]
    );
    assert_eq!(world.machine.pending(), 0);
}

/// `paused`: a running container its recording chose adds nothing while
/// the recording is paused, and what it does after the recording resumes
/// is recorded again.
#[test]
fn a_paused_recording_takes_nothing_new_from_its_running_containers() {
    let mut world = kube_world(&[1]);
    world.tick();
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.advance(Duration::from_secs(10));
    world.tick();
    assert_eq!(syscalls(&world.profiles[&web_key("rec")]), ["read"]);

    world.cluster.as_mut().unwrap().recordings = vec![recording("rec", true)];
    world.tick();
    world.run(1, &["read", "mkdir"]);
    for _ in 0..3 {
        world.advance(Duration::from_secs(10));
        world.tick();
    }
    assert_eq!(
        syscalls(&world.profiles[&web_key("rec")]),
        ["read"],
        "recorded while paused"
    );

    world.cluster.as_mut().unwrap().recordings = vec![recording("rec", false)];
    world.run(1, &["read", "mkdir", "uname"]);
    world.advance(Duration::from_secs(10));
    world.tick();
    assert_eq!(
        syscalls(&world.profiles[&web_key("rec")]),
        ["mkdir", "read", "uname"]
    );
}

/// `containers` and `includeInitContainers: false`: of a Pod's init
/// container, its sidecar and its app, only the app is recorded.
#[test]
fn only_the_named_containers_are_recorded_and_no_init_container_when_left_out() {
    let mut world = kube_world(&[]);
    let (_, uid) = ids(1);
    let mut pod = pod(1, "web");
    pod.statuses = [(1, "app", false), (2, "sidecar", false), (3, "setup", true)]
        .into_iter()
        .map(|(n, name, init)| StatusEntry {
            id: ids(n).0,
            name: name.into(),
            init,
        })
        .collect();
    pod.init_containers = ["setup".to_owned()].into();
    let cluster = world.cluster.as_mut().unwrap();
    cluster.pods = vec![pod];
    cluster.recordings[0].spec.containers = vec!["app".into(), "setup".into()];
    cluster.recordings[0].spec.include_init_containers = false;
    world.workloads.insert(uid.clone(), Ok(deployment("web")));
    world.tick();
    for n in [1, 2, 3] {
        let event = world.mkdir(n, &format!("{ROOT}/besteffort/pod{uid}/{}", ids(n).0));
        world.feed(Input::Cgroups(vec![event]));
        world.run(n, &["read", "uname"]);
    }
    world.tick();
    assert!(chosen(&world, 1));
    for n in [2, 3] {
        assert!(!world.machine.containers().contains_key(&n), "{n} kept");
        assert!(!world.has_rows(n), "{n} still recorded");
    }
    world.advance(Duration::from_secs(10));
    world.tick();
    let names: Vec<&str> = world
        .profiles
        .keys()
        .map(|k| k.container.as_str())
        .collect();
    assert_eq!(names, ["app"]);
}
