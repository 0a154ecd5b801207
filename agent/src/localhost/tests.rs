//! The spec merge's rules, and what a spec renders to.
#![allow(clippy::unwrap_used, reason = "tests")]

use syscensus_api::{BaseSetRef, Contributors, WorkloadKind, WorkloadRef};

use super::*;

fn t(s: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_700_000_000 + s).unwrap())
}

fn node(name: &str, pods: &[&str], first: i64, last: i64) -> NodeContribution {
    NodeContribution {
        node: name.into(),
        pods: pods.iter().map(|p| (*p).to_owned()).collect(),
        containers: pods.len() as i64,
        first_seen: t(first),
        last_seen: t(last),
        last_new_syscall: Some(t(last)),
    }
}

fn spec(recording: &str, names: &[&str], nodes: Vec<NodeContribution>) -> ContainerProfileSpec {
    let syscalls: BTreeMap<String, Vec<String>> = [(
        "SCMP_ARCH_X86_64".to_owned(),
        names.iter().map(|n| (*n).to_owned()).collect(),
    )]
    .into();
    ContainerProfileSpec {
        session_only_syscalls: Default::default(),
        sessions: Vec::new(),
        recording: recording.into(),
        workload: WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
        },
        container: "app".into(),
        init_container: false,
        syscall_count: names.len() as i64,
        syscalls,
        runtime_base_set: None,
        first_seen: nodes
            .iter()
            .map(|n| n.first_seen.clone())
            .min_by_key(|t| t.0)
            .unwrap(),
        last_seen: nodes
            .iter()
            .map(|n| n.last_seen.clone())
            .max_by_key(|t| t.0)
            .unwrap(),
        last_new_syscall: nodes
            .iter()
            .filter_map(|n| n.last_new_syscall.clone())
            .max_by_key(|t| t.0),
        contributors: Contributors {
            nodes: nodes.len() as i64,
            pods: nodes.iter().map(|n| n.pods.len() as i64).sum(),
            containers: nodes.iter().map(|n| n.containers).sum(),
            sample: nodes,
        },
        warnings: Vec::new(),
    }
}

/// Exports merged two recordings' specs with rules of their own: the
/// second spec's nodes and `lastNewSyscall` were dropped, duplicate
/// warnings kept. Every merge now follows one set of rules.
#[test]
fn nothing_either_spec_says_is_lost() {
    let mut a = spec(
        "rec-a",
        &["read", "write"],
        vec![node("node-a", &["web-1"], 0, 10)],
    );
    a.warnings = vec!["w".into(), "w".into()];
    let mut b = spec(
        "rec-b",
        &["openat", "read"],
        vec![node("node-b", &["web-2"], 5, 20)],
    );
    b.warnings = vec!["v".into()];
    b.init_container = true;
    assert!(merge(&mut a, &b));
    assert_eq!(a.recording, "rec-a");
    assert_eq!(a.syscalls["SCMP_ARCH_X86_64"], ["openat", "read", "write"]);
    assert_eq!(a.syscall_count, 3);
    assert!(a.init_container);
    let nodes: Vec<&str> = a
        .contributors
        .sample
        .iter()
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
    assert_eq!((a.first_seen.clone(), a.last_seen.clone()), (t(0), t(20)));
    assert_eq!(a.last_new_syscall, Some(t(20)), "b brought openat");
    assert_eq!(a.warnings, ["v", "w"]);
}

#[test]
fn last_new_syscall_moves_only_when_the_union_grows() {
    let mut a = spec(
        "rec",
        &["read", "write"],
        vec![node("node-a", &["web-1"], 0, 10)],
    );
    let b = spec("rec", &["read"], vec![node("node-a", &["web-3"], 30, 40)]);
    assert!(!merge(&mut a, &b));
    assert_eq!(a.last_new_syscall, Some(t(10)));
    assert_eq!(a.last_seen, t(40));
    // One node's entries merge: Pods united, most recent last.
    assert_eq!(a.contributors.sample.len(), 1);
    assert_eq!(a.contributors.sample[0].pods, ["web-1", "web-3"]);
    assert_eq!(a.contributors.sample[0].first_seen, t(0));
    assert_eq!(a.contributors.sample[0].containers, 1);
}

#[test]
fn the_merged_profile_is_the_same_either_way() {
    let mut a = spec("rec", &["read"], vec![node("node-a", &["web-1"], 0, 10)]);
    a.runtime_base_set = Some(BaseSetRef {
        name: "runc-1.1-nnp".into(),
        syscalls: vec!["execve".into(), "write".into()],
    });
    let mut b = spec("rec", &["openat"], vec![node("node-b", &["web-2"], 5, 20)]);
    b.runtime_base_set = Some(BaseSetRef {
        name: "runc-1.1".into(),
        syscalls: vec!["execve".into(), "setuid".into()],
    });
    let mut ab = a.clone();
    merge(&mut ab, &b);
    let mut ba = b.clone();
    merge(&mut ba, &a);
    assert_eq!(render(&ab), render(&ba));
    let sorted = |mut c: Contributors| {
        c.sample.sort_by(|a, b| a.node.cmp(&b.node));
        c
    };
    assert_eq!(sorted(ab.contributors), sorted(ba.contributors));
    let base = ab.runtime_base_set.unwrap();
    assert_eq!(base.name, "runc-1.1+runc-1.1-nnp");
    assert_eq!(base.syscalls, ["execve", "setuid", "write"]);
}

#[test]
fn pods_per_node_are_capped_keeping_the_latest() {
    let many: Vec<String> = (0..2 * MAX_PODS).map(|i| format!("web-{i}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut a = spec(
        "rec",
        &["read"],
        vec![node("node-a", &names[..MAX_PODS], 0, 10)],
    );
    let b = spec(
        "rec",
        &["read"],
        vec![node("node-a", &names[MAX_PODS..], 20, 30)],
    );
    merge(&mut a, &b);
    assert_eq!(a.contributors.sample[0].pods.len(), MAX_PODS);
    assert_eq!(
        a.contributors.sample[0].pods.last().map(String::as_str),
        Some("web-19")
    );
}

/// However many nodes contribute, the spec names at most [`MAX_SAMPLE`]
/// of them: the first, whichever order the merges come in.
#[test]
fn the_sample_of_contributors_is_bounded() {
    let mut a = spec("rec", &["read"], vec![node("node-000", &["web-0"], 0, 10)]);
    for i in 1..100 {
        let b = spec(
            "rec",
            &["read"],
            vec![node(&format!("node-{i:03}"), &["web-1"], 0, 10)],
        );
        merge(&mut a, &b);
    }
    assert_eq!(a.contributors.sample.len(), MAX_SAMPLE);
    assert_eq!(a.contributors.sample[MAX_SAMPLE - 1].node, "node-009");
    // The generic merge counts at least what either says; a node's own
    // write adds itself (daemon::contribution).
    assert_eq!(a.contributors.nodes, 1);
}

#[test]
fn specs_render_and_are_checked() {
    let mut s = spec(
        "rec",
        &["read", "write"],
        vec![node("node-a", &["web-1"], 0, 10)],
    );
    let profile = spec_profile(&s);
    assert_eq!(profile.architectures, ["SCMP_ARCH_X86_64"]);
    assert_eq!(render(&s), profile.to_oci_json());
    assert!(check(&s).is_ok());
    s.syscalls
        .insert("SCMP_ARCH_PDP11".into(), vec!["read".into()]);
    assert!(check(&s).unwrap_err().contains("SCMP_ARCH_PDP11"));
    s.syscalls.remove("SCMP_ARCH_PDP11");
    s.syscalls
        .insert("SCMP_ARCH_X86_64".into(), vec!["not_a_syscall".into()]);
    assert!(check(&s).unwrap_err().contains("not_a_syscall"));
}
