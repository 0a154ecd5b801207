//! The refusal watch against the real kernel and runc: a container under a
//! recorded profile makes a syscall outside it, and the loader names and
//! counts exactly that syscall (by errno, by the kill action, and in
//! complain mode); nothing is counted for a container that stays inside its
//! profile, nor for the same refusal in another container or process; the
//! watch's hooks are attached only while a container is watched; the
//! profile is read from the runtime's own state (runc, crun, containerd's
//! CRI status). The node agent watches the containers it records and
//! reports their refusals (`syscensus denials`).
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::Value;
use syscensus::{
    bpf::{FirstRefusal, RefusalKind, Tracer, TracerOptions, WatchPolicy},
    profile::Profile,
    refusal::{
        runtime::{self, StateRuntime},
        watch_policy,
    },
    syscalls::Arch,
};
use syscensus_common::abi;
use syscensus_tests::{
    agent::Agent,
    containers::{
        BUSYBOX_IMAGE, Bundle, CgroupLease, CgroupStyle, ContainerSpec, Containerd, CrunCgroups,
        Detached, PodSpec, Qos, Rootfs, Runtime, Seccomp, Spec,
        cgroup::{self},
    },
    program, record, require_root, syscensus, syscensus_bin,
};

/// The program inside the containers.
const PROGRAM: &str = "/bin/refused";

/// How long a refusal may take to be reported.
const REPORTED_WITHIN: Duration = Duration::from_secs(2);

fn mkdir_nr() -> u32 {
    Arch::native().number("mkdir").unwrap()
}

/// The profile of `refused none 0 0` (every syscall the program makes but
/// the one it is told to make), recorded by syscensus with runc's base set
/// and `default_action`.
fn recorded_profile(default_action: &str) -> Value {
    recorded_profile_for("runc", default_action)
}

/// [`recorded_profile`] with the base set of another runtime.
fn recorded_profile_for(base_set: &str, default_action: &str) -> Value {
    recorded_profile_of(base_set, default_action, "none")
}

/// The profile of `refused WHAT 0 0` (`none` or `thread-none`).
fn recorded_profile_of(base_set: &str, default_action: &str, what: &str) -> Value {
    let binary = program("refused", &[]);
    let text = record(
        &["--base-set", base_set, "--default-action", default_action],
        &[binary.to_str().unwrap(), what, "0", "0"],
    );
    let mut profile: Value = serde_json::from_str(&text).unwrap();
    assert!(
        !syscensus_tests::allowed_names(&text).contains("mkdir"),
        "the recorded profile allows mkdir:\n{text}"
    );
    if base_set == "runc" {
        // runc 1.1.5's init (without no_new_privs) sometimes waits in
        // epoll_pwait after it has loaded the filter and before it execs
        // the entrypoint; the runc base sets lack it, and this watch saw it
        // in complain mode. Under an enforced profile runc's Go runtime
        // would fail on the EPERM.
        profile["syscalls"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "names": ["epoll_pwait"],
                "action": "SCMP_ACT_ALLOW",
                "comment": "runc 1.1.5's init after it loads the filter"
            }));
    }
    profile
}

fn rootfs() -> Rootfs {
    let rootfs = Rootfs::busybox();
    rootfs.add_program(&program("refused", &[]), PROGRAM);
    rootfs
}

fn tracer() -> Tracer {
    Tracer::load(&TracerOptions {
        attach_sys_enter: false,
        ..TracerOptions::default()
    })
    .unwrap_or_else(|e| panic!("loading the kernel program: {e}"))
}

/// The kernel's links of `tracepoint`, through bpftool.
fn links_to(tracepoint: &str) -> Vec<u64> {
    let output = std::process::Command::new(syscensus_tests::require_program("bpftool", "bpftool"))
        .args(["-j", "link", "list"])
        .output()
        .unwrap();
    assert!(output.status.success(), "bpftool link list: {output:?}");
    let links: Value = serde_json::from_slice(&output.stdout).unwrap();
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["tp_name"] == tracepoint || l["attach_btf_name"] == tracepoint)
        .filter_map(|l| l["id"].as_u64())
        .collect()
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after
/// `timeout` naming `what`.
fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The watch policy of a container, from the profile runc holds in its
/// state directory for it (no configuration: the runtime's own state).
fn policy_from_runc_state(container: &Detached<'_>, expected: &Value) -> WatchPolicy {
    let (found, profile) = runtime::from_default_state_dirs(container.id())
        .unwrap()
        .unwrap_or_else(|| panic!("runc's state of {} not found", container.id()));
    assert_eq!(found, StateRuntime::Runc);
    let profile = profile.expect("the container runs without a seccomp profile");
    let from_file = Profile::parse(&expected.to_string(), "profile.json".as_ref(), None).unwrap();
    assert_eq!(profile.default_action, from_file.default_action);
    watch_policy(&profile, Arch::native()).unwrap().policy
}

/// The (ABI, syscall) → count of a watched cgroup.
fn counts(tracer: &Tracer, cgroup_id: u64) -> BTreeMap<(u32, u32), u64> {
    tracer
        .refusals(cgroup_id)
        .unwrap()
        .unwrap_or_else(|| panic!("cgroup {cgroup_id} is not watched"))
        .syscalls
        .into_iter()
        .map(|(key, count)| (key, count.count))
        .collect()
}

/// Waits until the counts of `cgroup_id` are `expected`, at most
/// [`REPORTED_WITHIN`]; panics with what was counted instead.
fn wait_for_counts(
    tracer: &Tracer,
    cgroup_id: u64,
    expected: &BTreeMap<(u32, u32), u64>,
    what: &str,
) {
    let deadline = Instant::now() + REPORTED_WITHIN;
    loop {
        let counted = counts(tracer, cgroup_id);
        if counted == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {REPORTED_WITHIN:?}: counted {counted:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the container's program has written `done` (its syscalls
/// have returned, and so have been counted: the kernel counts in the
/// syscall's own exit path).
fn wait_done(container: &Detached<'_>) -> Instant {
    wait_for(
        Duration::from_secs(20),
        &format!("container {} to finish its calls", container.id()),
        || container.stdout().contains("done\n").then(Instant::now),
    )
}

fn first_refusals(events: &mut syscensus::bpf::RefusalEvents, cgroup_id: u64) -> Vec<FirstRefusal> {
    events
        .drain()
        .into_iter()
        .filter(|e| e.cgroup_id == cgroup_id)
        .collect()
}

#[test]
fn a_refused_syscall_is_named_and_counted_and_nothing_else() {
    require_root();
    let profile = recorded_profile("errno");
    let rootfs = rootfs();
    let mut tracer = tracer();
    let mut events = tracer.take_refusal_events().unwrap();
    let before = tracer.watch_counters().unwrap();
    assert!(
        links_to("sys_exit").is_empty(),
        "sys_exit attached before anything is watched"
    );

    // The watched container: three mkdirs outside its profile.
    let refused = Bundle::new(
        rootfs.path(),
        Spec::new(&[PROGRAM, "mkdir", "3", "60"]).seccomp(profile.clone()),
    );
    let refused_run = Detached::create(Runtime::Runc, &refused);
    let refused_id = cgroup::cgroup_id(refused_run.cgroup().unwrap());
    let policy = policy_from_runc_state(&refused_run, &profile);
    tracer.watch_refusals(refused_id, &policy).unwrap();
    // A watched container that stays inside its profile.
    let inside = Bundle::new(
        rootfs.path(),
        Spec::new(&[PROGRAM, "none", "0", "60"]).seccomp(profile.clone()),
    );
    let inside_run = Detached::create(Runtime::Runc, &inside);
    let inside_id = cgroup::cgroup_id(inside_run.cgroup().unwrap());
    tracer
        .watch_refusals(inside_id, &policy_from_runc_state(&inside_run, &profile))
        .unwrap();
    assert_eq!(
        links_to("sys_exit").len(),
        1,
        "sys_exit not attached while watching"
    );
    assert_eq!(links_to("signal_generate").len(), 1);

    // Another container under the same profile, not watched, and a
    // process outside any container refused the same syscall by the same
    // profile (`syscensus run`): neither is counted.
    let other = Bundle::new(
        rootfs.path(),
        Spec::new(&[PROGRAM, "mkdir", "3", "60"]).seccomp(profile.clone()),
    );
    let other_run = Detached::run(Runtime::Runc, &other);
    wait_done(&other_run);
    assert!(
        other_run.stdout().contains("mkdir: -1\n"),
        "{}",
        other_run.stdout()
    );
    let dir = tempfile::tempdir().unwrap();
    let profile_path = dir.path().join("profile.json");
    std::fs::write(&profile_path, profile.to_string()).unwrap();
    let host_run = std::process::Command::new(syscensus_bin())
        .args(["run", "--profile"])
        .arg(&profile_path)
        .arg("--")
        .arg(program("refused", &[]))
        .args(["mkdir", "3", "0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&host_run.stdout).contains("mkdir: -1\n"),
        "mkdir was not refused outside the container: {host_run:?}"
    );

    refused_run.start();
    inside_run.start();
    let done = wait_done(&refused_run);
    wait_done(&inside_run);
    assert_eq!(
        refused_run.stdout(),
        "mkdir: -1\nmkdir: -1\nmkdir: -1\ndone\n",
        "mkdir was not refused with EPERM"
    );
    let expected = BTreeMap::from([((abi::NATIVE, mkdir_nr()), 3)]);
    wait_for_counts(
        &tracer,
        refused_id,
        &expected,
        "the refusals to be reported",
    );
    assert!(done.elapsed() < REPORTED_WITHIN);
    assert_eq!(
        counts(&tracer, inside_id),
        BTreeMap::new(),
        "inside its profile"
    );
    let after = tracer.watch_counters().unwrap();
    assert_eq!(
        after.refused - before.refused,
        3,
        "refusals outside the watched container were counted: {after:?}"
    );
    assert_eq!((after.map_full, after.events_lost), (0, 0));

    // One event, on the first refusal, naming the process.
    let first = wait_for(REPORTED_WITHIN, "the first-refusal event", || {
        let found = first_refusals(&mut events, refused_id);
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(first.len(), 1, "{first:?}");
    let event = &first[0];
    assert_eq!(
        (
            event.abi,
            event.nr,
            Arch::for_abi(event.abi).and_then(|a| a.name(event.nr))
        ),
        (abi::NATIVE, mkdir_nr(), Some("mkdir"))
    );
    assert_eq!(event.kind, RefusalKind::Errno);
    assert_eq!(event.ret, -i64::from(libc::EPERM));
    assert_eq!(event.comm, "refused");
    assert_eq!(event.tgid, refused_run.pid());
    assert_eq!(event.task_cgroup_id, refused_id);
    assert!(first_refusals(&mut events, inside_id).is_empty());

    // The watch goes with the last container watched.
    tracer.unwatch_refusals(refused_id).unwrap();
    assert_eq!(tracer.refusals(refused_id).unwrap(), None);
    assert_eq!(
        links_to("sys_exit").len(),
        1,
        "detached while a container is still watched"
    );
    tracer.unwatch_refusals(inside_id).unwrap();
    assert!(
        links_to("sys_exit").is_empty(),
        "sys_exit still attached with nothing watched"
    );
    assert!(links_to("signal_generate").is_empty());
    assert!(!tracer.refusal_hooks_attached());
}

#[test]
fn the_kill_action_is_reported() {
    require_root();
    let profile = recorded_profile("kill-process");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_KILL_PROCESS");
    let rootfs = rootfs();
    let mut tracer = tracer();
    let mut events = tracer.take_refusal_events().unwrap();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&[PROGRAM, "mkdir", "3", "60"]).seccomp(profile.clone()),
    );
    let container = Detached::create(Runtime::Runc, &bundle);
    let id = cgroup::cgroup_id(container.cgroup().unwrap());
    let pid = container.pid();
    tracer
        .watch_refusals(id, &policy_from_runc_state(&container, &profile))
        .unwrap();
    container.start();
    container.wait_stopped(Duration::from_secs(20));
    let stopped = Instant::now();
    assert!(
        !container.stdout().contains("mkdir:"),
        "mkdir returned: {}",
        container.stdout()
    );
    let expected = BTreeMap::from([((abi::NATIVE, mkdir_nr()), 1)]);
    wait_for_counts(&tracer, id, &expected, "the killed syscall to be reported");
    assert!(stopped.elapsed() < REPORTED_WITHIN);
    let first = first_refusals(&mut events, id);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].kind, RefusalKind::Signal);
    assert_eq!(
        (first[0].nr, first[0].tgid, first[0].comm.as_str()),
        (mkdir_nr(), pid, "refused")
    );
    assert!(tracer.watch_counters().unwrap().signals >= 1);
}

/// `SCMP_ACT_KILL_THREAD` of a thread whose process has other threads:
/// the kernel ends the thread with no signal and no return
/// (`do_exit(SIGSYS)` in kernel/seccomp.c), and the process goes on.
#[test]
fn a_thread_killed_alone_is_reported() {
    require_root();
    let profile = recorded_profile_of("runc", "kill-thread", "thread-none");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_KILL_THREAD");
    let rootfs = rootfs();
    let mut tracer = tracer();
    let mut events = tracer.take_refusal_events().unwrap();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&[PROGRAM, "thread-mkdir", "3", "60"]).seccomp(profile.clone()),
    );
    let container = Detached::create(Runtime::Runc, &bundle);
    let id = cgroup::cgroup_id(container.cgroup().unwrap());
    let pid = container.pid();
    tracer
        .watch_refusals(id, &policy_from_runc_state(&container, &profile))
        .unwrap();
    container.start();
    let done = wait_done(&container);
    // The thread died at its first mkdir; the main thread joined it.
    assert_eq!(container.stdout(), "done\n");
    let expected = BTreeMap::from([((abi::NATIVE, mkdir_nr()), 1)]);
    wait_for_counts(
        &tracer,
        id,
        &expected,
        "the killed thread's syscall to be reported",
    );
    assert!(done.elapsed() < REPORTED_WITHIN);
    let first = first_refusals(&mut events, id);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].kind, RefusalKind::Signal);
    assert_eq!((first[0].nr, first[0].tgid), (mkdir_nr(), pid));
    assert_ne!(first[0].pid, pid, "the main thread was named");
}

#[test]
fn complain_mode_is_reported() {
    require_root();
    let profile = recorded_profile("log");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_LOG");
    let rootfs = rootfs();
    let mut tracer = tracer();
    let mut events = tracer.take_refusal_events().unwrap();
    let bundles: Vec<Bundle> = [&["mkdir", "3"], &["none", "0"]]
        .iter()
        .map(|args| {
            Bundle::new(
                rootfs.path(),
                Spec::new(&[PROGRAM, args[0], args[1], "60"]).seccomp(profile.clone()),
            )
        })
        .collect();
    let policy = watch_policy(
        &Profile::parse(&profile.to_string(), "profile.json".as_ref(), None).unwrap(),
        Arch::native(),
    )
    .unwrap()
    .policy;
    let mut watched = Vec::new();
    for bundle in &bundles {
        // Watched from before runc puts anything in the cgroup, as the
        // agent watches a container from its cgroup's creation: what runc
        // does there before it loads the filter (mounts, pivot_root, its
        // own mkdirs) is not counted, though complain mode counts
        // everything outside the profile whatever it returns.
        let path = bundle.spec().cgroups_path.clone().unwrap();
        let lease = CgroupLease::acquire(&path);
        let dir = cgroup::unified_root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        let id = cgroup::cgroup_id(&path);
        tracer.watch_refusals(id, &policy).unwrap();
        let container = Detached::create(Runtime::Runc, bundle);
        assert_eq!(policy_from_runc_state(&container, &profile), policy);
        container.start();
        watched.push((container, id, lease));
    }
    for (container, _, _) in &watched {
        wait_done(container);
    }
    let (logged, logged_id, _) = &watched[0];
    // Allowed and logged: the first mkdir made the directory.
    assert!(
        logged.stdout().starts_with("mkdir: 0\nmkdir: -17\n"),
        "{}",
        logged.stdout()
    );
    let expected = BTreeMap::from([((abi::NATIVE, mkdir_nr()), 3)]);
    wait_for_counts(
        &tracer,
        *logged_id,
        &expected,
        "the logged syscalls to be reported",
    );
    let first = first_refusals(&mut events, *logged_id);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!((first[0].kind, first[0].ret), (RefusalKind::Log, 0));
    assert_eq!(
        counts(&tracer, watched[1].1),
        BTreeMap::new(),
        "inside its profile"
    );
}

#[test]
fn crun_state_holds_the_profile() {
    require_root();
    let _crun = CrunCgroups::acquire();
    let profile = recorded_profile_for("crun", "errno");
    let rootfs = rootfs();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&[PROGRAM, "none", "0", "60"]).seccomp(profile.clone()),
    );
    let container = Detached::create(Runtime::Crun, &bundle);
    let (found, read) = runtime::from_default_state_dirs(container.id())
        .unwrap()
        .unwrap_or_else(|| panic!("crun's state of {} not found", container.id()));
    assert_eq!(found, StateRuntime::Crun);
    let expected = Profile::parse(&profile.to_string(), "profile.json".as_ref(), None).unwrap();
    assert_eq!(read, Some(expected));
}

/// containerd's verbose CRI status holds the profile it resolved for a
/// Localhost profile and for RuntimeDefault; a Pod's container watched
/// under it has exactly its refused syscalls counted.
#[test]
fn containerd_status_holds_the_profile_and_its_refusals_are_counted() {
    require_root();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    // The container cgroup made below; released after the Pod is removed.
    let mut _lease: Option<CgroupLease> = None;
    let pod = cri.run_pod(PodSpec::new("refusals").namespace("shop"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-mkdir.json");
    let no_mkdir = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    });
    std::fs::write(&path, no_mkdir.to_string()).unwrap();
    let mut tracer = tracer();
    let container = pod.create_container(
        &ContainerSpec::new(
            "app",
            BUSYBOX_IMAGE,
            &[
                "sh",
                "-c",
                "mkdir /tmp/a; mkdir /tmp/b; echo done; sleep 60",
            ],
        )
        .seccomp(Seccomp::Localhost(path)),
    );
    let profile = runtime::from_cri_info(&container.info().to_string())
        .unwrap()
        .expect("no profile in containerd's status of a Localhost container");
    let policy = watch_policy(&profile, Arch::native()).unwrap().policy;
    // containerd has runc make the cgroup when the container starts: made
    // and watched first, as the agent watches it from its creation.
    let cgroup_path = container.cgroup();
    _lease = Some(CgroupLease::acquire(&cgroup_path));
    std::fs::create_dir_all(cgroup::unified_root().join(cgroup_path.trim_start_matches('/')))
        .unwrap();
    let id = cgroup::cgroup_id(&cgroup_path);
    tracer.watch_refusals(id, &policy).unwrap();
    container.start();
    wait_for(
        Duration::from_secs(20),
        "the container to finish its calls",
        || container.logs().stdout.contains("done\n").then_some(()),
    );
    let counted = counts(&tracer, id);
    let names: Vec<&str> = counted
        .keys()
        .map(|(abi_id, nr)| Arch::for_abi(*abi_id).unwrap().name(*nr).unwrap())
        .collect();
    assert!(
        matches!(names.as_slice(), ["mkdir"] | ["mkdirat"]) && counted.values().sum::<u64>() == 2,
        "{counted:?} ({names:?})"
    );

    // RuntimeDefault: containerd's own profile, refusing mount with EPERM
    // to a container without CAP_SYS_ADMIN; no profile when unconfined.
    let default = pod.create_container(
        &ContainerSpec::new("default", BUSYBOX_IMAGE, &["true"]).seccomp(Seccomp::RuntimeDefault),
    );
    let profile = runtime::from_cri_info(&default.info().to_string())
        .unwrap()
        .expect("no profile in containerd's status of a RuntimeDefault container");
    let policy = watch_policy(&profile, Arch::native()).unwrap().policy;
    let nr = |name| Arch::native().number(name).unwrap();
    assert_eq!(
        policy.get(abi::NATIVE, nr("mount")),
        Some(syscensus::bpf::Verdict::Errno(libc::EPERM as u16))
    );
    assert_eq!(
        policy.get(abi::NATIVE, nr("read")),
        Some(syscensus::bpf::Verdict::Allowed)
    );
    let unconfined = pod.create_container(
        &ContainerSpec::new("unconfined", BUSYBOX_IMAGE, &["true"]).seccomp(Seccomp::Unconfined),
    );
    assert_eq!(
        runtime::from_cri_info(&unconfined.info().to_string()).unwrap(),
        None
    );
}

/// `syscensus denials -o json` of the agent's state directory, by
/// container id.
fn denials(agent: &Agent) -> BTreeMap<String, Value> {
    let state_dir = agent.state_dir().display().to_string();
    let output = syscensus(&["denials", "--state-dir", &state_dir, "-o", "json"]);
    assert!(output.status.success(), "syscensus denials: {output:?}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    reports
        .into_iter()
        .map(|r| (r["containerId"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn the_agent_reports_what_profiles_refuse_its_containers() {
    require_root();
    let profile = recorded_profile("errno");
    let rootfs = rootfs();
    let agent = Agent::start(&["--no-kube"]);
    agent.wait_watching();
    let spec = |args: &[&str]| Spec::new(args).cgroup(CgroupStyle::Cgroupfs, Qos::BestEffort);

    // Three containers the agent records: two under the profile (one makes
    // three mkdirs outside it, one stays inside), one without a profile
    // making the same mkdirs.
    let refused = Bundle::new(
        rootfs.path(),
        spec(&[PROGRAM, "mkdir", "3", "60"]).seccomp(profile.clone()),
    );
    let inside = Bundle::new(
        rootfs.path(),
        spec(&[PROGRAM, "none", "0", "60"]).seccomp(profile.clone()),
    );
    let unconfined = Bundle::new(rootfs.path(), spec(&[PROGRAM, "mkdir", "3", "60"]));
    let refused_run = Detached::create(Runtime::Runc, &refused);
    let inside_run = Detached::create(Runtime::Runc, &inside);
    let unconfined_run = Detached::create(Runtime::Runc, &unconfined);

    // Watched from runc's state, before they start: a report with nothing
    // refused yet, and none for the container without a profile.
    let reports = wait_for(
        Duration::from_secs(10),
        "the agent to watch both containers",
        || {
            let reports = denials(&agent);
            (reports.contains_key(refused.id()) && reports.contains_key(inside.id()))
                .then_some(reports)
        },
    );
    for id in [refused.id(), inside.id()] {
        let report = &reports[id];
        assert_eq!(report["profile"]["source"], "runc", "{report}");
        assert_eq!(
            report["profile"]["defaultAction"], "SCMP_ACT_ERRNO",
            "{report}"
        );
        assert_eq!(report["state"], "Running", "{report}");
        assert_eq!(report["syscalls"], serde_json::json!([]), "{report}");
    }

    refused_run.start();
    inside_run.start();
    unconfined_run.start();
    let done = wait_done(&refused_run);
    wait_done(&inside_run);
    wait_done(&unconfined_run);
    assert_eq!(
        refused_run.stdout(),
        "mkdir: -1\nmkdir: -1\nmkdir: -1\ndone\n",
        "mkdir was not refused with EPERM"
    );
    let reports = wait_for(
        REPORTED_WITHIN,
        "the agent to report the three mkdirs",
        || {
            let reports = denials(&agent);
            (reports[refused.id()]["syscalls"][0]["count"] == 3).then_some(reports)
        },
    );
    assert!(done.elapsed() < REPORTED_WITHIN);
    let syscalls = reports[refused.id()]["syscalls"].as_array().unwrap();
    assert_eq!(syscalls.len(), 1, "{syscalls:?}");
    let mkdir = &syscalls[0];
    assert_eq!(mkdir["name"], "mkdir");
    assert_eq!(mkdir["arch"], "SCMP_ARCH_X86_64");
    assert_eq!(mkdir["process"], "refused");
    assert_eq!(mkdir["how"], "errno");
    assert!(
        mkdir["firstSeen"].is_string() && mkdir["lastSeen"].is_string(),
        "{mkdir}"
    );
    assert_eq!(reports[inside.id()]["syscalls"], serde_json::json!([]));
    assert!(!reports.contains_key(unconfined.id()), "{reports:?}");

    // The text form names them too.
    let state_dir = agent.state_dir().display().to_string();
    let text = syscensus(&["denials", "--state-dir", &state_dir]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("mkdir") && l.contains(" 3 ")),
        "{text}"
    );

    // Ended: the last report stays, and the watch goes with the last
    // watched container.
    assert_eq!(
        links_to("sys_exit").len(),
        1,
        "sys_exit not attached while watching"
    );
    drop(refused_run);
    drop(inside_run);
    drop(unconfined_run);
    let reports = wait_for(
        Duration::from_secs(10),
        "the reports of the ended containers",
        || {
            let reports = denials(&agent);
            (reports[refused.id()]["state"] == "Exited"
                && reports[inside.id()]["state"] == "Exited")
                .then_some(reports)
        },
    );
    assert_eq!(reports[refused.id()]["syscalls"][0]["count"], 3);
    wait_for(Duration::from_secs(10), "sys_exit to be detached", || {
        links_to("sys_exit").is_empty().then_some(())
    });
    let log = agent.stop();
    assert!(log.contains("its profile refused a syscall"), "{log}");
}

#[test]
fn the_agent_watches_a_containerd_pods_container_from_its_start() {
    require_root();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let socket = containerd.socket().display().to_string();
    let agent = Agent::start(&["--no-kube", "--cri-socket", &socket]);
    agent.wait_watching();
    let cri = containerd.cri();
    let pod = cri.run_pod(PodSpec::new("refusals").namespace("shop"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-mkdir.json");
    let no_mkdir = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    });
    std::fs::write(&path, no_mkdir.to_string()).unwrap();
    // The workload's first acts are refused: containerd has runc make the
    // cgroup and start the entrypoint at once, and the agent must watch
    // the container by then (the profile from containerd's status, asked
    // as the cgroup is made).
    let script = "mkdir /tmp/a; mkdir /tmp/b; echo done; sleep 60";
    let refused = pod.create_container(
        &ContainerSpec::new("app", BUSYBOX_IMAGE, &["sh", "-c", script])
            .seccomp(Seccomp::Localhost(path)),
    );
    let unconfined = pod.create_container(
        &ContainerSpec::new("other", BUSYBOX_IMAGE, &["sh", "-c", script])
            .seccomp(Seccomp::Unconfined),
    );
    refused.start();
    unconfined.start();
    let done = wait_for(
        Duration::from_secs(20),
        "the container to finish its calls",
        || refused.logs().stdout.contains("done\n").then(Instant::now),
    );
    let reports = wait_for(REPORTED_WITHIN, "the agent to report both mkdirs", || {
        let reports = denials(&agent);
        let total: u64 = reports
            .get(refused.id())?
            .get("syscalls")?
            .as_array()?
            .iter()
            .filter_map(|s| s["count"].as_u64())
            .sum();
        (total == 2).then_some(reports)
    });
    assert!(done.elapsed() < REPORTED_WITHIN);
    let report = &reports[refused.id()];
    let syscalls = report["syscalls"].as_array().unwrap();
    assert_eq!(syscalls.len(), 1, "{report}");
    assert!(
        matches!(syscalls[0]["name"].as_str(), Some("mkdir" | "mkdirat")),
        "{report}"
    );
    assert_eq!(report["profile"]["source"], "cri", "{report}");
    assert_eq!(report["containerName"], "app", "{report}");
    assert_eq!(report["pod"]["namespace"], "shop", "{report}");
    assert!(!reports.contains_key(unconfined.id()), "{reports:?}");
}
