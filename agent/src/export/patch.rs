//! Patches that make a workload's recorded containers use their profiles:
//! a strategic merge patch (also the server-side apply configuration of
//! `syscensus apply`), an RFC 6902 JSON patch against a known manifest, and
//! the kustomize Component that ties the strategic merge patches together.
//! Pure: no I/O; output is deterministic.
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use syscensus_api::{WorkloadKind, WorkloadRef};

use super::ExportError;

/// A container to give a profile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PatchContainer {
    pub name: String,
    /// An init container (`initContainers`), else a container.
    pub init: bool,
    /// `syscensus/<namespace>/<kind>-<workload>/<container>.json`.
    pub localhost_profile: String,
}

/// A workload and the containers of it that have profiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadPatch {
    pub namespace: String,
    pub workload: WorkloadRef,
    /// Sorted (by name).
    pub containers: Vec<PatchContainer>,
}

pub use crate::localhost::usage::pod_spec_pointer;

/// The API group and version of a kind (`apps`, `v1`; `""` for the core
/// group).
pub fn group_version(kind: WorkloadKind) -> (&'static str, &'static str) {
    kind.api_version().split_once('/').unwrap_or(("", "v1"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Spec<'a> {
    Pod(PodSpec<'a>),
    Template(TemplateSpec<'a>),
    CronJob(CronJobSpec<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CronJobSpec<'a> {
    job_template: JobTemplate<'a>,
}

#[derive(Serialize)]
struct JobTemplate<'a> {
    spec: TemplateSpec<'a>,
}

#[derive(Serialize)]
struct TemplateSpec<'a> {
    template: Template<'a>,
}

#[derive(Serialize)]
struct Template<'a> {
    spec: PodSpec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containers: Vec<Container<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    init_containers: Vec<Container<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    security_context: SecurityContext<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecurityContext<'a> {
    seccomp_profile: SeccompProfile<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SeccompProfile<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    localhost_profile: &'a str,
}

fn seccomp(c: &PatchContainer) -> SeccompProfile<'_> {
    SeccompProfile {
        kind: "Localhost",
        localhost_profile: &c.localhost_profile,
    }
}

fn object(patch: &WorkloadPatch) -> Object<'_> {
    let entries = |init: bool| {
        patch
            .containers
            .iter()
            .filter(|c| c.init == init)
            .map(|c| Container {
                name: &c.name,
                security_context: SecurityContext {
                    seccomp_profile: seccomp(c),
                },
            })
            .collect()
    };
    let pod = PodSpec {
        containers: entries(false),
        init_containers: entries(true),
    };
    let template = |pod| TemplateSpec {
        template: Template { spec: pod },
    };
    let kind = patch.workload.kind;
    let spec = match kind {
        WorkloadKind::Pod => Spec::Pod(pod),
        WorkloadKind::CronJob => Spec::CronJob(CronJobSpec {
            job_template: JobTemplate {
                spec: template(pod),
            },
        }),
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::Job => Spec::Template(template(pod)),
    };
    Object {
        api_version: kind.api_version(),
        kind: kind.as_str(),
        metadata: Metadata {
            name: &patch.workload.name,
            namespace: &patch.namespace,
        },
        spec,
    }
}

/// The patch as a server-side apply configuration: only `apiVersion`,
/// `kind`, `metadata.name`/`namespace` and each recorded container by name
/// with its `securityContext.seccompProfile` (containers are a list map
/// keyed by name, so the other containers and fields stay as they are).
pub fn apply_configuration(patch: &WorkloadPatch) -> Value {
    #[expect(
        clippy::unwrap_used,
        reason = "serializing plain data to a Value cannot fail"
    )]
    serde_json::to_value(object(patch)).unwrap()
}

/// The strategic merge patch (YAML) that sets
/// `securityContext.seccompProfile` to `{type: Localhost, localhostProfile:
/// ...}` on exactly the recorded containers and init containers. It is the
/// same object as [`apply_configuration`].
pub fn strategic_merge_patch(patch: &WorkloadPatch) -> String {
    #[expect(
        clippy::unwrap_used,
        reason = "serializing plain data to YAML cannot fail"
    )]
    let body = serde_norway::to_string(&object(patch)).unwrap();
    format!("# Written by `syscensus export`: the recorded containers use their profiles.\n{body}")
}

/// A container as a manifest holds it: its index in its list, and whether
/// it has a `securityContext` already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestContainer {
    pub name: String,
    pub index: usize,
    pub has_security_context: bool,
}

/// The containers of a workload's manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestWorkload {
    pub containers: Vec<ManifestContainer>,
    pub init_containers: Vec<ManifestContainer>,
}

impl ManifestWorkload {
    /// The containers of the pod spec of `object`, a workload of `kind`.
    pub fn of(object: &Value, kind: WorkloadKind) -> ManifestWorkload {
        let pod = object.pointer(pod_spec_pointer(kind));
        let list = |field: &str| {
            pod.and_then(|p| p.get(field))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .enumerate()
                        .map(|(index, c)| ManifestContainer {
                            name: c
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            index,
                            has_security_context: c
                                .get("securityContext")
                                .is_some_and(Value::is_object),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        ManifestWorkload {
            containers: list("containers"),
            init_containers: list("initContainers"),
        }
    }

    /// Whether `name` is an init container (`None`: not in the manifest).
    pub fn is_init(&self, name: &str) -> Option<bool> {
        if self.containers.iter().any(|c| c.name == name) {
            Some(false)
        } else if self.init_containers.iter().any(|c| c.name == name) {
            Some(true)
        } else {
            None
        }
    }
}

#[derive(Serialize)]
struct Operation<'a> {
    op: &'static str,
    path: String,
    value: OpValue<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OpValue<'a> {
    Name(&'a str),
    Profile(SeccompProfile<'a>),
    Context(SecurityContext<'a>),
}

/// The RFC 6902 JSON patch that does what [`strategic_merge_patch`] does, to
/// the manifest `base`: JSON patches address list elements by index, so
/// each container is found by name in `base`, and a `test` of its name
/// guards each change (applied to a manifest whose containers moved, the
/// patch fails rather than change another container). `add` sets the
/// `seccompProfile`, or the whole `securityContext` where the container has
/// none. Returns the patch (JSON, or `None` when no container is in `base`)
/// and the names of the containers missing from `base`.
pub fn json_patch(patch: &WorkloadPatch, base: &ManifestWorkload) -> (Option<String>, Vec<String>) {
    let pod = pod_spec_pointer(patch.workload.kind);
    let mut ops = Vec::new();
    let mut missing = Vec::new();
    for c in &patch.containers {
        let (list, field) = if c.init {
            (&base.init_containers, "initContainers")
        } else {
            (&base.containers, "containers")
        };
        let Some(found) = list.iter().find(|m| m.name == c.name) else {
            missing.push(c.name.clone());
            continue;
        };
        let at = format!("{pod}/{field}/{}", found.index);
        ops.push(Operation {
            op: "test",
            path: format!("{at}/name"),
            value: OpValue::Name(&c.name),
        });
        ops.push(if found.has_security_context {
            Operation {
                op: "add",
                path: format!("{at}/securityContext/seccompProfile"),
                value: OpValue::Profile(seccomp(c)),
            }
        } else {
            Operation {
                op: "add",
                path: format!("{at}/securityContext"),
                value: OpValue::Context(SecurityContext {
                    seccomp_profile: seccomp(c),
                }),
            }
        });
    }
    if ops.is_empty() {
        return (None, missing);
    }
    #[expect(
        clippy::unwrap_used,
        reason = "serializing plain data to a String cannot fail"
    )]
    let mut text = serde_json::to_string_pretty(&ops).unwrap();
    text.push('\n');
    (Some(text), missing)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization<'a> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    resources: &'a [String],
    patches: Vec<KustomizePatch<'a>>,
}

#[derive(Serialize)]
struct KustomizePatch<'a> {
    path: &'a str,
    target: Target<'a>,
}

#[derive(Serialize)]
struct Target<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    name: &'a str,
    namespace: &'a str,
}

/// The kustomize Component (`kustomization.yaml`) that creates the objects
/// that install the profiles (`resources`, relative to the export
/// directory) and applies each workload's strategic merge patch (`path`) to
/// exactly that workload: an overlay lists the export directory under
/// `components:`.
pub fn kustomization(resources: &[String], patches: &[(String, WorkloadPatch)]) -> String {
    let patches = patches
        .iter()
        .map(|(path, p)| {
            let (group, version) = group_version(p.workload.kind);
            KustomizePatch {
                path,
                target: Target {
                    group,
                    version,
                    kind: p.workload.kind.as_str(),
                    name: &p.workload.name,
                    namespace: &p.namespace,
                },
            }
        })
        .collect();
    let k = Kustomization {
        api_version: "kustomize.config.k8s.io/v1alpha1",
        kind: "Component",
        resources,
        patches,
    };
    #[expect(
        clippy::unwrap_used,
        reason = "serializing plain data to YAML cannot fail"
    )]
    let body = serde_norway::to_string(&k).unwrap();
    format!(
        "# Written by `syscensus export`: export again rather than edit.\n# Use it from an overlay: `components: [<path to this directory>]`.\n{body}"
    )
}

/// Reads back a strategic merge patch written by [`strategic_merge_patch`]
/// (`origin` names it in errors).
pub fn parse_patch(text: &str, origin: &Path) -> Result<WorkloadPatch, ExportError> {
    let bad = |message: &str| ExportError::Parse {
        path: origin.to_path_buf(),
        message: format!("{message}: not a patch written by syscensus export"),
    };
    let value: Value = serde_norway::from_str(text).map_err(|e| ExportError::Parse {
        path: origin.to_path_buf(),
        message: e.to_string(),
    })?;
    let text_at = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
    let kind = text_at("/kind")
        .and_then(WorkloadKind::from_name)
        .ok_or_else(|| bad("no workload kind"))?;
    let name = text_at("/metadata/name").ok_or_else(|| bad("no metadata.name"))?;
    let namespace = text_at("/metadata/namespace").ok_or_else(|| bad("no metadata.namespace"))?;
    let pod = value
        .pointer(pod_spec_pointer(kind))
        .ok_or_else(|| bad("no pod spec"))?;
    let mut containers = Vec::new();
    for (field, init) in [("containers", false), ("initContainers", true)] {
        for c in pod
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a container without a name"))?;
            let profile = c
                .pointer("/securityContext/seccompProfile/localhostProfile")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a container without a localhostProfile"))?;
            containers.push(PatchContainer {
                name: name.to_owned(),
                init,
                localhost_profile: profile.to_owned(),
            });
        }
    }
    containers.sort();
    Ok(WorkloadPatch {
        namespace: namespace.to_owned(),
        workload: WorkloadRef {
            kind,
            name: name.to_owned(),
        },
        containers,
    })
}
