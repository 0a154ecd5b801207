//! Where a workload container's profile lives: the same relative path in an
//! export directory and below the kubelet's seccomp directory, built only
//! from names that Kubernetes would accept, so that no path ever leaves its
//! directory.
use std::path::PathBuf;

use syscensus_api::{
    ContainerProfileSpec, WorkloadKind, validate_dns_label, validate_dns_subdomain,
};

/// A name cannot become part of a profile's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error(
        "cannot name a profile file after {what} {name:?}: {reason}; profile paths are made of Kubernetes names only"
    )]
    Name {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error(
        "cannot name a directory {component:?}: longer than 255 bytes (a file name's limit); shorten the workload's name"
    )]
    TooLong { component: String },
}

use super::LOCALHOST_DIR;

/// The longest file name Linux file systems take (NAME_MAX).
const NAME_MAX: usize = 255;

fn check(
    what: &'static str,
    name: &str,
    validate: fn(&str) -> Result<(), syscensus_api::NameError>,
) -> Result<(), PathError> {
    validate(name).map_err(|e| PathError::Name {
        what,
        name: name.to_owned(),
        reason: e.reason,
    })
}

/// The directory of a workload, relative: `<namespace>/<kind>-<workload>`,
/// the kind lowercase (`shop/deployment-web`).
///
/// The namespace must be a DNS label, the workload's name a DNS subdomain;
/// so no component is empty, `.`, `..`, holds a `/` or an uppercase letter.
pub fn workload_dir(
    namespace: &str,
    kind: WorkloadKind,
    workload: &str,
) -> Result<PathBuf, PathError> {
    check("namespace", namespace, validate_dns_label)?;
    check("workload name", workload, validate_dns_subdomain)?;
    let dir = format!("{}-{workload}", kind.as_str().to_ascii_lowercase());
    if dir.len() > NAME_MAX {
        return Err(PathError::TooLong { component: dir });
    }
    Ok(PathBuf::from(namespace).join(dir))
}

/// The profile of a workload container, relative:
/// `<namespace>/<kind>-<workload>/<container>.json`
/// (`shop/deployment-web/nginx.json`). The same path is used in export
/// directories and below `<kubelet-root>/seccomp/syscensus/`. The container
/// name must be a DNS label.
pub fn profile_path(
    namespace: &str,
    kind: WorkloadKind,
    workload: &str,
    container: &str,
) -> Result<PathBuf, PathError> {
    let dir = workload_dir(namespace, kind, workload)?;
    check("container name", container, validate_dns_label)?;
    Ok(dir.join(format!("{container}.json")))
}

/// [`profile_path`] of the container a ContainerProfile in `namespace`
/// describes.
pub fn spec_profile_path(
    namespace: &str,
    spec: &ContainerProfileSpec,
) -> Result<PathBuf, PathError> {
    profile_path(
        namespace,
        spec.workload.kind,
        &spec.workload.name,
        &spec.container,
    )
}

/// The `localhostProfile` of a workload container:
/// `syscensus/<namespace>/<kind>-<workload>/<container>.json`, relative to
/// the kubelet's seccomp directory.
pub fn localhost_profile(
    namespace: &str,
    kind: WorkloadKind,
    workload: &str,
    container: &str,
) -> Result<String, PathError> {
    let path = profile_path(namespace, kind, workload, container)?;
    Ok(format!("{LOCALHOST_DIR}/{}", slash_path(&path)))
}

/// A relative path with `/` separators (paths built here are UTF-8).
pub fn slash_path(path: &std::path::Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn paths_are_lowercase_kind_and_names() {
        assert_eq!(
            profile_path("shop", WorkloadKind::Deployment, "web", "nginx").unwrap(),
            PathBuf::from("shop/deployment-web/nginx.json")
        );
        assert_eq!(
            localhost_profile("shop", WorkloadKind::CronJob, "web.v2", "nginx").unwrap(),
            "syscensus/shop/cronjob-web.v2/nginx.json"
        );
    }
}
