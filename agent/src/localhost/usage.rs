//! Which Localhost profiles a Pod, or a workload's pod template, names: a
//! node keeps those installed whatever happens to their objects, since the
//! kubelet reads the file again each time it starts a container.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, SeccompProfile};
use syscensus_api::WorkloadKind;

use super::LOCALHOST_DIR;

/// Where a workload of `kind` holds its pod spec, as a JSON pointer.
pub fn pod_spec_pointer(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod => "/spec",
        WorkloadKind::CronJob => "/spec/jobTemplate/spec/template/spec",
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::Job => "/spec/template/spec",
    }
}

fn localhost_of(profile: Option<&SeccompProfile>) -> Option<&str> {
    profile
        .filter(|p| p.type_ == "Localhost")
        .and_then(|p| p.localhost_profile.as_deref())
}

/// The `localhostProfile` paths a pod spec names (the Pod's and each
/// container's, init and ephemeral containers included), with the
/// container that names each (`""` for the Pod's own).
pub fn named_in_pod_spec(spec: &PodSpec) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let pod = spec.security_context.as_ref();
    if let Some(path) = localhost_of(pod.and_then(|s| s.seccomp_profile.as_ref())) {
        out.insert(path.to_owned(), String::new());
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| (&c.name, c.security_context.as_ref()));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| (&c.name, c.security_context.as_ref()));
    for (name, context) in containers.chain(ephemeral) {
        if let Some(path) = localhost_of(context.and_then(|s| s.seccomp_profile.as_ref())) {
            out.entry(path.to_owned()).or_insert_with(|| name.clone());
        }
    }
    out
}

/// The Localhost profiles named by the seccomp annotations Kubernetes read
/// before 1.25 (`seccomp.security.alpha.kubernetes.io/pod`,
/// `container.seccomp.security.alpha.kubernetes.io/<container>`:
/// `localhost/<path>`): old manifests still carry them.
pub fn named_in_annotations(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .iter()
        .filter(|(k, _)| {
            k.as_str() == "seccomp.security.alpha.kubernetes.io/pod"
                || k.starts_with("container.seccomp.security.alpha.kubernetes.io/")
        })
        .filter_map(|(_, v)| v.strip_prefix("localhost/"))
        .map(str::to_owned)
        .collect()
}

/// The workload a syscensus profile path names: `<namespace>/<kind>-<workload>/<container>.json`
/// (relative to syscensus's directory, `/`-separated) gives the namespace,
/// the kind and the workload's name.
pub fn workload_of(relative: &str) -> Option<(String, WorkloadKind, String)> {
    let mut parts = relative.split('/');
    let (namespace, dir, _file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::Pod,
    ]
    .into_iter()
    .find_map(|kind| {
        let prefix = format!("{}-", kind.as_str().to_ascii_lowercase());
        dir.strip_prefix(&prefix)
            .filter(|name| !name.is_empty())
            .map(|name| (namespace.to_owned(), kind, name.to_owned()))
    })
}

/// A `localhostProfile` below syscensus's directory, as a path relative to
/// it; `None` for other profiles.
pub fn syscensus_relative(localhost_profile: &str) -> Option<&str> {
    localhost_profile
        .strip_prefix(LOCALHOST_DIR)
        .and_then(|p| p.strip_prefix('/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use serde_json::json;

    use super::*;

    #[test]
    fn every_place_a_pod_names_a_profile() {
        let spec: PodSpec = serde_json::from_value(json!({
            "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "syscensus/ns/pod-a/pod.json"}},
            "containers": [
                {"name": "app", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "syscensus/ns/deployment-web/app.json"}}},
                {"name": "side", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
            ],
            "initContainers": [
                {"name": "init", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "other/x.json"}}},
            ],
            "ephemeralContainers": [
                {"name": "debug", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "syscensus/ns/deployment-web/debug.json"}}},
            ],
        }))
        .unwrap();
        let named = named_in_pod_spec(&spec);
        assert_eq!(
            named.keys().collect::<Vec<_>>(),
            [
                "other/x.json",
                "syscensus/ns/deployment-web/app.json",
                "syscensus/ns/deployment-web/debug.json",
                "syscensus/ns/pod-a/pod.json"
            ]
        );
        assert_eq!(named["syscensus/ns/deployment-web/app.json"], "app");
        let annotations: BTreeMap<String, String> = [
            (
                "container.seccomp.security.alpha.kubernetes.io/app".to_owned(),
                "localhost/syscensus/ns/x/y.json".to_owned(),
            ),
            (
                "seccomp.security.alpha.kubernetes.io/pod".to_owned(),
                "runtime/default".to_owned(),
            ),
        ]
        .into();
        assert_eq!(
            named_in_annotations(&annotations),
            ["syscensus/ns/x/y.json"]
        );
    }

    #[test]
    fn paths_name_their_workload() {
        assert_eq!(
            workload_of("shop/deployment-web.v2/nginx.json"),
            Some(("shop".into(), WorkloadKind::Deployment, "web.v2".into()))
        );
        assert_eq!(
            workload_of("shop/cronjob-nightly/task.json"),
            Some(("shop".into(), WorkloadKind::CronJob, "nightly".into()))
        );
        assert_eq!(
            workload_of("shop/job-backup/b.json"),
            Some(("shop".into(), WorkloadKind::Job, "backup".into()))
        );
        for bad in [
            "shop/nothing-x/a.json",
            "a.json",
            "shop/pod-/a.json",
            "a/b/c/d.json",
        ] {
            assert_eq!(workload_of(bad), None, "{bad}");
        }
        assert_eq!(syscensus_relative("syscensus/a/b.json"), Some("a/b.json"));
        assert_eq!(syscensus_relative("operator/a.json"), None);
    }
}
