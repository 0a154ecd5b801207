//! `syscensus apply` against a simulated API server (a test server speaking
//! real Kubernetes JSON to the real kube client): it refuses, writing
//! nothing, while a Node the workload may run on lacks the installed
//! profile; it server-side applies only the seccompProfile fields once every
//! matching Node has it; `--dry-run` prints the change and writes nothing.
//! None of this needs root.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    fs,
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use syscensus_api::{ContainerProfile, NodeProfileStatus};
use syscensus_fake_apiserver::{FakeApiServer, Gvr};

const NS: &str = "shop";

fn deployments() -> Gvr {
    Gvr::new("apps", "v1", "deployments")
}

fn cronjobs() -> Gvr {
    Gvr::new("batch", "v1", "cronjobs")
}

fn profiles() -> Gvr {
    Gvr::of::<ContainerProfile>()
}

/// A cluster of three Nodes (two in pool `web`), a Deployment that runs
/// only on pool `web`, a CronJob that runs anywhere, a bare Pod, their
/// ContainerProfiles, and an export of them.
struct Cluster {
    server: FakeApiServer,
    _tmp: tempfile::TempDir,
    kubeconfig: PathBuf,
    export: PathBuf,
}

fn container_profile(kind: &str, workload: &str, container: &str, init: bool) -> Value {
    json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ContainerProfile",
        "metadata": {
            "name": syscensus_api::object_name("rec", kind, workload, container),
            "namespace": NS,
        },
        "spec": {
            "recording": "rec",
            "workload": {"kind": kind, "name": workload},
            "container": container,
            "initContainer": init,
            "syscalls": {"SCMP_ARCH_X86_64": ["read", "write"]},
            "syscallCount": 2,
            "runtimeBaseSet": {"name": "runc-1.1", "syscalls": ["execve"]},
            "firstSeen": "2024-05-01T10:00:00Z",
            "lastSeen": "2024-05-01T11:00:00Z",
        },
    })
}

impl Cluster {
    fn new() -> Cluster {
        let server = FakeApiServer::start();
        server.create_crd_of::<ContainerProfile>().unwrap();
        server.create_crd_of::<NodeProfileStatus>().unwrap();
        server
            .create(
                &Gvr::new("", "v1", "namespaces"),
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )
            .unwrap();
        for (node, pool) in [("node-a", "web"), ("node-b", "web"), ("node-c", "batch")] {
            server
                .create(
                    &Gvr::new("", "v1", "nodes"),
                    None,
                    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node,
                        "labels": {"pool": pool, "kubernetes.io/hostname": node}}}),
                )
                .unwrap();
        }
        server
            .create(
                &deployments(),
                Some(NS),
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
                    "spec": {
                        "replicas": 3,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {
                                "nodeSelector": {"pool": "web"},
                                "initContainers": [{"name": "migrate", "image": "registry.example/migrate:2"}],
                                "containers": [
                                    {"name": "nginx", "image": "registry.example/nginx:1.27",
                                     "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                     "securityContext": {"runAsNonRoot": true}},
                                    {"name": "sidecar", "image": "registry.example/envoy:1.30"}
                                ]
                            }
                        }
                    }
                }),
            )
            .unwrap();
        server
            .create(
                &cronjobs(),
                Some(NS),
                json!({
                    "apiVersion": "batch/v1", "kind": "CronJob",
                    "metadata": {"name": "nightly", "namespace": NS},
                    "spec": {
                        "schedule": "0 3 * * *",
                        "jobTemplate": {"spec": {"template": {"spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "task", "image": "registry.example/task:1"}]
                        }}}}
                    }
                }),
            )
            .unwrap();
        server
            .create(
                &Gvr::new("", "v1", "pods"),
                Some(NS),
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": NS},
                       "spec": {"containers": [{"name": "shell", "image": "registry.example/busybox:1"}]}}),
            )
            .unwrap();
        for (kind, workload, container, init) in [
            ("Deployment", "web", "nginx", false),
            ("Deployment", "web", "migrate", true),
            ("CronJob", "nightly", "task", false),
            ("Pod", "debug", "shell", false),
        ] {
            server
                .create(
                    &profiles(),
                    Some(NS),
                    container_profile(kind, workload, container, init),
                )
                .unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let kubeconfig = tmp.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let export = tmp.path().join("export");
        let cluster = Cluster {
            server,
            kubeconfig,
            export,
            _tmp: tmp,
        };
        let out = cluster.syscensus(&["export", "--to", cluster.export.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn syscensus(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_syscensus"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .unwrap()
    }

    fn apply(&self, extra: &[&str]) -> Output {
        let mut args = vec!["apply", self.export.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.syscensus(&args)
    }

    fn sha256(&self, relative: &str) -> String {
        let bytes = fs::read(self.export.join(relative)).unwrap();
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Reports the profile of a container installed on `nodes`, as the
    /// node agents do in their NodeProfileStatus, with the file's digest or
    /// `sha256`.
    fn install(
        &self,
        kind: &str,
        workload: &str,
        container: &str,
        nodes: &[&str],
        sha256: Option<&str>,
    ) {
        let relative = format!(
            "{NS}/{}-{workload}/{container}.json",
            kind.to_ascii_lowercase()
        );
        let digest = sha256.map_or_else(|| self.sha256(&relative), str::to_owned);
        let statuses = Gvr::of::<NodeProfileStatus>();
        let localhost = format!("syscensus/{relative}");
        // Exactly `nodes` have it: other nodes' entries for it go.
        for mut status in self.server.list(&statuses, None).unwrap() {
            let installed = status["spec"]["installed"].as_array_mut().unwrap();
            installed.retain(|e| e["localhostProfile"] != json!(localhost));
            let count = installed.len();
            status["spec"]["installedCount"] = json!(count);
            self.server.update(&statuses, None, status).unwrap();
        }
        for node in nodes {
            let entry = json!({"localhostProfile": localhost, "sha256": digest});
            match self.server.get(&statuses, None, node) {
                Ok(mut status) => {
                    let installed = status["spec"]["installed"].as_array_mut().unwrap();
                    installed.push(entry);
                    let count = installed.len();
                    status["spec"]["installedCount"] = json!(count);
                    self.server.update(&statuses, None, status).unwrap();
                }
                Err(_) => {
                    self.server
                        .create(
                            &statuses,
                            None,
                            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "NodeProfileStatus",
                                   "metadata": {"name": node},
                                   "spec": {"node": node, "installedCount": 1, "refusedCount": 0,
                                            "installed": [entry], "changed": "2024-05-01T12:00:00Z"}}),
                        )
                        .unwrap();
                }
            }
        }
    }

    fn install_everywhere_needed(&self) {
        self.install("Deployment", "web", "nginx", &["node-a", "node-b"], None);
        self.install("Deployment", "web", "migrate", &["node-a", "node-b"], None);
        self.install(
            "CronJob",
            "nightly",
            "task",
            &["node-a", "node-b", "node-c"],
            None,
        );
    }

    fn deployment(&self) -> Value {
        self.server.get(&deployments(), Some(NS), "web").unwrap()
    }

    fn patches(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| !matches!(r.method.as_str(), "GET"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn seccomp(object: &Value, pointer: &str, list: &str, name: &str) -> Value {
    object
        .pointer(pointer)
        .unwrap()
        .get(list)
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .pointer("/securityContext/seccompProfile")
        .cloned()
        .unwrap_or(Value::Null)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn refuses_while_a_matching_node_lacks_the_profile() {
    let c = Cluster::new();
    let before = c.deployment();
    // node-b, where the Deployment may run, lacks nginx's profile; node-c
    // does not matter (its pool does not match the nodeSelector).
    c.install("Deployment", "web", "nginx", &["node-a", "node-c"], None);
    c.install("Deployment", "web", "migrate", &["node-a", "node-b"], None);
    c.install(
        "CronJob",
        "nightly",
        "task",
        &["node-a", "node-b", "node-c"],
        None,
    );
    c.server.clear_requests();
    let out = c.apply(&[]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to apply, nothing was patched: syscensus/shop/deployment-web/nginx.json (shop/deployment-web/nginx.json, for Deployment shop/web) is not installed on node-b"),
        "{err}"
    );
    assert!(err.contains("--force-uninstalled"), "{err}");
    assert_eq!(c.patches(), Vec::<String>::new(), "nothing may be written");
    assert_eq!(c.deployment(), before);

    // Installed, but another file than the export's: still refused.
    c.install(
        "Deployment",
        "web",
        "nginx",
        &["node-a", "node-b"],
        Some(&"0".repeat(64)),
    );
    c.server.clear_requests();
    let out = c.apply(&[]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not installed on node-a, node-b"),
        "{}",
        stderr(&out)
    );
    assert_eq!(c.patches(), Vec::<String>::new());

    // A CronJob runs anywhere: every Node needs its profile.
    c.install("Deployment", "web", "nginx", &["node-a", "node-b"], None);
    c.install("CronJob", "nightly", "task", &["node-a", "node-b"], None);
    let out = c.apply(&[]);
    assert_eq!(out.status.code(), Some(75));
    assert!(
        stderr(&out).contains(
            "cronjob-nightly/task.json, for CronJob shop/nightly) is not installed on node-c"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn applies_only_the_seccomp_profiles_once_installed() {
    let c = Cluster::new();
    c.install_everywhere_needed();
    let before = c.deployment();
    c.server.clear_requests();
    let out = c.apply(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Pod shop/debug: skipped"), "{text}");
    assert!(text.contains("applied: 2 workload(s) changed"), "{text}");

    let after = c.deployment();
    let pod = "/spec/template/spec";
    assert_eq!(
        seccomp(&after, pod, "containers", "nginx"),
        json!({"type": "Localhost", "localhostProfile": "syscensus/shop/deployment-web/nginx.json"})
    );
    assert_eq!(
        seccomp(&after, pod, "initContainers", "migrate"),
        json!({"type": "Localhost", "localhostProfile": "syscensus/shop/deployment-web/migrate.json"})
    );
    assert_eq!(seccomp(&after, pod, "containers", "sidecar"), Value::Null);
    // Everything else is as it was.
    let mut stripped = after.clone();
    let containers = stripped
        .pointer_mut("/spec/template/spec/containers/0/securityContext")
        .unwrap()
        .as_object_mut()
        .unwrap();
    containers.remove("seccompProfile");
    stripped
        .pointer_mut("/spec/template/spec/initContainers/0")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("securityContext");
    for field in ["managedFields", "resourceVersion", "generation"] {
        stripped["metadata"].as_object_mut().unwrap().remove(field);
    }
    let mut expected = before.clone();
    for field in ["managedFields", "resourceVersion", "generation"] {
        expected["metadata"].as_object_mut().unwrap().remove(field);
    }
    assert_eq!(stripped, expected);
    let managers: Vec<(&str, &str)> = after["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(managers.contains(&("syscensus", "Apply")), "{managers:?}");

    let cronjob = c.server.get(&cronjobs(), Some(NS), "nightly").unwrap();
    assert_eq!(
        seccomp(
            &cronjob,
            "/spec/jobTemplate/spec/template/spec",
            "containers",
            "task"
        ),
        json!({"type": "Localhost", "localhostProfile": "syscensus/shop/cronjob-nightly/task.json"})
    );

    // Server-side apply, as field manager syscensus, of the two workloads.
    let writes: Vec<_> = c
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    for w in &writes {
        assert_eq!(w.method, "PATCH");
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(w.param("fieldManager").as_deref(), Some("syscensus"));
        let body: Value = serde_json::from_str(&w.body).unwrap();
        assert!(body.pointer("/spec/replicas").is_none(), "{body}");
    }

    // Again: nothing to change, nothing written.
    c.server.clear_requests();
    let out = c.apply(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("applied: 0 workload(s) changed"));
    assert_eq!(c.patches(), Vec::<String>::new());
}

#[test]
fn dry_run_prints_the_change_and_writes_nothing() {
    let c = Cluster::new();
    c.install_everywhere_needed();
    let before = c.deployment();
    c.server.clear_requests();
    let out = c.apply(&["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "Deployment shop/web\n  initContainer migrate: seccompProfile none -> Localhost syscensus/shop/deployment-web/migrate.json\n  container nginx: seccompProfile none -> Localhost syscensus/shop/deployment-web/nginx.json\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("dry run: 2 workload(s) would change; nothing was written"),
        "{text}"
    );
    assert_eq!(c.patches(), Vec::<String>::new());
    assert_eq!(c.deployment(), before);

    // Refused as a dry run too, still showing what would change.
    c.install("Deployment", "web", "nginx", &["node-a"], None);
    let out = c.apply(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(stdout(&out).contains("container nginx: seccompProfile none"));
    assert_eq!(c.patches(), Vec::<String>::new());
}

#[test]
fn force_uninstalled_patches_without_the_check() {
    let c = Cluster::new();
    let out = c.apply(&["--force-uninstalled"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = c.deployment();
    assert_eq!(
        seccomp(&after, "/spec/template/spec", "containers", "nginx")["type"],
        "Localhost"
    );
}

#[test]
fn refuses_what_is_not_an_export() {
    let c = Cluster::new();
    let out = c.syscensus(&["apply", c._tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(stderr(&out).contains("is not a syscensus export"));
    // A workload that no longer exists: refused, nothing written.
    c.install_everywhere_needed();
    c.server.delete(&cronjobs(), Some(NS), "nightly").unwrap();
    c.server.clear_requests();
    let out = c.apply(&[]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CronJob shop/nightly does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(c.patches(), Vec::<String>::new());
}
