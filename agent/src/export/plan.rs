//! What an export directory holds, computed from the profiles: every file's
//! relative path and content. Pure: no I/O, and the same profiles always
//! give the same files.
//!
//! ```text
//! kustomization.yaml                               kustomize Component: the objects and patches
//! <namespace>/<kind>-<workload>/<container>.json   the OCI seccomp profile
//! <namespace>/<kind>-<workload>/<container>.localhostprofile.yaml
//!                                                  the LocalhostProfile that installs it
//! <namespace>/<kind>-<workload>/<container>.seccompprofile.yaml
//!                                                  or SPO's SeccompProfile (--for spo)
//! <namespace>/<kind>-<workload>/patch.yaml         strategic merge patch
//! <namespace>/<kind>-<workload>/patch.rfc6902.json JSON patch (with --base)
//! <namespace>/<kind>-<workload>/<container>.spo.yaml  SPO SeccompProfile (with --spo)
//! ```
//!
//! Container names are DNS labels (no dots), so no container's profile can
//! be named like the patch files.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use syscensus_api::{ContainerProfileSpec, WorkloadKind, WorkloadRef};

use super::{
    ExportError,
    patch::{self, ManifestWorkload, PatchContainer, WorkloadPatch},
};
use crate::{
    localhost::{self, localhost_profile, object, slash_path, spec_profile, workload_dir},
    profile::{Action, Rule},
    refusal::report::{ContainerRefusals, RULE_COMMENT},
};

/// The strategic merge patch of a workload, in its directory.
pub const PATCH_FILE: &str = "patch.yaml";
/// The RFC 6902 JSON patch of a workload, in its directory.
pub const JSON_PATCH_FILE: &str = "patch.rfc6902.json";
/// The kustomize Component, at the top of the export.
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

/// One workload container's profile to export.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub namespace: String,
    pub spec: ContainerProfileSpec,
}

/// Manifests of workloads (`--base`), to write JSON patches against and to
/// tell init containers from containers.
#[derive(Clone, Debug, Default)]
pub struct Base {
    /// By namespace ("" when the manifest has none), kind and name.
    workloads: BTreeMap<(String, WorkloadKind, String), ManifestWorkload>,
}

impl Base {
    /// Adds the workloads in `object` (a manifest, or a `List` of them);
    /// other kinds are ignored.
    pub fn add(&mut self, object: &Value) {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind == "List" {
            for item in object
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.add(item);
            }
            return;
        }
        let Some(kind) = WorkloadKind::from_name(kind) else {
            return;
        };
        let meta = |field: &str| {
            object
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        self.workloads.insert(
            (meta("namespace"), kind, meta("name")),
            ManifestWorkload::of(object, kind),
        );
    }

    /// The manifest of a workload: the one in `namespace`, else one without
    /// a namespace (a kustomize base often leaves it to the overlay).
    pub fn find(
        &self,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
    ) -> Option<&ManifestWorkload> {
        self.workloads
            .get(&(namespace.to_owned(), kind, name.to_owned()))
            .or_else(|| self.workloads.get(&(String::new(), kind, name.to_owned())))
    }

    /// How many workloads it holds.
    pub fn len(&self) -> usize {
        self.workloads.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }
}

/// Who installs the profiles on the nodes of the cluster the export is
/// applied to: the export writes the objects it installs from, and patches
/// that point at the path it installs them at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Installer {
    /// syscensus's agents, from LocalhostProfiles:
    /// `syscensus/<namespace>/<kind>-<workload>/<container>.json`.
    #[default]
    Syscensus,
    /// The Security Profiles Operator 1.0 and later (and 0.9, 0.10), whose
    /// SeccompProfiles are cluster-scoped: `operator/<name>.json`, the
    /// object named `<namespace>.<kind>.<workload>.<container>`.
    Spo,
    /// The Security Profiles Operator before 0.9, whose SeccompProfiles are
    /// namespaced (API version v1beta1): `operator/<namespace>/<name>.json`.
    SpoNamespaced,
}

/// The suffix of the file that holds a container's LocalhostProfile.
pub const LOCALHOST_PROFILE_SUFFIX: &str = ".localhostprofile.yaml";
/// The suffix of the file that holds a container's SPO SeccompProfile
/// when SPO installs the profiles (`--for spo`).
pub const SECCOMP_PROFILE_SUFFIX: &str = ".seccompprofile.yaml";

/// What else to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Security Profiles Operator `SeccompProfile` objects too, outside the
    /// Component (`<container>.spo.yaml`).
    pub spo: bool,
    /// Who installs the profiles.
    pub installer: Installer,
    /// Refusal reports (`--with-denials`): the syscalls they name are
    /// proposed in a rule of their own in the profile of their workload
    /// container.
    pub denials: Vec<ContainerRefusals>,
    /// Complain mode (`--default-action log`): a syscall outside the profile
    /// is allowed and logged (`SCMP_ACT_LOG`) instead of failed, so that a
    /// canary runs unrestricted while the agent reports what the profile
    /// would refuse.
    pub complain: bool,
}

/// The files of an export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Relative path (`/`-separated) → content.
    pub files: BTreeMap<String, String>,
    /// Profiles (workload containers) exported.
    pub profiles: usize,
    /// Workloads exported.
    pub workloads: usize,
    /// Things a reviewer should know (containers missing from `--base`).
    pub warnings: Vec<String>,
}

/// The refused syscall names of `reports`, by workload container. Reports
/// that name no workload container, and numbers without a name, are
/// warnings.
fn denied_names(
    reports: &[ContainerRefusals],
    warnings: &mut Vec<String>,
) -> BTreeMap<(String, WorkloadRef, String), BTreeSet<String>> {
    let mut out: BTreeMap<_, BTreeSet<String>> = BTreeMap::new();
    for report in reports {
        if report.syscalls.is_empty() {
            continue;
        }
        let Some(key) = report.workload_container() else {
            warnings.push(format!(
                "the refusals of container {} name no namespace, Pod or container name: left out",
                report.container_id
            ));
            continue;
        };
        let names = out.entry(key).or_default();
        for refused in &report.syscalls {
            if refused.name.starts_with('#') {
                warnings.push(format!(
                    "container {} was refused syscall {} of {}, which has no name: left out",
                    report.container_id, refused.name, refused.arch
                ));
            } else {
                names.insert(refused.name.clone());
            }
        }
    }
    out.retain(|_, names| !names.is_empty());
    out
}

/// The files for `entries`. Entries for the same workload container (from
/// several recordings or recordings of several Pods) are merged into one
/// profile that allows what any of them saw.
pub fn plan(
    entries: Vec<Entry>,
    base: Option<&Base>,
    options: &PlanOptions,
) -> Result<Plan, ExportError> {
    let mut merged: BTreeMap<(String, WorkloadRef, String), ContainerProfileSpec> = BTreeMap::new();
    for entry in entries {
        let key = (
            entry.namespace,
            entry.spec.workload.clone(),
            entry.spec.container.clone(),
        );
        match merged.get_mut(&key) {
            Some(spec) => {
                localhost::merge(spec, &entry.spec);
            }
            None => {
                merged.insert(key, entry.spec);
            }
        }
    }

    let mut out = Plan::default();
    let mut denials = denied_names(&options.denials, &mut out.warnings);
    let mut workloads: BTreeMap<(String, WorkloadRef), Vec<PatchContainer>> = BTreeMap::new();
    let mut resources = Vec::new();
    for ((namespace, workload, container), spec) in &merged {
        let dir = workload_dir(namespace, workload.kind, &workload.name)?;
        let mut localhost = localhost_profile(namespace, workload.kind, &workload.name, container)?;
        localhost::check(spec).map_err(|reason| ExportError::Unusable {
            namespace: namespace.clone(),
            workload: format!("{}/{}", workload.kind.as_str(), workload.name),
            container: container.clone(),
            reason,
        })?;
        if let Some(note) = session_note(namespace, workload, container, spec) {
            out.warnings.push(note);
        }
        let mut profile = spec_profile(spec);
        if options.complain {
            profile.default_action = Action::Log;
            profile.default_errno_ret = None;
        }
        if let Some(names) =
            denials.remove(&(namespace.clone(), workload.clone(), container.clone()))
        {
            profile.syscalls.push(Rule {
                names: names.into_iter().collect(),
                action: Action::Allow,
                errno_ret: None,
                args: Vec::new(),
                comment: Some(RULE_COMMENT.to_owned()),
            });
        }
        let dir = slash_path(&dir);
        let text = profile.to_oci_json();
        match options.installer {
            Installer::Syscensus => {
                let object = object::make(namespace, workload, container, &text)?;
                let path = format!("{dir}/{container}{LOCALHOST_PROFILE_SUFFIX}");
                out.files.insert(path.clone(), object::to_yaml(&object));
                resources.push(path);
            }
            Installer::Spo | Installer::SpoNamespaced => {
                let (name, namespace, version) = if options.installer == Installer::Spo {
                    let name = syscensus_api::object_name(
                        namespace,
                        workload.kind.as_str(),
                        &workload.name,
                        container,
                    );
                    localhost = format!("operator/{name}.json");
                    (name, None, "v1")
                } else {
                    let name = syscensus_api::localhost_profile_name(
                        workload.kind.as_str(),
                        &workload.name,
                        container,
                    );
                    localhost = format!("operator/{namespace}/{name}.json");
                    (name, Some(namespace.as_str()), "v1beta1")
                };
                let path = format!("{dir}/{container}{SECCOMP_PROFILE_SUFFIX}");
                out.files.insert(
                    path.clone(),
                    profile.to_spo_yaml_as(&name, namespace, version)?,
                );
                resources.push(path);
            }
        }
        out.files.insert(format!("{dir}/{container}.json"), text);
        if options.spo {
            let name = syscensus_api::object_name(
                namespace,
                workload.kind.as_str(),
                &workload.name,
                container,
            );
            let yaml = profile.to_spo_yaml(&name, Some(namespace))?;
            out.files
                .insert(format!("{dir}/{container}.spo.yaml"), yaml);
        }
        let manifest = base.and_then(|b| b.find(namespace, workload.kind, &workload.name));
        let init = manifest
            .and_then(|m| m.is_init(container))
            .unwrap_or(spec.init_container);
        workloads
            .entry((namespace.clone(), workload.clone()))
            .or_default()
            .push(PatchContainer {
                name: container.clone(),
                init,
                localhost_profile: localhost,
            });
        out.profiles += 1;
    }

    for ((namespace, workload, container), names) in denials {
        out.warnings.push(format!(
            "refusals of {namespace}/{}/{} container {container} ({}) match no exported profile: left out",
            workload.kind.as_str(),
            workload.name,
            names.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    let mut patches = Vec::new();
    for ((namespace, workload), mut containers) in workloads {
        containers.sort();
        let dir = slash_path(&workload_dir(&namespace, workload.kind, &workload.name)?);
        let p = WorkloadPatch {
            namespace,
            workload,
            containers,
        };
        let path = format!("{dir}/{PATCH_FILE}");
        out.files
            .insert(path.clone(), patch::strategic_merge_patch(&p));
        if let Some(base) = base {
            match base.find(&p.namespace, p.workload.kind, &p.workload.name) {
                None => out.warnings.push(format!(
                    "{} {}/{} is not in the base manifests: no JSON patch written",
                    p.workload.kind.as_str(),
                    p.namespace,
                    p.workload.name
                )),
                Some(manifest) => {
                    let (json, missing) = patch::json_patch(&p, manifest);
                    for name in missing {
                        out.warnings.push(format!(
                            "container {name} of {} {}/{} is not in its base manifest: left out of the JSON patch",
                            p.workload.kind.as_str(),
                            p.namespace,
                            p.workload.name
                        ));
                    }
                    if let Some(json) = json {
                        out.files.insert(format!("{dir}/{JSON_PATCH_FILE}"), json);
                    }
                }
            }
        }
        patches.push((path, p));
    }
    patches.sort_by(|(a, _), (b, _)| a.cmp(b));
    out.workloads = patches.len();
    resources.sort();
    out.files.insert(
        KUSTOMIZATION_FILE.to_owned(),
        patch::kustomization(&resources, &patches),
    );
    Ok(out)
}

/// For the reviewer: the syscalls of a profile that only exec sessions or
/// OCI hooks made (with the commands that put them there), and the exec
/// sessions left out of it.
fn session_note(
    namespace: &str,
    workload: &WorkloadRef,
    container: &str,
    spec: &ContainerProfileSpec,
) -> Option<String> {
    let only: Vec<&str> = spec
        .session_only_syscalls
        .values()
        .flatten()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let command = |s: &syscensus_api::SessionSummary| match &s.command {
        Some(c) => format!("{c:?}"),
        None => "(command line unknown)".to_owned(),
    };
    let by: Vec<String> = spec
        .sessions
        .iter()
        .filter(|s| s.included)
        .map(|s| format!("{} {} ({})", s.kind, command(s), s.reason))
        .collect();
    let left_out = spec.sessions.iter().filter(|s| !s.included).count();
    if only.is_empty() && left_out == 0 {
        return None;
    }
    let what = format!(
        "{namespace} {}/{} container {container}",
        workload.kind.as_str(),
        workload.name
    );
    let mut note = if only.is_empty() {
        format!("{what}:")
    } else {
        format!(
            "{what}: syscalls only sessions made: {} (by {})",
            only.join(", "),
            by.join("; ")
        )
    };
    if left_out > 0 {
        note.push_str(&format!(
            "{}{left_out} exec session(s) left out of the profile",
            if only.is_empty() { " " } else { "; " }
        ));
    }
    Some(note)
}

/// Whether a relative path of an export is a profile (`<container>.json`,
/// not a patch).
pub fn is_profile_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".json")
        .is_some_and(|stem| !stem.is_empty() && !stem.contains('.'))
}
