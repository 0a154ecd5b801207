//! A container's CRI configuration from its Pod: QoS class, resources,
//! security context and environment, as the kubelet derives them.

use std::collections::BTreeMap;

use k8s_cri::v1::{
    Capability, Int64Value, LinuxContainerResources, LinuxContainerSecurityContext, SeLinuxOption,
    SecurityProfile, security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Pod as PodObject, PodSpec as PodObjectSpec, ResourceRequirements,
    SecurityContext,
};

use super::Node;
use crate::containers::{Qos, cri::host_network_namespaces};

/// The kubelet's default masked paths (pkg/securitycontext/util.go, kept in
/// sync with moby's), for `procMount: Default`.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's default read-only paths, for `procMount: Default`.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The priority admission gives the two system classes.
const SYSTEM_PRIORITIES: [(&str, i32); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The Pod's QoS class (pkg/apis/core/v1/helper/qos): Guaranteed when every
/// container limits CPU and memory at its requests, BestEffort when none
/// asks for either, else Burstable.
pub(super) fn qos(spec: &PodObjectSpec) -> Qos {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let get = |r: &Option<ResourceRequirements>, kind: &str, what: &str| -> Option<String> {
        let r = r.as_ref()?;
        let map = if kind == "requests" {
            &r.requests
        } else {
            &r.limits
        };
        map.as_ref()?.get(what).map(|q| q.0.clone())
    };
    let none = all.iter().all(|c| {
        ["cpu", "memory"].iter().all(|w| {
            get(&c.resources, "requests", w).is_none() && get(&c.resources, "limits", w).is_none()
        })
    });
    if none {
        return Qos::BestEffort;
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"].iter().all(|w| {
            let limit = get(&c.resources, "limits", w);
            let request = get(&c.resources, "requests", w).or_else(|| limit.clone());
            limit.is_some() && limit == request
        })
    });
    if guaranteed {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

/// The priority admission sets from `priorityClassName` (the system
/// classes; others are 0 here).
fn priority(spec: &PodObjectSpec) -> i32 {
    spec.priority.unwrap_or_else(|| {
        SYSTEM_PRIORITIES
            .iter()
            .find(|(name, _)| spec.priority_class_name.as_deref() == Some(*name))
            .map_or(0, |(_, p)| *p)
    })
}

/// `generateLinuxContainerResources`: CPU shares from the request, the CFS
/// quota and memory limit from the limits, the QoS class's OOM score.
pub(super) fn resources(
    node: &Node,
    spec: &PodObjectSpec,
    container: &Container,
) -> LinuxContainerResources {
    let quantity = |kind: &str, what: &str| -> Option<String> {
        let r = container.resources.as_ref()?;
        let map = if kind == "requests" {
            &r.requests
        } else {
            &r.limits
        };
        map.as_ref()?.get(what).map(|q| q.0.clone())
    };
    let cpu_request = quantity("requests", "cpu").or_else(|| quantity("limits", "cpu"));
    let milli_request = cpu_request.map_or(0, |q| millicores(&q));
    let shares = (milli_request * 1024 / 1000).max(2);
    let quota =
        quantity("limits", "cpu").map_or(0, |q| (millicores(&q) * 100_000 / 1000).max(1000));
    let memory_limit = quantity("limits", "memory").map_or(0, |q| bytes(&q));
    let memory_request = quantity("requests", "memory")
        .or_else(|| quantity("limits", "memory"))
        .map_or(0, |q| bytes(&q));
    let node_critical = priority(spec) >= 2_000_000_000
        && spec.priority_class_name.as_deref() == Some("system-node-critical");
    let oom_score_adj = match qos(spec) {
        _ if node_critical => -997,
        Qos::Guaranteed => -997,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let capacity = i64::try_from(node.memory_bytes).unwrap_or(i64::MAX).max(1);
            let adj = 1000 - (1000 * memory_request) / capacity;
            adj.clamp(3, 999)
        }
    };
    LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj,
        ..Default::default()
    }
}

/// `determineEffectiveSecurityContext`: the container's securityContext
/// over the Pod's, as CRI takes it.
pub(super) fn security_context(
    node: &Node,
    spec: &PodObjectSpec,
    container: &Container,
) -> LinuxContainerSecurityContext {
    let pod = spec.security_context.clone().unwrap_or_default();
    let own = container.security_context.clone().unwrap_or_default();
    let SecurityContext {
        allow_privilege_escalation,
        app_armor_profile,
        capabilities,
        privileged,
        proc_mount,
        read_only_root_filesystem,
        run_as_group,
        run_as_user,
        se_linux_options,
        seccomp_profile,
        ..
    } = own;
    let run_as_user = run_as_user.or(pod.run_as_user);
    let run_as_group = run_as_group.or(pod.run_as_group);
    let se_linux_options = se_linux_options.or(pod.se_linux_options);
    let seccomp_profile = seccomp_profile.or(pod.seccomp_profile);
    let app_armor_profile = app_armor_profile.or(pod.app_armor_profile);
    let seccomp = match seccomp_profile {
        None => profile(ProfileType::Unconfined, String::new()),
        Some(p) => match p.type_.as_str() {
            "Unconfined" => profile(ProfileType::Unconfined, String::new()),
            "RuntimeDefault" => profile(ProfileType::RuntimeDefault, String::new()),
            "Localhost" => {
                let relative = p.localhost_profile.unwrap_or_else(|| {
                    panic!(
                        "{}: a Localhost seccomp profile without localhostProfile",
                        container.name
                    )
                });
                profile(
                    ProfileType::Localhost,
                    node.kubelet_root
                        .join("seccomp")
                        .join(relative)
                        .display()
                        .to_string(),
                )
            }
            other => panic!("{}: seccomp profile type {other}", container.name),
        },
    };
    let (apparmor, apparmor_profile) = match app_armor_profile {
        None => (None, String::new()),
        Some(p) => match p.type_.as_str() {
            "Unconfined" => (
                profile(ProfileType::Unconfined, String::new()),
                "unconfined".to_owned(),
            ),
            "RuntimeDefault" => (
                profile(ProfileType::RuntimeDefault, String::new()),
                "runtime/default".to_owned(),
            ),
            "Localhost" => {
                let name = p.localhost_profile.unwrap_or_default();
                (
                    profile(ProfileType::Localhost, name.clone()),
                    format!("localhost/{name}"),
                )
            }
            other => panic!("{}: AppArmor profile type {other}", container.name),
        },
    };
    let unmasked = proc_mount.as_deref() == Some("Unmasked");
    #[allow(
        deprecated,
        reason = "the kubelet still sends apparmor_profile beside apparmor"
    )]
    LinuxContainerSecurityContext {
        capabilities: capabilities.map(|c| Capability {
            add_capabilities: c.add.unwrap_or_default(),
            drop_capabilities: c.drop.unwrap_or_default(),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged: privileged.unwrap_or(false),
        namespace_options: Some(host_network_namespaces()),
        selinux_options: se_linux_options.map(|o| SeLinuxOption {
            user: o.user.unwrap_or_default(),
            role: o.role.unwrap_or_default(),
            r#type: o.type_.unwrap_or_default(),
            level: o.level.unwrap_or_default(),
        }),
        run_as_user: run_as_user.map(|value| Int64Value { value }),
        run_as_group: run_as_group.map(|value| Int64Value { value }),
        readonly_rootfs: read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: pod.supplemental_groups.unwrap_or_default(),
        no_new_privs: allow_privilege_escalation == Some(false),
        masked_paths: if unmasked {
            Vec::new()
        } else {
            MASKED_PATHS.map(String::from).to_vec()
        },
        readonly_paths: if unmasked {
            Vec::new()
        } else {
            READONLY_PATHS.map(String::from).to_vec()
        },
        seccomp,
        apparmor,
        apparmor_profile,
        ..Default::default()
    }
}

fn profile(kind: ProfileType, localhost_ref: String) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: kind as i32,
        localhost_ref,
    })
}

/// Fails on `$(VAR)` references, which the kubelet would expand and this
/// runner does not.
pub(super) fn no_references(args: Vec<String>) -> Vec<String> {
    for arg in &args {
        assert!(
            !arg.contains("$("),
            "$(VAR) references are not supported here: {arg}"
        );
    }
    args
}

/// The container's environment as the kubelet makes it: the `kubernetes`
/// Service's variables, then the container's own in order, `fieldRef` and
/// `resourceFieldRef` filled in.
pub(super) fn env(node: &Node, pod: &PodObject, container: &Container) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(api) = &node.api_server {
        let (host, port) = (&api.host, api.port);
        let url = format!("tcp://{host}:{port}");
        env.extend([
            ("KUBERNETES_SERVICE_HOST".to_owned(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".to_owned(), port.to_string()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".to_owned(), port.to_string()),
            ("KUBERNETES_PORT".to_owned(), url.clone()),
            (format!("KUBERNETES_PORT_{port}_TCP"), url),
            (
                format!("KUBERNETES_PORT_{port}_TCP_PROTO"),
                "tcp".to_owned(),
            ),
            (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.to_string()),
            (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host.clone()),
        ]);
    }
    for EnvVar {
        name,
        value,
        value_from,
        ..
    } in container.env.iter().flatten()
    {
        let value = match (value, value_from) {
            (Some(value), None) => no_references(vec![value.clone()]).remove(0),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(node, pod, &field.field_path)
                } else if let Some(resource) = &from.resource_field_ref {
                    resource_value(container, &resource.resource)
                } else {
                    panic!(
                        "env {name} of {}: only fieldRef and resourceFieldRef are supported here",
                        container.name
                    )
                }
            }
            (None, None) => String::new(),
            (Some(_), Some(_)) => panic!("env {name} has both value and valueFrom"),
        };
        env.push((name.clone(), value));
    }
    assert!(
        container.env_from.is_none(),
        "envFrom is not supported here"
    );
    env
}

/// A downward API field of the Pod.
fn field_value(node: &Node, pod: &PodObject, path: &str) -> String {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.as_ref()?.get(key).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => node.name.clone(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs" => node.ip.clone(),
        _ => keyed(&meta.labels, "metadata.labels['")
            .or_else(|| keyed(&meta.annotations, "metadata.annotations['"))
            .unwrap_or_else(|| panic!("fieldRef {path} is not supported here")),
    }
}

/// A `resourceFieldRef` value (divisor 1).
fn resource_value(container: &Container, resource: &str) -> String {
    let (kind, what) = resource
        .split_once('.')
        .unwrap_or_else(|| panic!("resourceFieldRef {resource}"));
    let requirements = container.resources.clone().unwrap_or_default();
    let map = if kind == "requests" {
        requirements.requests
    } else {
        requirements.limits
    };
    let quantity = map.and_then(|m| m.get(what).map(|q| q.0.clone()));
    match (what, quantity) {
        ("cpu", Some(q)) => ((millicores(&q) + 999) / 1000).to_string(),
        ("memory", Some(q)) => bytes(&q).to_string(),
        (_, None) => "0".to_owned(),
        (other, Some(_)) => panic!("resourceFieldRef {other} is not supported here"),
    }
}

/// CPU in millicores: `20m`, `0.5`, `2`.
pub fn millicores(quantity: &str) -> i64 {
    match quantity.strip_suffix('m') {
        Some(milli) => milli
            .parse()
            .unwrap_or_else(|_| panic!("CPU quantity {quantity}")),
        None => {
            let cores: f64 = quantity
                .parse()
                .unwrap_or_else(|_| panic!("CPU quantity {quantity}"));
            (cores * 1000.0).ceil() as i64
        }
    }
}

/// Bytes of a memory quantity: `128Mi`, `1G`, `1000`.
pub fn bytes(quantity: &str) -> i64 {
    const SUFFIXES: [(&str, i64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = quantity.strip_suffix(suffix) {
            let n: i64 = number
                .parse()
                .unwrap_or_else(|_| panic!("memory quantity {quantity}"));
            return n * factor;
        }
    }
    quantity
        .parse()
        .unwrap_or_else(|_| panic!("memory quantity {quantity}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(millicores("20m"), 20);
        assert_eq!(millicores("0.5"), 500);
        assert_eq!(millicores("2"), 2000);
        assert_eq!(bytes("48Mi"), 48 << 20);
        assert_eq!(bytes("1G"), 1_000_000_000);
        assert_eq!(bytes("1000"), 1000);
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: serde_json::Value| -> PodObjectSpec {
            serde_json::from_value(
                serde_json::json!({"containers": [{"name": "a", "resources": resources}]}),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(qos(&pod(serde_json::json!({}))), Qos::BestEffort);
        assert_eq!(
            qos(&pod(
                serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            Qos::Guaranteed
        );
        assert_eq!(
            qos(&pod(
                serde_json::json!({"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}})
            )),
            Qos::Burstable
        );
    }
}
