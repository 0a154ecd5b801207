//! OCI hooks that the runtime runs inside the container before the
//! entrypoint (createContainer, startContainer; device plugins' CDI hooks
//! are of this kind): the entrypoint is still the workload, and the hooks
//! are recorded apart and kept in the profile, which the runtime runs them
//! under again on every start.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::time::Duration;

use serde_json::{Value, json};
use syscensus_tests::{
    agent::{Agent, recorded},
    containers::{Bundle, CrunCgroups, Rootfs, Runtime, Spec, run},
    require_root,
};

const X86_64: &str = "SCMP_ARCH_X86_64";
const WAIT: Duration = Duration::from_secs(20);

/// The workload: lists, reads and prints.
const WORKLOAD: [&str; 3] = [
    "sh",
    "-c",
    "echo ready; ls / >/dev/null; cat /etc/passwd >/dev/null; uname -a",
];

/// The createContainer hook's script: it calls sysinfo (`free`), which the
/// workload does not. Hooks read the container's state on stdin (crun fails
/// the start when a hook leaves it unread).
const CREATE_HOOK: &str = "cat >/dev/null; free >/dev/null";
/// The startContainer hook's: statfs (`df`).
const START_HOOK: &str = "cat >/dev/null; df / >/dev/null";

/// The path is busybox's on the host and in the container alike (the
/// createContainer hook's is looked up in the runtime's view, the
/// startContainer hook's in the container's).
fn hooks() -> Value {
    json!({
        "createContainer": [
            {"path": "/bin/busybox", "args": ["busybox", "sh", "-c", CREATE_HOOK]}
        ],
        "startContainer": [
            {"path": "/bin/busybox", "args": ["busybox", "sh", "-c", START_HOOK]}
        ],
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn record_and_enforce(runtime: Runtime, no_new_privileges: bool) {
    let what = format!("{runtime:?} no_new_privileges={no_new_privileges}");
    let agent = Agent::start(&["--no-kube", "--runtime", runtime.name()]);
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let spec = || {
        Spec::new(&WORKLOAD)
            .no_new_privileges(no_new_privileges)
            .hooks(hooks())
    };
    let bundle = Bundle::new(rootfs.path(), spec());
    let output = run(runtime, &bundle);
    assert!(output.status.success(), "{what}: {output:?}");
    let recording = agent.wait_for_recording(bundle.id(), "Exited", WAIT);

    // The entrypoint is the workload, whatever ran before it.
    let syscalls = recorded(&recording, X86_64);
    for call in ["getdents64", "uname", "write", "exit_group"] {
        assert!(
            syscalls.contains(call),
            "{what}: the entrypoint's {call} is missing: {recording}"
        );
    }
    // Each hook is listed as one, in the profile.
    let sessions = recording["sessions"].as_array().unwrap();
    for (command, call) in [(CREATE_HOOK, "sysinfo"), (START_HOOK, "statfs")] {
        let hook = sessions
            .iter()
            .find(|s| {
                s["command"]
                    .as_array()
                    .is_some_and(|c| c.last().unwrap() == command)
            })
            .unwrap_or_else(|| panic!("{what}: hook {command:?} not listed: {recording}"));
        assert_eq!(hook["type"], "Hook", "{what}: {hook}");
        assert_eq!(hook["included"], true, "{what}: {hook}");
        assert!(
            recorded(hook, X86_64).contains(call),
            "{what}: the hook's {call} missing: {hook}"
        );
        assert!(syscalls.contains(call), "{what}: {call} not in the profile");
    }
    assert!(
        recording["runtimeBaseSet"]
            .as_str()
            .unwrap()
            .ends_with("+hooks"),
        "{what}: the base set for a runtime that runs hooks: {recording}"
    );

    // The same container, hooks and all, under its profile.
    let profile = recording["profile"].clone();
    for attempt in 1..=20 {
        let bundle = Bundle::new(rootfs.path(), spec().seccomp(profile.clone()));
        let output = run(runtime, &bundle);
        assert!(
            output.status.success() && text(&output.stdout).starts_with("ready\n"),
            "{what}: attempt {attempt} under the recorded profile failed: {output:?}\n{}\nprofile: {profile}",
            text(&output.stderr)
        );
    }
}

#[test]
fn runc_hooks_are_recorded_apart_and_the_entrypoint_is_the_workload() {
    require_root();
    for no_new_privileges in [false, true] {
        record_and_enforce(Runtime::Runc, no_new_privileges);
    }
}

#[test]
fn crun_hooks_are_recorded_apart_and_the_entrypoint_is_the_workload() {
    require_root();
    let _crun = CrunCgroups::acquire();
    for no_new_privileges in [false, true] {
        record_and_enforce(Runtime::Crun, no_new_privileges);
    }
}
