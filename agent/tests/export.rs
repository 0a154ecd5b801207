//! `syscensus export`: profile paths and bytes, the patches for every
//! workload kind (strategic merge and RFC 6902), the kustomize Component,
//! determinism, stale files, and recordings from a state directory. The
//! golden export lives in tests/golden/export/tree; run with
//! `UPDATE_GOLDEN=1` to rewrite it after an intended change.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use syscensus::{
    export::{Base, Entry, PlanOptions, parse_patch, plan, strategic_merge_patch},
    localhost::{self, PathError, localhost_profile, profile_path},
};
use syscensus_api::{
    BaseSetRef, ContainerProfile, ContainerProfileSpec, WorkloadKind, WorkloadRef,
};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_syscensus")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/export")
}

fn spec(
    kind: WorkloadKind,
    workload: &str,
    container: &str,
    init: bool,
    names: &[&str],
) -> ContainerProfileSpec {
    let t = Time(jiff::Timestamp::from_second(1_700_000_000).unwrap());
    let mut syscalls = BTreeMap::new();
    syscalls.insert(
        "SCMP_ARCH_X86_64".to_owned(),
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    );
    ContainerProfileSpec {
        session_only_syscalls: Default::default(),
        sessions: Vec::new(),
        recording: "rec".into(),
        workload: WorkloadRef {
            kind,
            name: workload.into(),
        },
        container: container.into(),
        init_container: init,
        syscall_count: names.len() as i64,
        syscalls,
        runtime_base_set: Some(BaseSetRef {
            name: "runc-1.1".into(),
            syscalls: vec!["capset".into(), "execve".into()],
        }),
        contributors: Default::default(),
        first_seen: t.clone(),
        last_seen: t,
        last_new_syscall: None,
        warnings: Vec::new(),
    }
}

/// A recorded container of every workload kind, init containers included.
fn entries() -> Vec<Entry> {
    use WorkloadKind::*;
    let e = |ns: &str, kind, workload, container, init, names: &[&str]| Entry {
        namespace: ns.into(),
        spec: spec(kind, workload, container, init, names),
    };
    vec![
        e(
            "shop",
            Deployment,
            "web",
            "nginx",
            false,
            &["accept4", "epoll_wait", "read", "write"],
        ),
        e(
            "shop",
            Deployment,
            "web",
            "migrate",
            true,
            &["connect", "read"],
        ),
        e(
            "shop",
            StatefulSet,
            "db",
            "postgres",
            false,
            &["fsync", "pread64", "pwrite64"],
        ),
        e(
            "monitoring",
            DaemonSet,
            "node-exporter",
            "exporter",
            false,
            &["openat", "read"],
        ),
        e("shop", ReplicaSet, "legacy", "app", false, &["read"]),
        e("shop", Job, "backup", "backup", false, &["openat", "write"]),
        e("shop", CronJob, "nightly", "task", false, &["nanosleep"]),
        e("shop", CronJob, "nightly", "prepare", true, &["mkdir"]),
        e("shop", Pod, "debug", "shell", false, &["execve", "wait4"]),
        e("shop", Pod, "debug", "setup", true, &["chmod"]),
    ]
}

fn container(name: &str, security_context: Option<Value>) -> Value {
    let mut c = json!({"name": name, "image": format!("registry.example/{name}:1.0")});
    if let Some(sc) = security_context {
        c["securityContext"] = sc;
    }
    c
}

fn pod_spec(containers: Vec<Value>, init: Vec<Value>) -> Value {
    let mut spec = json!({"containers": containers});
    if !init.is_empty() {
        spec["initContainers"] = Value::Array(init);
    }
    spec
}

fn workload(kind: &str, api_version: &str, ns: Option<&str>, name: &str, pod: Value) -> Value {
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": pod});
    let spec = match kind {
        "Pod" => template["spec"].clone(),
        "CronJob" => {
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        "Job" => json!({"template": template}),
        _ => json!({"selector": {"matchLabels": {"app": name}}, "template": template}),
    };
    let mut meta = json!({"name": name});
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec})
}

/// Manifests of the workloads: containers that are not recorded come first
/// (so indexes matter), some have a securityContext, one manifest leaves
/// its namespace to the overlay.
fn base_manifests() -> Vec<Value> {
    let ro = || Some(json!({"readOnlyRootFilesystem": true}));
    vec![
        workload(
            "Deployment",
            "apps/v1",
            Some("shop"),
            "web",
            pod_spec(
                vec![container("proxy", None), container("nginx", ro())],
                vec![container("migrate", None)],
            ),
        ),
        workload(
            "StatefulSet",
            "apps/v1",
            Some("shop"),
            "db",
            pod_spec(vec![container("postgres", ro())], vec![]),
        ),
        workload(
            "DaemonSet",
            "apps/v1",
            None,
            "node-exporter",
            pod_spec(vec![container("exporter", None)], vec![]),
        ),
        workload(
            "ReplicaSet",
            "apps/v1",
            Some("shop"),
            "legacy",
            pod_spec(vec![container("app", None)], vec![]),
        ),
        workload(
            "Job",
            "batch/v1",
            Some("shop"),
            "backup",
            pod_spec(vec![container("backup", None)], vec![]),
        ),
        workload(
            "CronJob",
            "batch/v1",
            Some("shop"),
            "nightly",
            pod_spec(
                vec![container("task", ro())],
                vec![container("prepare", None)],
            ),
        ),
        workload(
            "Pod",
            "v1",
            Some("shop"),
            "debug",
            pod_spec(
                vec![container("shell", None)],
                vec![container("setup", ro())],
            ),
        ),
    ]
}

fn base() -> Base {
    let mut base = Base::default();
    for m in base_manifests() {
        base.add(&m);
    }
    base
}

/// The ContainerProfile objects of `entries`, as `kubectl get -o yaml`
/// writes a List.
fn profiles_yaml(entries: &[Entry]) -> String {
    let items: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut object = ContainerProfile::new(
                &syscensus_api::object_name(
                    &e.spec.recording,
                    e.spec.workload.kind.as_str(),
                    &e.spec.workload.name,
                    &e.spec.container,
                ),
                e.spec.clone(),
            );
            object.metadata.namespace = Some(e.namespace.clone());
            serde_json::to_value(object).unwrap()
        })
        .collect();
    serde_norway::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": items})).unwrap()
}

/// Every file below `dir`, relative, with its content.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// Compares the directory `actual` with the golden directory `name`, or
/// rewrites it when UPDATE_GOLDEN is set.
fn golden_tree(name: &str, actual: &Path) {
    let golden = golden_dir().join(name);
    let files = tree(actual);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(&golden);
        for (relative, content) in &files {
            let path = golden.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        return;
    }
    assert!(
        golden.is_dir(),
        "golden directory {} missing: run with UPDATE_GOLDEN=1 to create it",
        golden.display()
    );
    let expected = tree(&golden);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>(),
        "the export's files differ from {} (run with UPDATE_GOLDEN=1 if intended)",
        golden.display()
    );
    for (relative, content) in &files {
        assert!(
            expected[relative] == *content,
            "{relative} differs from {} (run with UPDATE_GOLDEN=1 if intended):\n--- expected\n{}\n--- actual\n{content}",
            golden.display(),
            expected[relative]
        );
    }
}

fn write_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let profiles = dir.join("profiles.yaml");
    fs::write(&profiles, profiles_yaml(&entries())).unwrap();
    let base = dir.join("base");
    fs::create_dir_all(&base).unwrap();
    for (i, m) in base_manifests().iter().enumerate() {
        fs::write(
            base.join(format!("{i}.yaml")),
            serde_norway::to_string(m).unwrap(),
        )
        .unwrap();
    }
    (profiles, base)
}

#[test]
fn export_matches_golden_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (profiles, base) = write_inputs(tmp.path());
    let out = tmp.path().join("out");
    let args = [
        "export",
        "--to",
        out.to_str().unwrap(),
        "--from",
        profiles.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
    ];
    let first = run(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("exported 10 profile(s) of 7 workload(s)"),
        "{stdout}"
    );
    golden_tree("tree", &out);
    let before = tree(&out);

    // The same input again: the same bytes, and nothing rewritten.
    let second = run(&args);
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("0 file(s) written, 0 removed"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(tree(&out), before);

    // Input order does not matter.
    let mut reversed = entries();
    reversed.reverse();
    fs::write(&profiles, profiles_yaml(&reversed)).unwrap();
    let out2 = tmp.path().join("out2");
    let third = run(&[
        "export",
        "--to",
        out2.to_str().unwrap(),
        "--from",
        profiles.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
    ]);
    assert!(third.status.success());
    assert_eq!(tree(&out2), before);
}

#[test]
fn plan_is_pure_and_order_independent() {
    let a = plan(entries(), Some(&base()), &PlanOptions::default()).unwrap();
    let mut reversed = entries();
    reversed.reverse();
    let b = plan(reversed, Some(&base()), &PlanOptions::default()).unwrap();
    assert_eq!(a, b);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    for (path, content) in &a.files {
        assert!(content.ends_with('\n'), "{path} lacks a trailing newline");
    }
    // Every kind has a strategic merge and a JSON patch.
    for dir in [
        "shop/deployment-web",
        "shop/statefulset-db",
        "monitoring/daemonset-node-exporter",
        "shop/replicaset-legacy",
        "shop/job-backup",
        "shop/cronjob-nightly",
        "shop/pod-debug",
    ] {
        assert!(a.files.contains_key(&format!("{dir}/patch.yaml")), "{dir}");
        assert!(
            a.files.contains_key(&format!("{dir}/patch.rfc6902.json")),
            "{dir}"
        );
    }
}

#[test]
fn patches_read_back_and_target_exactly_the_recorded_containers() {
    let p = plan(entries(), Some(&base()), &PlanOptions::default()).unwrap();
    let text = &p.files["shop/deployment-web/patch.yaml"];
    let patch = parse_patch(text, Path::new("patch.yaml")).unwrap();
    assert_eq!(strategic_merge_patch(&patch), *text);
    let names: Vec<(&str, bool)> = patch
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.init))
        .collect();
    assert_eq!(names, [("migrate", true), ("nginx", false)]);
    // The JSON patch tests each container's name at its index first.
    let ops: Value =
        serde_json::from_str(&p.files["shop/deployment-web/patch.rfc6902.json"]).unwrap();
    let paths: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/template/spec/initContainers/0/name",
            "/spec/template/spec/initContainers/0/securityContext",
            "/spec/template/spec/containers/1/name",
            "/spec/template/spec/containers/1/securityContext/seccompProfile",
        ]
    );
}

#[test]
fn without_a_base_no_json_patches_and_missing_containers_are_reported() {
    let p = plan(entries(), None, &PlanOptions::default()).unwrap();
    assert!(!p.files.keys().any(|k| k.ends_with(".rfc6902.json")));
    let mut partial = Base::default();
    partial.add(&base_manifests()[0]);
    let p = plan(entries(), Some(&partial), &PlanOptions::default()).unwrap();
    assert!(
        p.files
            .contains_key("shop/deployment-web/patch.rfc6902.json")
    );
    assert!(
        !p.files
            .contains_key("shop/statefulset-db/patch.rfc6902.json")
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("StatefulSet shop/db")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn profile_paths_and_bytes() {
    assert_eq!(
        profile_path("shop", WorkloadKind::Deployment, "web", "nginx").unwrap(),
        PathBuf::from("shop/deployment-web/nginx.json")
    );
    assert_eq!(
        localhost_profile("shop", WorkloadKind::StatefulSet, "db", "postgres").unwrap(),
        "syscensus/shop/statefulset-db/postgres.json"
    );
    // The exported file is render_profile's output, byte for byte (the
    // installer writes the same).
    let rendered = localhost::render(&entries()[0].spec);
    let p = plan(entries(), None, &PlanOptions::default()).unwrap();
    assert_eq!(p.files["shop/deployment-web/nginx.json"], rendered);
    assert!(
        rendered.contains("\"comment\": \"runtime base set: runc-1.1\""),
        "{rendered}"
    );
}

#[test]
fn profile_paths_refuse_what_is_not_a_kubernetes_name() {
    use WorkloadKind::Deployment;
    let long_subdomain = [&"a".repeat(63)[..]; 4]
        .join(".")
        .chars()
        .take(250)
        .collect::<String>();
    let cases: &[(&str, &str, &str)] = &[
        ("..", "web", "nginx"),
        ("shop", "..", "nginx"),
        ("shop", "web", ".."),
        ("shop", "../etc", "nginx"),
        ("shop/x", "web", "nginx"),
        ("shop", "a/b", "nginx"),
        ("/abs", "web", "nginx"),
        ("shop", "web", "/abs"),
        ("Shop", "web", "nginx"),
        ("shop", "Web", "nginx"),
        ("shop", "web", "Nginx"),
        ("", "web", "nginx"),
        ("shop", "", "nginx"),
        ("shop", "web", ""),
        ("shop", "web", "a.b"),
    ];
    for (ns, workload, container) in cases {
        let err = profile_path(ns, Deployment, workload, container).unwrap_err();
        assert!(
            matches!(err, PathError::Name { .. }),
            "{ns}/{workload}/{container}: {err}"
        );
    }
    let too_long: [(&str, &str, &str); 3] = [
        (&"n".repeat(64), "web", "nginx"),
        ("shop", &"w".repeat(254), "nginx"),
        ("shop", "web", &"c".repeat(64)),
    ];
    for (ns, workload, container) in too_long {
        assert!(profile_path(ns, Deployment, workload, container).is_err());
    }
    // A valid workload name that makes too long a directory name.
    assert!(long_subdomain.len() <= 253);
    let err = profile_path(
        "shop",
        WorkloadKind::StatefulSet,
        long_subdomain.trim_end_matches('.'),
        "db",
    )
    .unwrap_err();
    assert!(matches!(err, PathError::TooLong { .. }), "{err}");
    assert!(err.to_string().contains("255"), "{err}");
    let err = profile_path("shop", Deployment, "..", "nginx")
        .unwrap_err()
        .to_string();
    assert!(err.contains("workload name \"..\""), "{err}");
}

#[test]
fn stale_files_go_foreign_files_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let profiles = tmp.path().join("p.yaml");
    let out = tmp.path().join("out");
    let export = |entries: &[Entry]| {
        fs::write(&profiles, profiles_yaml(entries)).unwrap();
        run(&[
            "export",
            "--to",
            out.to_str().unwrap(),
            "--from",
            profiles.to_str().unwrap(),
        ])
    };
    assert!(export(&entries()).status.success());
    fs::write(out.join("shop/README.md"), "notes\n").unwrap();
    assert!(out.join("shop/job-backup/backup.json").exists());

    // The Job and the DaemonSet are gone: their files and emptied
    // directories go, files nobody exported stay.
    let kept: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| {
            !matches!(
                e.spec.workload.kind,
                WorkloadKind::Job | WorkloadKind::DaemonSet
            )
        })
        .collect();
    let o = export(&kept);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("shop/job-backup").exists());
    assert!(!out.join("monitoring").exists());
    assert_eq!(
        fs::read_to_string(out.join("shop/README.md")).unwrap(),
        "notes\n"
    );
    let manifest = fs::read_to_string(out.join(".syscensus-export")).unwrap();
    assert!(!manifest.contains("job-backup"), "{manifest}");
    assert!(
        !fs::read_to_string(out.join("kustomization.yaml"))
            .unwrap()
            .contains("backup")
    );

    // A file syscensus did not write is never overwritten.
    let foreign = tmp.path().join("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("kustomization.yaml"), "resources: []\n").unwrap();
    let o = run(&[
        "export",
        "--to",
        foreign.to_str().unwrap(),
        "--from",
        profiles.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(73),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("was not written by syscensus export"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_dir(&foreign).unwrap().count(),
        1,
        "nothing was written"
    );
}

#[test]
fn recordings_of_a_state_directory_become_pod_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    fs::create_dir_all(state.join("containers")).unwrap();
    let recording = |id: &str, container: &str, names: &[&str]| {
        json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "ContainerRecording",
            "containerId": id,
            "containerName": container,
            "pod": {"namespace": "shop", "name": "web-0", "uid": "u-1"},
            "cgroup": format!("/kubepods/pod-u-1/{id}"),
            "state": "Exited",
            "start": "Exec",
            "firstSeen": "2024-05-01T10:00:00Z",
            "lastSeen": "2024-05-01T10:05:00Z",
            "runtimeBaseSet": "runc-1.1",
            "syscalls": {"SCMP_ARCH_X86_64": names},
            "profile": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": names, "action": "SCMP_ACT_ALLOW", "comment": "recorded: SCMP_ARCH_X86_64"},
                    {"names": ["execve"], "action": "SCMP_ACT_ALLOW", "comment": "runtime base set: runc-1.1"}
                ]
            }
        })
    };
    for (id, container, names) in [
        ("c1", "app", &["read"][..]),
        ("c2", "app", &["write"][..]), // the same container, restarted
        ("c3", "helper", &["nanosleep"][..]),
    ] {
        fs::write(
            state.join("containers").join(format!("{id}.json")),
            recording(id, container, names).to_string(),
        )
        .unwrap();
    }
    fs::write(state.join("agent.pid"), "1\n").unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "export",
        "--to",
        out.to_str().unwrap(),
        "--from",
        state.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let app: Value =
        serde_json::from_str(&fs::read_to_string(out.join("shop/pod-web-0/app.json")).unwrap())
            .unwrap();
    assert_eq!(app["syscalls"][0]["names"], json!(["read", "write"]));
    assert_eq!(app["syscalls"][1]["comment"], "runtime base set: runc-1.1");
    assert!(out.join("shop/pod-web-0/helper.json").exists());
    let patch = fs::read_to_string(out.join("shop/pod-web-0/patch.yaml")).unwrap();
    assert!(
        patch.contains("kind: Pod") && patch.contains("name: helper"),
        "{patch}"
    );

    // Filtered to another namespace there is nothing, and nothing is written.
    let empty = tmp.path().join("empty");
    let o = run(&[
        "export",
        "--to",
        empty.to_str().unwrap(),
        "--from",
        state.to_str().unwrap(),
        "--namespace",
        "other",
    ]);
    assert_eq!(o.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no profiles to export (namespace other)"));
    assert!(!empty.exists());
}

#[test]
fn spo_objects_on_request() {
    let p = plan(
        entries(),
        None,
        &PlanOptions {
            spo: true,
            ..Default::default()
        },
    )
    .unwrap();
    let spo = &p.files["shop/deployment-web/nginx.spo.yaml"];
    assert!(spo.contains("kind: SeccompProfile"), "{spo}");
    assert!(spo.contains("name: shop.deployment.web.nginx"), "{spo}");
}

#[test]
fn unknown_documents_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("x.yaml");
    fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let o = run(&[
        "export",
        "--to",
        tmp.path().join("out").to_str().unwrap(),
        "--from",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("document 1 is a ConfigMap"), "{stderr}");
}

#[test]
fn the_security_profiles_operator_installs_what_export_for_spo_writes() {
    use syscensus::export::Installer;
    for (installer, object, version, localhost) in [
        (
            Installer::Spo,
            "name: shop.deployment.web.nginx\n",
            "security-profiles-operator.x-k8s.io/v1\n",
            "localhostProfile: operator/shop.deployment.web.nginx.json",
        ),
        (
            Installer::SpoNamespaced,
            "name: deployment-web.nginx\n  namespace: shop\n",
            "security-profiles-operator.x-k8s.io/v1beta1\n",
            "localhostProfile: operator/shop/deployment-web.nginx.json",
        ),
    ] {
        let p = plan(
            entries(),
            None,
            &PlanOptions {
                installer,
                ..PlanOptions::default()
            },
        )
        .unwrap();
        let seccomp = &p.files["shop/deployment-web/nginx.seccompprofile.yaml"];
        assert!(seccomp.contains("kind: SeccompProfile"), "{seccomp}");
        assert!(seccomp.contains(object), "{installer:?}: {seccomp}");
        assert!(seccomp.contains(version), "{installer:?}: {seccomp}");
        assert!(
            !p.files
                .keys()
                .any(|f| f.ends_with(".localhostprofile.yaml")),
            "{installer:?}"
        );
        let patch = &p.files["shop/deployment-web/patch.yaml"];
        assert!(patch.contains(localhost), "{installer:?}: {patch}");
        let kustomization = &p.files["kustomization.yaml"];
        assert!(
            kustomization.contains("- shop/deployment-web/nginx.seccompprofile.yaml\n"),
            "{kustomization}"
        );
    }
}

#[test]
fn refused_syscalls_are_proposed_in_a_rule_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    fs::create_dir_all(state.join("containers")).unwrap();
    fs::create_dir_all(state.join("refusals")).unwrap();
    fs::write(
        state.join("containers/c1.json"),
        json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "ContainerRecording",
            "containerId": "c1",
            "containerName": "app",
            "pod": {"namespace": "shop", "name": "web-0", "uid": "u-1"},
            "cgroup": "/kubepods/pod-u-1/c1",
            "state": "Exited",
            "start": "Exec",
            "firstSeen": "2024-05-01T10:00:00Z",
            "lastSeen": "2024-05-01T10:05:00Z",
            "syscalls": {"SCMP_ARCH_X86_64": ["read"]},
            "profile": {"defaultAction": "SCMP_ACT_ERRNO"}
        })
        .to_string(),
    )
    .unwrap();
    let report = |id: &str, pod: &str, names: &[&str]| {
        json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "ContainerRefusals",
            "containerId": id,
            "containerName": "app",
            "pod": {"namespace": "shop", "name": pod, "uid": "u-2"},
            "cgroup": format!("/kubepods/pod-u-2/{id}"),
            "profile": {"source": "runc", "defaultAction": "SCMP_ACT_ERRNO"},
            "state": "Running",
            "watchedSince": "2024-05-02T10:00:00Z",
            "syscalls": names.iter().map(|n| json!({
                "arch": "SCMP_ARCH_X86_64", "name": n, "count": 3,
                "lastSeen": "2024-05-02T10:01:00Z"
            })).collect::<Vec<_>>()
        })
    };
    fs::write(
        state.join("refusals/p1.json"),
        report("p1", "web-0", &["mkdir", "statfs"]).to_string(),
    )
    .unwrap();
    // Nothing exported is web-1's: a warning, not a rule anywhere.
    fs::write(
        state.join("refusals/p2.json"),
        report("p2", "web-1", &["chmod"]).to_string(),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let export = |extra: &[&str]| {
        let mut args = vec![
            "export",
            "--to",
            out.to_str().unwrap(),
            "--from",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = export(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let without = fs::read_to_string(out.join("shop/pod-web-0/app.json")).unwrap();
    assert!(!without.contains("mkdir"), "{without}");

    let o = export(&["--with-denials", state.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let app: Value =
        serde_json::from_str(&fs::read_to_string(out.join("shop/pod-web-0/app.json")).unwrap())
            .unwrap();
    let rules = app["syscalls"].as_array().unwrap();
    let last = rules.last().unwrap();
    assert_eq!(last["names"], json!(["mkdir", "statfs"]), "{app}");
    assert_eq!(last["action"], "SCMP_ACT_ALLOW");
    assert!(
        last["comment"]
            .as_str()
            .unwrap()
            .contains("allow only after review"),
        "{last}"
    );
    assert_eq!(
        rules[0]["names"],
        json!(["read"]),
        "recorded rule unchanged"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("shop/Pod/web-1 container app (chmod) match no exported profile"),
        "{stderr}"
    );
    let with_state = fs::read_to_string(out.join("shop/pod-web-0/app.json")).unwrap();
    assert!(!with_state.contains("chmod"));

    // `syscensus denials -o json`'s array reads the same; a file that is
    // not a report is refused by name, and nothing is written.
    let array = tmp.path().join("denials.json");
    fs::write(
        &array,
        json!([report("p1", "web-0", &["mkdir", "statfs"])]).to_string(),
    )
    .unwrap();
    let o = export(&["--with-denials", array.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read_to_string(out.join("shop/pod-web-0/app.json")).unwrap(),
        with_state
    );
    let o = export(&[
        "--with-denials",
        state.join("containers/c1.json").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("is a ContainerRecording: --with-denials takes ContainerRefusals"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn complain_mode_exports_profiles_that_log_what_they_would_refuse() {
    let enforce = plan(entries(), None, &PlanOptions::default()).unwrap();
    let complain = plan(
        entries(),
        None,
        &PlanOptions {
            complain: true,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let path = "shop/deployment-web/nginx.json";
    let enforced: Value = serde_json::from_str(&enforce.files[path]).unwrap();
    let logged: Value = serde_json::from_str(&complain.files[path]).unwrap();
    assert_eq!(enforced["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(logged["defaultAction"], "SCMP_ACT_LOG");
    assert!(logged.get("defaultErrnoRet").is_none(), "{logged}");
    // The same rules: only what happens outside them differs.
    assert_eq!(enforced["syscalls"], logged["syscalls"]);
    // The LocalhostProfile installs the complain-mode bytes.
    let object = &complain.files["shop/deployment-web/nginx.localhostprofile.yaml"];
    assert!(object.contains("SCMP_ACT_LOG"), "{object}");
}

#[test]
fn the_clusters_refusals_propose_their_syscalls_in_the_workload_containers_profile() {
    // What `syscensus denials --cluster -o json` prints.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.json");
    let printed = json!([{
        "apiVersion": "syscensus.io/v1alpha1", "kind": "LocalhostProfileRefusals",
        "namespace": "shop", "name": "deployment-web.nginx",
        "localhostProfile": "syscensus/shop/deployment-web/nginx.json",
        "workload": {"kind": "Deployment", "name": "web"}, "container": "nginx",
        "refused": [{"architecture": "SCMP_ARCH_X86_64", "syscall": "mkdir", "how": "errno", "count": 3,
                     "firstSeen": "2026-12-07T01:02:03Z", "lastSeen": "2026-12-07T01:02:09Z",
                     "reportedBy": [{"node": "node-a", "pod": "web-7d9", "container": "nginx"}]}]
    }]);
    fs::write(&path, printed.to_string()).unwrap();
    let denials = syscensus::export::denial_reports(&path).unwrap();
    let p = plan(
        entries(),
        None,
        &PlanOptions {
            denials,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let profile: Value = serde_json::from_str(&p.files["shop/deployment-web/nginx.json"]).unwrap();
    let added = profile["syscalls"].as_array().unwrap().last().unwrap();
    assert_eq!(added["names"], json!(["mkdir"]));
    assert_eq!(added["action"], "SCMP_ACT_ALLOW");
}
