//! Unit tests of the machine: the Kubernetes Events it decides, and the
//! node's bound on them.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeMap, time::Duration};

use super::{
    events::{
        BURST, Kind, MAX_NOTE, MAX_SERIES, Occurrence, QUIET, REFILL, Reason, Regarding,
        SERIES_INTERVAL, SERIES_WINDOW, after_quiet, human, reporting_instance,
    },
    testkit::*,
    *,
};

/// A Kubernetes-mode node with a ready cluster holding recording `rec` of
/// `app=web` Pods, the Pods of containers `pods` (Deployment `web`).
fn world(pods: &[u64]) -> World {
    let mut world = World::new(kube_config());
    world.cluster = Some(Cluster {
        ready: true,
        pods: pods.iter().map(|n| pod(*n, "web")).collect(),
        recordings: vec![recording("rec", false)],
    });
    for n in pods {
        world.workloads.insert(ids(*n).1, Ok(deployment("web")));
    }
    world.tick();
    world
}

/// Container `n` starts, runs `names`, and is decided on.
fn record(world: &mut World, n: u64, names: &[&str]) {
    world.start_container(n);
    world.run(n, names);
    world.tick();
}

/// Container `n` ends and its result is written.
fn finish(world: &mut World, n: u64) {
    world.end(n, true);
    world.advance(Duration::from_secs(5));
    world.tick();
}

fn reasons(world: &World) -> Vec<Reason> {
    world.created().iter().map(|(_, o)| o.reason).collect()
}

fn series_writes(world: &World) -> Vec<u32> {
    world
        .events
        .iter()
        .filter_map(|w| match w {
            EventWrite::Series { count, .. } => Some(*count),
            EventWrite::Create { .. } => None,
        })
        .collect()
}

fn installed(n: usize) -> Installation {
    Installation::Installed {
        profile: Regarding {
            kind: Kind::ContainerProfile,
            namespace: "shop".into(),
            name: format!("rec.deployment.web{n}.app"),
            uid: Some(format!("uid-{n}")),
        },
        path: format!("syscensus/shop/deployment-web{n}/app.json"),
    }
}

#[test]
fn a_recording_that_starts_on_the_node_is_told_once() {
    let mut world = world(&[1, 2]);
    record(&mut world, 1, &["read"]);
    let created = world.created();
    assert_eq!(created.len(), 1, "{:?}", world.events);
    let (name, occurrence) = created[0];
    assert_eq!(occurrence.reason, Reason::RecordingStarted);
    assert_eq!(
        occurrence.regarding,
        Regarding {
            kind: Kind::ProfileRecording,
            namespace: "shop".into(),
            name: "rec".into(),
            uid: Some("uid-rec".into()),
        }
    );
    assert_eq!(occurrence.note, "recording containers on node node-a");
    assert!(name.starts_with("rec."), "{name}");
    // A second container of the same recording while the first runs: the
    // recording did not start again.
    record(&mut world, 2, &["read"]);
    assert_eq!(world.events.len(), 1, "{:?}", world.events);
    let (decided, dropped) = world.machine.event_counts();
    assert_eq!(decided["RecordingStarted"], 1);
    assert_eq!(decided["ProfileInstalled"], 0, "every reason is counted");
    assert_eq!(dropped, 0);
}

#[test]
fn a_recording_that_starts_again_counts_in_its_series() {
    let mut world = world(&[1, 2, 3, 4]);
    record(&mut world, 1, &["read"]);
    finish(&mut world, 1);
    // The first repeat is written at once...
    record(&mut world, 2, &["read"]);
    assert_eq!(world.created().len(), 1, "one Event, not one per start");
    assert_eq!(series_writes(&world), [2]);
    finish(&mut world, 2);
    // ...later ones at most every SERIES_INTERVAL, with every start
    // counted.
    record(&mut world, 3, &["read"]);
    finish(&mut world, 3);
    record(&mut world, 4, &["read"]);
    assert_eq!(series_writes(&world), [2]);
    world.advance(SERIES_INTERVAL);
    world.tick();
    assert_eq!(series_writes(&world), [2, 4]);
    let EventWrite::Series {
        name, namespace, ..
    } = world.events.last().unwrap()
    else {
        unreachable!()
    };
    assert_eq!(name, world.created()[0].0);
    assert_eq!(namespace, "shop");
    // Long after, it is another Event.
    finish(&mut world, 4);
    world.advance(SERIES_WINDOW + Duration::from_secs(1));
    world.cluster.as_mut().unwrap().pods.push(pod(5, "web"));
    world.workloads.insert(ids(5).1, Ok(deployment("web")));
    record(&mut world, 5, &["read"]);
    assert_eq!(world.created().len(), 2);
    assert_ne!(world.created()[0].0, world.created()[1].0);
}

#[test]
fn a_container_that_ended_before_its_decision_starts_the_recording_too() {
    let mut world = world(&[]);
    world.start_container(1);
    world.run(1, &["read"]);
    world.end(1, true);
    world.tick();
    assert!(world.events.is_empty(), "not decided yet");
    world.cluster.as_mut().unwrap().pods.push(pod(1, "web"));
    world.workloads.insert(ids(1).1, Ok(deployment("web")));
    world.advance(Duration::from_secs(5));
    world.tick();
    assert_eq!(reasons(&world), [Reason::RecordingStarted]);
}

#[test]
fn new_syscalls_after_a_long_quiet_are_told() {
    let mut world = world(&[1, 2]);
    // The cluster's profile: read, last grown two hours ago.
    let two_hours_ago = world
        .now()
        .time
        .checked_sub(jiff::SignedDuration::from_hours(2))
        .unwrap();
    world.unions.insert(
        web_key("rec"),
        (
            [("SCMP_ARCH_X86_64".to_owned(), ["read".to_owned()].into())].into(),
            two_hours_ago,
        ),
    );
    record(&mut world, 1, &["read", "mkdir", "rmdir"]);
    finish(&mut world, 1);
    let created = world.created();
    let (_, quiet) = created
        .iter()
        .find(|(_, o)| o.reason == Reason::NewSyscallsAfterQuiet)
        .unwrap_or_else(|| panic!("{:?}", world.events));
    assert_eq!(quiet.regarding.kind, Kind::ContainerProfile);
    assert_eq!(quiet.regarding.name, "rec.deployment.web.app");
    assert_eq!(
        quiet.regarding.uid.as_deref(),
        Some("uid-rec.deployment.web.app")
    );
    assert_eq!(
        quiet.note,
        "2 new syscall(s) after 2h without any, recorded on node node-a: SCMP_ARCH_X86_64: mkdir rmdir"
    );
    // It grew now: the next growth is not after a quiet.
    record(&mut world, 2, &["read", "uname"]);
    finish(&mut world, 2);
    let quiet_events = reasons(&world)
        .into_iter()
        .filter(|r| *r == Reason::NewSyscallsAfterQuiet)
        .count();
    assert_eq!(quiet_events, 1);
}

#[test]
fn growth_within_the_quiet_time_or_none_is_not_told() {
    let key = web_key("rec");
    let now = Now::current();
    let learned = |added: &[&str], ago: Duration| Learned {
        key: key.clone(),
        uid: None,
        added: if added.is_empty() {
            BTreeMap::new()
        } else {
            [(
                "SCMP_ARCH_X86_64".to_owned(),
                added.iter().map(|s| (*s).to_owned()).collect(),
            )]
            .into()
        },
        quiet_since: Some(now.time.checked_sub(ago).unwrap()),
    };
    assert!(after_quiet(&learned(&["mkdir"], QUIET), "n", now).is_some());
    assert!(
        after_quiet(
            &learned(&["mkdir"], QUIET - Duration::from_secs(1)),
            "n",
            now
        )
        .is_none()
    );
    assert!(after_quiet(&learned(&[], QUIET * 2), "n", now).is_none());
    // A long list is cut, and says how many it left out.
    let many: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let note = after_quiet(&learned(&names, QUIET * 30), "n", now)
        .unwrap()
        .note;
    assert!(
        note.starts_with("30 new syscall(s) after 1d6h without any"),
        "{note}"
    );
    assert!(note.ends_with("s19 and 10 more"), "{note}");
}

#[test]
fn installed_and_refused_profiles_are_told() {
    let mut world = world(&[]);
    let refused = Regarding {
        kind: Kind::ContainerProfile,
        namespace: "shop".into(),
        name: "rec.deployment.bad.app".into(),
        uid: None,
    };
    world.feed(Input::Installations(vec![
        installed(1),
        Installation::Refused {
            profile: refused.clone(),
            reason: "unknown syscall name frobnicate".into(),
        },
    ]));
    let created = world.created();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].1.reason, Reason::ProfileInstalled);
    assert_eq!(
        created[0].1.note,
        "installed on node node-a as syscensus/shop/deployment-web1/app.json"
    );
    assert_eq!(created[1].1.reason, Reason::ProfileRefused);
    assert_eq!(created[1].1.regarding, refused);
    assert_eq!(
        created[1].1.note,
        "not installed on node node-a: unknown syscall name frobnicate"
    );
    assert!(Reason::ProfileRefused.is_warning());
    assert!(!Reason::ProfileInstalled.is_warning());
}

#[test]
fn the_node_writes_a_burst_then_one_a_minute() {
    let mut world = world(&[]);
    world.feed(Input::Installations((0..30).map(installed).collect()));
    assert_eq!(world.events.len(), BURST as usize);
    world.tick();
    assert_eq!(world.events.len(), BURST as usize, "no token left");
    world.advance(REFILL);
    world.tick();
    assert_eq!(world.events.len(), BURST as usize + 1);
    world.advance(REFILL * 3);
    world.tick();
    assert_eq!(world.events.len(), BURST as usize + 4);
    // Oldest first: what happens now waits behind the 16 still pending.
    world.advance(Duration::from_secs(1));
    world.feed(Input::Installations(vec![installed(99)]));
    for _ in 0..40 {
        world.advance(REFILL);
        world.tick();
    }
    let created = world.created();
    assert_eq!(created.len(), 31);
    assert_eq!(created[30].1.regarding.name, "rec.deployment.web99.app");
}

#[test]
fn beyond_the_series_kept_occurrences_are_dropped_and_counted() {
    let mut world = world(&[]);
    let count = MAX_SERIES + 20;
    world.feed(Input::Installations((0..count).map(installed).collect()));
    let (decided, dropped) = world.machine.event_counts();
    assert_eq!(decided["ProfileInstalled"], count as u64);
    assert_eq!(dropped, 20);
}

#[test]
fn an_event_the_api_server_expired_is_created_again_with_its_count() {
    let mut world = world(&[]);
    world.feed(Input::Installations(vec![installed(1)]));
    world.feed(Input::Installations(vec![installed(1)]));
    assert_eq!(series_writes(&world), [2]);
    world.fail_events = Some(EventFailure::Gone);
    world.feed(Input::Installations(vec![installed(1)]));
    world.advance(SERIES_INTERVAL);
    world.tick();
    assert_eq!(series_writes(&world), [2, 3], "the update found it gone");
    world.fail_events = None;
    world.tick();
    let EventWrite::Create { series, .. } = world.events.last().unwrap() else {
        panic!("{:?}", world.events);
    };
    assert_eq!(series.map(|(count, _)| count), Some(3));
}

#[test]
fn a_failed_write_is_tried_again_a_minute_later() {
    let mut world = world(&[]);
    world.fail_events = Some(EventFailure::Other("503".into()));
    world.feed(Input::Installations(vec![installed(1)]));
    assert_eq!(world.events.len(), 1);
    assert_eq!(world.machine.event_errors(), 1);
    world.fail_events = None;
    world.tick();
    assert_eq!(world.events.len(), 1, "not at once");
    world.advance(REFILL);
    world.tick();
    assert_eq!(world.created().len(), 2, "tried again");
    world.tick();
    assert_eq!(world.events.len(), 2, "and only once");
}

#[test]
fn without_kubernetes_there_are_no_events() {
    let mut world = World::new(node_config());
    world.start_container(1);
    world.run(1, &["read"]);
    world.tick();
    world.feed(Input::Installations(vec![installed(1)]));
    assert!(world.events.is_empty());
    assert!(world.machine.event_counts().0.is_empty());
}

#[test]
fn event_names_fit_and_stay_apart() {
    let long = "a".repeat(240) + "-b.c";
    let occurrence = |name: &str, note: &str| {
        Occurrence::new(
            Regarding {
                kind: Kind::ContainerProfile,
                namespace: "shop".into(),
                name: name.into(),
                uid: None,
            },
            Reason::ProfileInstalled,
            note,
        )
    };
    let mut events = events::Events::new("node-a");
    let now = Now::current();
    for (name, note) in [(long.as_str(), "x"), (long.as_str(), "y"), ("web", "x")] {
        events.observe(occurrence(name, note), now);
    }
    let writes = events.due(now);
    let names: Vec<&str> = writes.iter().map(EventWrite::name).collect();
    assert_eq!(names.len(), 3);
    for name in &names {
        assert!(name.len() <= 253, "{name}");
        let valid = name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
        assert!(valid, "not a DNS subdomain: {name}");
    }
    assert_ne!(names[0], names[1]);
    // A note is one line, within the API server's limit.
    let note = occurrence("web", &format!("{}\nsecond line", "é".repeat(600))).note;
    assert!(
        note.len() <= MAX_NOTE && !note.contains('\n'),
        "{}",
        note.len()
    );
    // The reporting instance, within its limit.
    assert_eq!(reporting_instance("node-a"), "node-a");
    let long_node = "n".repeat(253);
    let instance = reporting_instance(&long_node);
    assert_eq!(instance.len(), 128);
    assert_ne!(
        instance,
        reporting_instance(&("m".to_owned() + &long_node[1..]))
    );
    assert_eq!(human(Duration::from_secs(45 * 60)), "45m");
    assert_eq!(human(Duration::from_secs(2 * 3600 + 14 * 60)), "2h14m");
}
