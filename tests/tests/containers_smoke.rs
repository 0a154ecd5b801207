//! The container test infrastructure against the real runtimes: runc and
//! crun run busybox bundles under kubelet-shaped cgroup paths and enforce
//! `linux.seccomp`; containerd runs a host-network pod through CRI whose
//! containers log, carry the kubelet's labels and obey a Localhost seccomp
//! profile; nothing is left behind.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use syscensus_tests::{
    containers::{
        BUSYBOX_IMAGE, Bundle, CgroupLease, CgroupStyle, ContainerSpec, Containerd, CrunCgroups,
        Detached, PodSpec, Qos, Rootfs, Runtime, Seccomp, Spec,
        cgroup::{self, assert_gone, existing_dirs, unified_root},
        containerd::mounts_under,
        random_hex, run,
    },
    require_root,
};

/// Allows everything but mkdir and mkdirat, which fail with EPERM.
fn no_mkdir_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cgroup2 line of `/proc/self/cgroup` as printed inside a container.
fn cgroup2_line(output: &str) -> &str {
    output
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line in {output:?}"))
}

/// The pod-level directory of a container cgroup path.
fn parent(path: &str) -> &str {
    path.rsplit_once('/').unwrap().0
}

#[test]
fn runc_runs_busybox_under_both_cgroup_path_styles() {
    require_root();
    let rootfs = Rootfs::busybox();
    for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
        let spec = Spec::new(&["sh", "-c", "echo hello; cat /proc/self/cgroup"])
            .cgroup(style, Qos::BestEffort);
        let path = spec.cgroups_path.clone().unwrap();
        let bundle = Bundle::new(rootfs.path(), spec);
        let output = run(Runtime::Runc, &bundle);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{style:?}: {output:?}");
        assert_eq!(stdout.lines().next(), Some("hello"), "{style:?}");
        assert_eq!(cgroup2_line(&stdout), path, "{style:?}");
        // Every v1 controller saw the same path.
        assert!(
            stdout.lines().filter(|l| l.ends_with(&path)).count() >= 2,
            "{style:?}: {stdout}"
        );
        assert_gone(&path);
        assert_gone(parent(&path));
    }
}

#[test]
fn runc_enforces_linux_seccomp() {
    require_root();
    let rootfs = Rootfs::busybox();
    let command = ["sh", "-c", "mkdir /tmp/x && echo made"];

    let open = Bundle::new(rootfs.path(), Spec::new(&command));
    let output = run(Runtime::Runc, &open);
    assert_eq!(text(&output.stdout), "made\n", "{output:?}");

    for no_new_privileges in [true, false] {
        let spec = Spec::new(&command)
            .seccomp(no_mkdir_profile())
            .no_new_privileges(no_new_privileges);
        let bundle = Bundle::new(rootfs.path(), spec);
        let output = run(Runtime::Runc, &bundle);
        assert!(!output.status.success(), "{output:?}");
        assert!(
            text(&output.stderr).contains("Operation not permitted"),
            "no_new_privileges {no_new_privileges}: {output:?}"
        );
        assert_gone(bundle.spec().cgroups_path.as_deref().unwrap());
    }
}

#[test]
fn runc_detached_container_execs_and_is_deleted() {
    require_root();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&["sh", "-c", "echo started; exec sleep 1000"]),
    );
    let path = bundle.spec().cgroups_path.clone().unwrap();
    let container = Detached::create(Runtime::Runc, &bundle);
    assert_eq!(container.status(), "created");
    // Created: the init process already sits in the container's cgroup.
    assert_eq!(cgroup::process_cgroup(container.pid()), path);
    let id = cgroup::cgroup_id(&path);
    assert!(id > 1, "cgroup id of {path}: {id}");
    container.start();
    assert_eq!(container.status(), "running");
    let exec = container.exec(&["sh", "-c", "echo from exec; cat /proc/self/cgroup"]);
    assert!(exec.status.success(), "{exec:?}");
    let stdout = text(&exec.stdout);
    assert!(stdout.starts_with("from exec\n"), "{stdout}");
    assert_eq!(cgroup2_line(&stdout), path);
    container.kill("KILL");
    container.wait_stopped(Duration::from_secs(10));
    assert_eq!(container.stdout(), "started\n");
    container.delete();
    assert_gone(&path);
    assert_gone(parent(&path));

    // A guard dropped while its container runs kills and deletes it.
    let bundle = Bundle::new(rootfs.path(), Spec::new(&["sleep", "1000"]));
    let path = bundle.spec().cgroups_path.clone().unwrap();
    let container = Detached::run(Runtime::Runc, &bundle);
    let pid = container.pid();
    drop(container);
    // Dead: gone, or a zombie until init reaps it (runc leaves it to init).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    assert!(matches!(state, None | Some("Z")), "{pid} survived: {stat}");
    assert_gone(&path);
}

#[test]
fn cgroup_leases_remove_only_what_the_process_created() {
    require_root();
    // A top-level name of its own, so that parallel tests cannot interfere.
    let top = format!("/syscensus-lease-{}", random_hex(8));
    let mkdir_everywhere = |path: &str| {
        for hierarchy in cgroup::hierarchies() {
            std::fs::create_dir_all(hierarchy.join(path.trim_start_matches('/'))).unwrap();
        }
    };
    // Existed before any lease: kept.
    mkdir_everywhere(&format!("{top}/kept"));
    let first = CgroupLease::acquire(&format!("{top}/kept/a/one"));
    let second = CgroupLease::acquire(&format!("{top}/kept/a/two"));
    // What a runtime would create, with a child of its own below.
    mkdir_everywhere(&format!("{top}/kept/a/one/child"));
    mkdir_everywhere(&format!("{top}/kept/a/two"));
    drop(first);
    assert_gone(&format!("{top}/kept/a/one"));
    assert!(
        !existing_dirs(&format!("{top}/kept/a")).is_empty(),
        "shared parent removed early"
    );
    drop(second);
    assert_gone(&format!("{top}/kept/a"));
    let kept = existing_dirs(&format!("{top}/kept"));
    assert_eq!(kept.len(), cgroup::hierarchies().len(), "{kept:?}");
    for dir in existing_dirs(&format!("{top}/kept")) {
        std::fs::remove_dir(&dir).unwrap();
        std::fs::remove_dir(dir.parent().unwrap()).unwrap();
    }
    assert_gone(&top);
}

#[test]
fn crun_runs_busybox_with_cgroup2_controllers_moved() {
    require_root();
    let controllers =
        || std::fs::read_to_string(unified_root().join("cgroup.controllers")).unwrap();
    let before = controllers();
    let rootfs = Rootfs::busybox();
    {
        let _crun = CrunCgroups::acquire();
        assert_eq!(controllers().trim(), "", "cgroup2 kept controllers");
        for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
            let spec = Spec::new(&["sh", "-c", "echo hello; cat /proc/self/cgroup"])
                .cgroup(style, Qos::Burstable)
                .seccomp(no_mkdir_profile());
            let path = spec.cgroups_path.clone().unwrap();
            let bundle = Bundle::new(rootfs.path(), spec);
            let output = run(Runtime::Crun, &bundle);
            let stdout = text(&output.stdout);
            assert!(output.status.success(), "{style:?}: {output:?}");
            assert_eq!(stdout.lines().next(), Some("hello"));
            assert_eq!(cgroup2_line(&stdout), path);
            assert_gone(&path);
            assert_gone(parent(&path));
        }
        let blocked = Bundle::new(
            rootfs.path(),
            Spec::new(&["mkdir", "/tmp/x"]).seccomp(no_mkdir_profile()),
        );
        let output = run(Runtime::Crun, &blocked);
        assert!(
            text(&output.stderr).contains("Operation not permitted"),
            "{output:?}"
        );

        let bundle = Bundle::new(rootfs.path(), Spec::new(&["sleep", "1000"]));
        let path = bundle.spec().cgroups_path.clone().unwrap();
        let container = Detached::run(Runtime::Crun, &bundle);
        assert_eq!(cgroup::process_cgroup(container.pid()), path);
        let exec = container.exec(&["echo", "from exec"]);
        assert_eq!(text(&exec.stdout), "from exec\n", "{exec:?}");
        container.delete();
        assert_gone(&path);
    }
    // The last guard gave the controllers back.
    assert_eq!(controllers(), before);
}

#[test]
fn containerd_runs_a_host_network_pod_through_cri() {
    require_root();
    let run_containerd = Path::new("/run/containerd");
    let had_run_dir = run_containerd.exists();
    let containerd = Containerd::start();
    let (pid, root, socket) = (containerd.pid(), containerd.root(), containerd.socket());
    let cri = containerd.cri();
    assert_eq!(cri.version().runtime_name, "containerd");
    containerd.import_test_images(&[]);

    let profiles = tempfile::tempdir().unwrap();
    let profile = profiles.path().join("no-mkdir.json");
    std::fs::write(&profile, no_mkdir_profile().to_string()).unwrap();

    let pod = cri.run_pod(PodSpec::new("smoke").namespace("syscensus-test"));
    let pod_cgroup = pod.cgroup_parent().to_owned();
    assert!(
        pod_cgroup.starts_with("/kubepods/besteffort/pod"),
        "{pod_cgroup}"
    );
    let mkdir = ["sh", "-c", "mkdir /tmp/x && echo made"];
    let hello = pod.run_container(&ContainerSpec::new(
        "hello",
        BUSYBOX_IMAGE,
        &[
            "sh",
            "-c",
            "echo hello; echo oops >&2; cat /proc/self/cgroup",
        ],
    ));
    let open = pod.run_container(&ContainerSpec::new("open", BUSYBOX_IMAGE, &mkdir));
    let blocked = pod.run_container(
        &ContainerSpec::new("blocked", BUSYBOX_IMAGE, &mkdir)
            .seccomp(Seccomp::Localhost(profile.clone())),
    );
    let blocked_by_path = pod.run_container(
        &ContainerSpec::new("blocked-by-path", BUSYBOX_IMAGE, &mkdir)
            .seccomp(Seccomp::LocalhostProfilePath(profile.clone()))
            .no_new_privs(true),
    );

    let sandbox = existing_dirs(&pod.sandbox_cgroup());
    assert_eq!(sandbox.len(), cgroup::hierarchies().len(), "{sandbox:?}");
    let timeout = Duration::from_secs(20);
    assert_eq!(hello.wait_exited(timeout), 0);
    let cgroup_path = hello.cgroup();
    assert_eq!(cgroup_path, format!("{pod_cgroup}/{}", hello.id()));
    let logs = hello.logs();
    assert_eq!(logs.stdout.lines().next(), Some("hello"), "{logs:?}");
    assert_eq!(logs.stderr, "oops\n");
    assert_eq!(cgroup2_line(&logs.stdout), cgroup_path);
    let labels = hello.labels();
    for (key, value) in [
        ("io.kubernetes.pod.name", "smoke"),
        ("io.kubernetes.pod.namespace", "syscensus-test"),
        ("io.kubernetes.pod.uid", pod.uid()),
        ("io.kubernetes.container.name", "hello"),
    ] {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "{labels:?}"
        );
    }

    assert_eq!(open.wait_exited(timeout), 0, "{:?}", open.logs());
    assert_eq!(open.logs().stdout, "made\n");
    for container in [&blocked, &blocked_by_path] {
        assert_eq!(container.wait_exited(timeout), 1, "{:?}", container.logs());
        let logs = container.logs();
        assert!(
            logs.stderr.contains("Operation not permitted"),
            "{}: {logs:?}",
            container.name()
        );
        let spec = &container.info()["runtimeSpec"];
        assert_eq!(
            spec["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_ALLOW",
            "{}",
            container.name()
        );
    }
    assert_eq!(
        blocked_by_path.info()["runtimeSpec"]["process"]["noNewPrivileges"],
        true
    );

    drop((hello, open, blocked, blocked_by_path));
    pod.remove();
    assert_gone(&pod_cgroup);
    assert!(cri.pods().is_empty());
    drop(containerd);

    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "containerd {pid} still runs"
    );
    let dir = root.parent().unwrap();
    assert!(
        !socket.exists() && !dir.exists(),
        "{} is left",
        dir.display()
    );
    assert_eq!(mounts_under(dir), Vec::<std::path::PathBuf>::new());
    assert!(existing_dirs(&pod_cgroup).is_empty());
    assert_eq!(run_containerd.exists(), had_run_dir, "/run/containerd");
}
