//! "Idle costs nothing", checked in the kernel: a Kubernetes-mode agent with
//! no active recording has no program attached to `sys_enter`; a
//! ProfileRecording attaches it within seconds; pausing, resuming and
//! deleting the recording detach and attach it again. The links are the
//! ones the kernel lists for the agent's process (/proc/<pid>/fdinfo), so
//! that nothing the agent says about itself is trusted. (The API server is the test's
//! simulated one.)
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syscensus_api::ProfileRecording;
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    free_port, http_get, require_root,
};

const NS: &str = "shop";
/// How long the agent may take to attach or detach after a change.
const BOUND: Duration = Duration::from_secs(10);

/// The tracepoints the agent's process holds links to, as the kernel lists
/// them in /proc/<pid>/fdinfo (a link's `tp_name`).
fn attached_by(pid: u32) -> Vec<String> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("tp_name:"))
                .map(|name| name.trim().to_owned())
        })
        .collect();
    names.sort();
    names
}

fn sys_enter_attached(agent: &Agent) -> bool {
    let links = attached_by(agent.pid());
    // The agent always holds its exec hook: seeing it proves that the
    // links are where this looks for them.
    assert!(
        links.iter().any(|l| l == "sched_process_exec"),
        "the agent holds no link to sched_process_exec: {links:?}"
    );
    links.iter().any(|l| l == "sys_enter")
}

fn wait_for(agent: &Agent, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within {BOUND:?}: {what}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn recording(paused: bool) -> Value {
    json!({
        "apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording",
        "metadata": {"name": "rec", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "paused": paused}
    })
}

#[test]
fn sys_enter_is_attached_only_while_a_recording_is_active() {
    require_root();
    let server = FakeApiServer::start_with_syscensus(NS);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let agent = Agent::start_with_env(
        &["--no-install", "--listen", &listen],
        &[
            ("NODE_NAME", "node-a"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    );
    // Ready (the first lists arrived) and a tick done since: the agent has
    // decided it has nothing to record.
    wait_for(&agent, "ready, with no recording active", || {
        http_get(port, "/readyz").0 == 200
            && metric(port, "recordings_active") == Some(0)
            && metric(port, "sys_enter_attached") == Some(0)
    });
    assert!(
        !sys_enter_attached(&agent),
        "sys_enter is attached with no recording:\n{}",
        agent.log()
    );

    let recordings = Gvr::of::<ProfileRecording>();
    server
        .create(&recordings, Some(NS), recording(false))
        .unwrap();
    wait_for(&agent, "sys_enter attached for the recording", || {
        sys_enter_attached(&agent)
    });

    let mut paused = server.get(&recordings, Some(NS), "rec").unwrap();
    paused["spec"]["paused"] = json!(true);
    server.update(&recordings, Some(NS), paused).unwrap();
    wait_for(&agent, "sys_enter detached while paused", || {
        !sys_enter_attached(&agent)
    });

    let mut resumed = server.get(&recordings, Some(NS), "rec").unwrap();
    resumed["spec"]["paused"] = json!(false);
    server.update(&recordings, Some(NS), resumed).unwrap();
    wait_for(&agent, "sys_enter attached again on resume", || {
        sys_enter_attached(&agent)
    });

    server.delete(&recordings, Some(NS), "rec").unwrap();
    wait_for(
        &agent,
        "sys_enter detached once the recording is gone",
        || !sys_enter_attached(&agent),
    );
    agent.stop();
}

/// A metric's value, if the agent serves it.
fn metric(port: u16, name: &str) -> Option<u64> {
    let (status, text) = http_get(port, "/metrics");
    if status != 200 {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("syscensus_{name} ")))
        .and_then(|v| v.trim().parse().ok())
}
