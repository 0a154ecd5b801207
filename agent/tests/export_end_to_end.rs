//! `syscensus export` end to end: the exported kustomize Component and JSON
//! patches rendered by the real `kubectl kustomize` over a base of
//! workload manifests, commits and pushes with git, and an export of the
//! ContainerProfiles of a cluster. The API server is simulated (a test
//! server speaking real Kubernetes JSON to the real kube client); kubectl
//! and git are the real programs. None of this needs root.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
    process::{Command, Output},
};

use serde::Deserialize as _;
use serde_json::{Value, json};
use syscensus_api::ContainerProfile;
use syscensus_fake_apiserver::{FakeApiServer, Gvr};

mod support;
use support::require_program;

fn run(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_syscensus"));
    command.args(args).env_remove("KUBECONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("failed to run syscensus {args:?}: {e}"))
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "syscensus failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A ContainerProfile object of `namespace` as JSON.
fn profile(
    namespace: &str,
    recording: &str,
    kind: &str,
    workload: &str,
    container: &str,
    init: bool,
    names: &[&str],
) -> Value {
    json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ContainerProfile",
        "metadata": {
            "name": syscensus_api::object_name(recording, kind, workload, container),
            "namespace": namespace,
            "labels": {
                "syscensus.io/recording": recording,
                "syscensus.io/workload-kind": kind.to_ascii_lowercase(),
                "syscensus.io/workload-name": workload,
                "syscensus.io/container": container,
            },
        },
        "spec": {
            "recording": recording,
            "workload": {"kind": kind, "name": workload},
            "container": container,
            "initContainer": init,
            "syscalls": {"SCMP_ARCH_X86_64": names},
            "syscallCount": names.len(),
            "runtimeBaseSet": {"name": "runc-1.1", "syscalls": ["capset", "execve"]},
            "firstSeen": "2024-05-01T10:00:00Z",
            "lastSeen": "2024-05-01T11:00:00Z",
        },
    })
}

/// Recorded containers of a Deployment, StatefulSet, DaemonSet, Job,
/// CronJob and Pod, init containers included; `extra` syscalls go to the
/// Deployment's nginx.
fn profiles(extra: &[&str]) -> Vec<Value> {
    let mut nginx = vec!["accept4", "epoll_wait", "read", "write"];
    nginx.extend_from_slice(extra);
    vec![
        profile("shop", "rec", "Deployment", "web", "nginx", false, &nginx),
        profile(
            "shop",
            "rec",
            "Deployment",
            "web",
            "migrate",
            true,
            &["connect", "read"],
        ),
        profile(
            "shop",
            "rec",
            "StatefulSet",
            "db",
            "postgres",
            false,
            &["fsync", "pread64"],
        ),
        profile(
            "shop",
            "rec",
            "DaemonSet",
            "agent",
            "collector",
            false,
            &["openat"],
        ),
        profile("shop", "rec", "Job", "backup", "backup", false, &["write"]),
        profile(
            "shop",
            "rec",
            "CronJob",
            "nightly",
            "task",
            false,
            &["nanosleep"],
        ),
        profile(
            "shop",
            "rec",
            "CronJob",
            "nightly",
            "prepare",
            true,
            &["mkdir"],
        ),
        profile("shop", "rec", "Pod", "debug", "shell", false, &["wait4"]),
        profile("shop", "rec", "Pod", "debug", "setup", true, &["chmod"]),
    ]
}

fn write_profiles(path: &Path, extra: &[&str]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": profiles(extra)});
    fs::write(path, serde_norway::to_string(&list).unwrap()).unwrap();
}

const BASE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
      - name: migrate
        image: registry.example/web-migrate:2.1
        command: [/migrate, --up]
      containers:
      - name: proxy
        image: registry.example/envoy:1.30
        ports:
        - containerPort: 8443
      - name: nginx
        image: registry.example/nginx:1.27
        securityContext:
          runAsNonRoot: true
          readOnlyRootFilesystem: true
        ports:
        - containerPort: 8080
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
spec:
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: postgres
        image: registry.example/postgres:16
        volumeMounts:
        - {name: data, mountPath: /var/lib/postgresql/data}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Gi}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: shop
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers:
      - name: collector
        image: registry.example/collector:0.9
---
apiVersion: batch/v1
kind: Job
metadata:
  name: backup
  namespace: shop
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: backup
        image: registry.example/backup:1.0
        args: [--target, s3://bucket]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: shop
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          initContainers:
          - name: prepare
            image: registry.example/prepare:1.0
          containers:
          - name: task
            image: registry.example/task:1.0
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: shop
spec:
  initContainers:
  - name: setup
    image: registry.example/busybox:1.36
    securityContext: {runAsUser: 1000}
  containers:
  - name: shell
    image: registry.example/busybox:1.36
    command: [sleep, infinity]
  - name: unrecorded
    image: registry.example/busybox:1.36
"#;

/// The objects of a multi-document YAML text.
fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kustomize(dir: &Path) -> Vec<Value> {
    let kubectl = require_program("kubectl", "kubectl (with its built-in kustomize)");
    let out = Command::new(kubectl)
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8_lossy(&out.stdout))
}

/// `(kind/name, container) → localhostProfile or "-"` for every container
/// and init container of every rendered workload, and each one's image.
fn seccomp_of(objects: &[Value]) -> BTreeMap<(String, String), (String, String)> {
    let mut out = BTreeMap::new();
    for o in objects.iter().filter(|o| o["kind"] != "LocalhostProfile") {
        let kind = o["kind"].as_str().unwrap();
        let pointer = match kind {
            "Pod" => "/spec",
            "CronJob" => "/spec/jobTemplate/spec/template/spec",
            _ => "/spec/template/spec",
        };
        let pod = o.pointer(pointer).unwrap();
        for list in ["initContainers", "containers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                let profile =
                    c.pointer("/securityContext/seccompProfile")
                        .map_or("-".to_owned(), |p| {
                            assert_eq!(p["type"], "Localhost", "{p}");
                            p["localhostProfile"].as_str().unwrap().to_owned()
                        });
                out.insert(
                    (
                        format!("{kind}/{}", o["metadata"]["name"].as_str().unwrap()),
                        c["name"].as_str().unwrap().to_owned(),
                    ),
                    (profile, c["image"].as_str().unwrap().to_owned()),
                );
            }
        }
    }
    out
}

fn expected_profiles() -> Vec<((&'static str, &'static str), &'static str)> {
    vec![
        (
            ("CronJob/nightly", "prepare"),
            "syscensus/shop/cronjob-nightly/prepare.json",
        ),
        (
            ("CronJob/nightly", "task"),
            "syscensus/shop/cronjob-nightly/task.json",
        ),
        (
            ("DaemonSet/agent", "collector"),
            "syscensus/shop/daemonset-agent/collector.json",
        ),
        (
            ("Deployment/web", "migrate"),
            "syscensus/shop/deployment-web/migrate.json",
        ),
        (
            ("Deployment/web", "nginx"),
            "syscensus/shop/deployment-web/nginx.json",
        ),
        (("Deployment/web", "proxy"), "-"),
        (
            ("Job/backup", "backup"),
            "syscensus/shop/job-backup/backup.json",
        ),
        (
            ("Pod/debug", "setup"),
            "syscensus/shop/pod-debug/setup.json",
        ),
        (
            ("Pod/debug", "shell"),
            "syscensus/shop/pod-debug/shell.json",
        ),
        (("Pod/debug", "unrecorded"), "-"),
        (
            ("StatefulSet/db", "postgres"),
            "syscensus/shop/statefulset-db/postgres.json",
        ),
    ]
}

fn check_rendered(objects: &[Value], base: &[Value], component: Option<&Path>) {
    // The Component (`component`: the export) creates a LocalhostProfile per
    // profile, holding the exported file byte for byte, at the path the
    // patches name.
    let mut installs = BTreeMap::new();
    for o in objects.iter().filter(|o| o["kind"] == "LocalhostProfile") {
        let path = o["spec"]["localhostProfile"].as_str().unwrap().to_owned();
        let file = component
            .unwrap()
            .join(path.strip_prefix("syscensus/").unwrap());
        assert_eq!(
            o["spec"]["profile"].as_str().unwrap().as_bytes(),
            fs::read(&file).unwrap(),
            "{path}"
        );
        installs.insert(path, o["metadata"]["namespace"].clone());
    }
    let rendered = seccomp_of(objects);
    let before = seccomp_of(base);
    let got: Vec<((&str, &str), &str)> = rendered
        .iter()
        .map(|((w, c), (p, _))| ((w.as_str(), c.as_str()), p.as_str()))
        .collect();
    assert_eq!(got, expected_profiles());
    let named: BTreeSet<&str> = got.iter().map(|(_, p)| *p).filter(|p| *p != "-").collect();
    let named = if component.is_some() {
        named
    } else {
        BTreeSet::new()
    };
    assert_eq!(
        installs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        named,
        "a patch names a profile the Component does not install, or the reverse"
    );
    // Nothing else changed: images and the other fields of the containers.
    for (key, (_, image)) in &before {
        assert_eq!(&rendered[key].1, image, "{key:?}");
    }
    let web = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let nginx = web["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nginx")
        .unwrap();
    assert_eq!(nginx["securityContext"]["runAsNonRoot"], true);
    assert_eq!(nginx["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(web["spec"]["replicas"], 3);
    let debug = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
    assert_eq!(
        debug["spec"]["initContainers"][0]["securityContext"]["runAsUser"],
        1000
    );
}

#[test]
fn kustomize_renders_the_profiles_onto_every_workload_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("base")).unwrap();
    fs::write(root.join("base/workloads.yaml"), BASE).unwrap();
    fs::write(
        root.join("base/kustomization.yaml"),
        "resources: [workloads.yaml]\n",
    )
    .unwrap();
    write_profiles(&root.join("profiles.yaml"), &[]);
    let export = root.join("export");
    ok(&run(
        &[
            "export",
            "--to",
            s(&export),
            "--from",
            s(&root.join("profiles.yaml")),
            "--base",
            s(&root.join("base")),
        ],
        &[],
    ));

    // The Component, layered on the base by an overlay.
    fs::create_dir_all(root.join("overlay")).unwrap();
    fs::write(
        root.join("overlay/kustomization.yaml"),
        "resources: [../base]\ncomponents: [../export]\n",
    )
    .unwrap();
    let base = documents(BASE);
    check_rendered(&kustomize(&root.join("overlay")), &base, Some(&export));

    // The RFC 6902 patches, written against the same base, do the same.
    let mut patches = String::from("resources: [../base]\npatches:\n");
    for (dir, kind, name) in [
        ("deployment-web", "Deployment", "web"),
        ("statefulset-db", "StatefulSet", "db"),
        ("daemonset-agent", "DaemonSet", "agent"),
        ("job-backup", "Job", "backup"),
        ("cronjob-nightly", "CronJob", "nightly"),
        ("pod-debug", "Pod", "debug"),
    ] {
        patches.push_str(&format!(
            "- path: ../export/shop/{dir}/patch.rfc6902.json\n  target: {{kind: {kind}, name: {name}}}\n"
        ));
    }
    fs::create_dir_all(root.join("json")).unwrap();
    fs::write(root.join("json/kustomization.yaml"), patches).unwrap();
    check_rendered(&kustomize(&root.join("json")), &base, None);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let program = require_program("git", "git");
    let out = Command::new(program)
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn git_commits_changes_only_and_pushes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let bare = tmp.path().join("remote.git");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Reviewer"]);
    git(&repo, &["config", "user.email", "reviewer@example.com"]);
    fs::write(repo.join("README.md"), "profiles\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "start"]);
    // A change staged by someone else is not swept into the export's commit.
    fs::write(repo.join("notes.txt"), "wip\n").unwrap();
    git(&repo, &["add", "notes.txt"]);
    fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&repo, &["remote", "add", "origin", s(&bare)]);

    let input = tmp.path().join("profiles.yaml");
    let export_dir = repo.join("clusters/prod/seccomp");
    let export = |push: bool| {
        let mut args = vec![
            "export",
            "--to",
            s(&export_dir),
            "--from",
            s(&input),
            "--git",
        ];
        if push {
            args.extend(["--push", "origin"]);
        }
        ok(&run(&args, &[]))
    };

    write_profiles(&input, &[]);
    let first = export(false);
    assert!(first.contains("committed"), "{first}");
    let second = export(false);
    assert!(second.contains("nothing to commit"), "{second}");
    assert_eq!(
        git(&repo, &["rev-list", "--count", "HEAD"]),
        "2",
        "start + one export"
    );
    let files = git(&repo, &["show", "--name-only", "--format=", "HEAD"]);
    assert!(
        files.contains("clusters/prod/seccomp/shop/deployment-web/nginx.json"),
        "{files}"
    );
    assert!(!files.contains("notes.txt"), "{files}");
    assert_eq!(
        git(&repo, &["diff", "--cached", "--name-only"]),
        "notes.txt"
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>"]),
        "Reviewer <reviewer@example.com>"
    );

    // One more syscall for nginx: a second commit that names it.
    write_profiles(&input, &["mmap"]);
    let third = export(true);
    assert!(third.contains("pushed main to origin"), "{third}");
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "3");
    let message = git(&repo, &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("syscensus export: 1 profile changed (+1 -0 syscalls)"),
        "{message}"
    );
    assert!(
        message.contains("~ shop/deployment-web/nginx\n    SCMP_ARCH_X86_64: +mmap"),
        "{message}"
    );
    let head = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/main"]), head);
    // The work tree is clean apart from the staged note.
    assert_eq!(git(&repo, &["status", "--porcelain"]), "A  notes.txt");

    // A container that goes away: its file is removed in the next commit.
    let list = json!({"apiVersion": "v1", "kind": "List",
        "items": profiles(&["mmap"]).into_iter().filter(|p| p["spec"]["workload"]["kind"] != "Job").collect::<Vec<_>>()});
    fs::write(&input, serde_norway::to_string(&list).unwrap()).unwrap();
    export(false);
    let message = git(&repo, &["log", "-1", "--format=%B"]);
    assert!(message.contains("1 profile removed"), "{message}");
    assert!(message.contains("- shop/job-backup/backup"), "{message}");
    let tree = git(&repo, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(!tree.contains("job-backup"), "{tree}");
}

#[test]
fn git_without_a_repository_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("profiles.yaml");
    write_profiles(&input, &[]);
    let dir = tmp.path().join("plain");
    let out = run(
        &["export", "--to", s(&dir), "--from", s(&input), "--git"],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not inside a git work tree"), "{stderr}");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn git_commits_with_a_default_author() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let input = tmp.path().join("profiles.yaml");
    write_profiles(&input, &[]);
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    ok(&run(
        &["export", "--to", s(&repo), "--from", s(&input), "--git"],
        &[("HOME", &home), ("XDG_CONFIG_HOME", &home)],
    ));
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>|%cn <%ce>"]),
        "syscensus <syscensus@localhost>|syscensus <syscensus@localhost>"
    );
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "1");
}

fn profiles_gvr() -> Gvr {
    Gvr::of::<ContainerProfile>()
}

#[test]
fn export_reads_the_clusters_container_profiles() {
    let server = FakeApiServer::start();
    server.create_crd_of::<ContainerProfile>().unwrap();
    for ns in ["shop", "other"] {
        server
            .create(
                &Gvr::new("", "v1", "namespaces"),
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .unwrap();
    }
    for p in profiles(&[]) {
        server.create(&profiles_gvr(), Some("shop"), p).unwrap();
    }
    server
        .create(
            &profiles_gvr(),
            Some("other"),
            profile(
                "other",
                "rec2",
                "Deployment",
                "api",
                "app",
                false,
                &["read"],
            ),
        )
        .unwrap();
    // The same container in a second recording: the export unites both.
    server
        .create(
            &profiles_gvr(),
            Some("shop"),
            profile(
                "shop",
                "rec2",
                "Deployment",
                "web",
                "nginx",
                false,
                &["sendfile"],
            ),
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let env = [("KUBECONFIG", kubeconfig.as_path())];

    let all = tmp.path().join("all");
    let out = ok(&run(&["export", "--to", s(&all)], &env));
    assert!(
        out.contains("exported 10 profile(s) of 7 workload(s)"),
        "{out}"
    );
    let nginx: Value = serde_json::from_str(
        &fs::read_to_string(all.join("shop/deployment-web/nginx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        nginx["syscalls"][0]["names"],
        json!(["accept4", "epoll_wait", "read", "sendfile", "write"])
    );
    assert!(all.join("other/deployment-api/app.json").exists());

    // The same files as an export of the same objects from a file.
    let file = tmp.path().join("profiles.yaml");
    let mut items = profiles(&[]);
    items.push(profile(
        "other",
        "rec2",
        "Deployment",
        "api",
        "app",
        false,
        &["read"],
    ));
    items.push(profile(
        "shop",
        "rec2",
        "Deployment",
        "web",
        "nginx",
        false,
        &["sendfile"],
    ));
    fs::write(
        &file,
        serde_norway::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
            .unwrap(),
    )
    .unwrap();
    let from_file = tmp.path().join("from-file");
    ok(&run(
        &["export", "--to", s(&from_file), "--from", s(&file)],
        &[],
    ));
    let diff = run(&["diff", s(&all), s(&from_file)], &[]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    // Filters: one namespace, one recording (a label selector, then the spec).
    server.clear_requests();
    let filtered = tmp.path().join("filtered");
    let out = ok(&run(
        &[
            "export",
            "--to",
            s(&filtered),
            "--namespace",
            "shop",
            "--recording",
            "rec2",
        ],
        &env,
    ));
    assert!(
        out.contains("exported 1 profile(s) of 1 workload(s)"),
        "{out}"
    );
    let nginx: Value = serde_json::from_str(
        &fs::read_to_string(filtered.join("shop/deployment-web/nginx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(nginx["syscalls"][0]["names"], json!(["sendfile"]));
    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/containerprofiles"))
        .collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(
        lists[0].path,
        "/apis/syscensus.io/v1alpha1/namespaces/shop/containerprofiles"
    );
    assert_eq!(
        lists[0].param("labelSelector").as_deref(),
        Some("syscensus.io/recording=rec2")
    );

    // Nothing selected: an error, and nothing written.
    let none = tmp.path().join("none");
    let out = run(&["export", "--to", s(&none), "--namespace", "empty"], &env);
    assert_eq!(out.status.code(), Some(66));
    assert!(!none.exists());
}

#[test]
fn export_without_a_reachable_cluster_fails_clearly() {
    let server = FakeApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    server.set_unavailable(true);
    let out = run(
        &["export", "--to", s(&tmp.path().join("x"))],
        &[("KUBECONFIG", kubeconfig.as_path())],
    );
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The kube client logs the failure too; the command's own error is the
    // last line.
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("syscensus: failed to list ContainerProfiles"),
        "{stderr}"
    );
}
