//! LocalhostProfile objects: made from a profile file's bytes (by `export`
//! and `approve`), and checked before a node installs one. The path a node
//! writes is never taken from the object: it is made again from the
//! object's namespace, workload and container, which must be valid names,
//! and the object must name the same path.
use std::path::{Path, PathBuf};

use syscensus_api::{
    LocalhostProfile, LocalhostProfileSpec, MAX_PROFILE_BYTES, WorkloadRef, localhost_profile_name,
};

use super::{LOCALHOST_DIR, PathError, profile_path, sha256_hex, slash_path};
use crate::profile::Profile;

/// The LocalhostProfile of a workload container in `namespace`, holding
/// `profile` (the file's text) byte for byte.
pub fn make(
    namespace: &str,
    workload: &WorkloadRef,
    container: &str,
    profile: &str,
) -> Result<LocalhostProfile, PathError> {
    let relative = profile_path(namespace, workload.kind, &workload.name, container)?;
    let name = localhost_profile_name(workload.kind.as_str(), &workload.name, container);
    let mut object = LocalhostProfile::new(
        &name,
        LocalhostProfileSpec {
            workload: workload.clone(),
            container: container.to_owned(),
            localhost_profile: format!("{LOCALHOST_DIR}/{}", slash_path(&relative)),
            sha256: sha256_hex(profile.as_bytes()),
            profile: profile.to_owned(),
        },
    );
    object.metadata.namespace = Some(namespace.to_owned());
    Ok(object)
}

/// The object as a YAML manifest, as `export` writes it: apiVersion, kind,
/// name, namespace and spec, nothing the API server adds.
pub fn to_yaml(object: &LocalhostProfile) -> String {
    let manifest = serde_json::json!({
        "apiVersion": format!("{}/{}", syscensus_api::GROUP, syscensus_api::VERSION),
        "kind": "LocalhostProfile",
        "metadata": {
            "name": object.metadata.name,
            "namespace": object.metadata.namespace,
        },
        "spec": object.spec,
    });
    #[expect(
        clippy::unwrap_used,
        reason = "serializing JSON values to YAML cannot fail"
    )]
    serde_norway::to_string(&manifest).unwrap()
}

/// Checks a LocalhostProfile named `name` in `namespace` before a node
/// installs it, and gives the path, relative to syscensus's directory, to
/// write its profile at. The reason it is refused otherwise is one line.
pub fn check(namespace: &str, name: &str, spec: &LocalhostProfileSpec) -> Result<PathBuf, String> {
    let relative = profile_path(
        namespace,
        spec.workload.kind,
        &spec.workload.name,
        &spec.container,
    )
    .map_err(|e| e.to_string())?;
    let expected = format!("{LOCALHOST_DIR}/{}", slash_path(&relative));
    if spec.localhost_profile != expected {
        return Err(format!(
            "spec.localhostProfile is {:?}, but a profile of {} {namespace}/{} container {} is {expected:?}",
            excerpt(&spec.localhost_profile),
            spec.workload.kind.as_str(),
            spec.workload.name,
            spec.container
        ));
    }
    let canonical = localhost_profile_name(
        spec.workload.kind.as_str(),
        &spec.workload.name,
        &spec.container,
    );
    if name != canonical {
        return Err(format!(
            "its name must be {canonical:?} (one object per path), not {:?}",
            excerpt(name)
        ));
    }
    if spec.profile.len() > MAX_PROFILE_BYTES {
        return Err(format!(
            "spec.profile is {} bytes, more than {MAX_PROFILE_BYTES}",
            spec.profile.len()
        ));
    }
    let sha256 = sha256_hex(spec.profile.as_bytes());
    if !sha256.eq_ignore_ascii_case(&spec.sha256) {
        return Err(format!(
            "spec.sha256 is not the SHA-256 of spec.profile ({sha256}): the profile was changed after it was exported"
        ));
    }
    if !spec.profile.trim_start().starts_with('{') {
        return Err("spec.profile is not an OCI seccomp profile (a JSON object)".to_owned());
    }
    Profile::parse(&spec.profile, Path::new("spec.profile"), None).map_err(|e| e.to_string())?;
    Ok(relative)
}

/// At most 80 characters of `text`, for a message.
fn excerpt(text: &str) -> String {
    crate::profile::excerpt(text, 80)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use syscensus_api::WorkloadKind;

    use super::*;

    const PROFILE: &str = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_X86_64\"],\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]}\n";

    fn web() -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
        }
    }

    #[test]
    fn made_objects_pass_and_tampered_ones_do_not() {
        let object = make("shop", &web(), "nginx", PROFILE).unwrap();
        assert_eq!(
            object.metadata.name.as_deref(),
            Some("deployment-web.nginx")
        );
        assert_eq!(
            object.spec.localhost_profile,
            "syscensus/shop/deployment-web/nginx.json"
        );
        let name = object.metadata.name.clone().unwrap();
        assert_eq!(
            check("shop", &name, &object.spec).unwrap(),
            PathBuf::from("shop/deployment-web/nginx.json")
        );
        // Another namespace cannot install into this one's directory.
        let err = check("other", &name, &object.spec).unwrap_err();
        assert!(
            err.contains("syscensus/other/deployment-web/nginx.json"),
            "{err}"
        );
        // Edited bytes without their hash.
        let mut edited = object.spec.clone();
        edited.profile = edited.profile.replace("read", "write");
        assert!(
            check("shop", &name, &edited)
                .unwrap_err()
                .contains("sha256")
        );
        // A second object for the same path.
        assert!(
            check("shop", "copy", &object.spec)
                .unwrap_err()
                .contains("name must be")
        );
        // A syscall no runtime knows.
        let bad = PROFILE.replace("read", "not_a_syscall");
        let object = make("shop", &web(), "nginx", &bad).unwrap();
        assert!(
            check("shop", &name, &object.spec)
                .unwrap_err()
                .contains("not_a_syscall")
        );
        // Crafted names.
        let mut crafted = make("shop", &web(), "nginx", PROFILE).unwrap().spec;
        crafted.workload.name = "../../etc".into();
        assert!(check("shop", &name, &crafted).is_err());
    }

    #[test]
    fn manifests_hold_the_bytes() {
        let object = make("shop", &web(), "nginx", PROFILE).unwrap();
        let yaml = to_yaml(&object);
        let back: LocalhostProfile = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back.spec.profile, PROFILE);
        assert!(yaml.starts_with("apiVersion: syscensus.io/v1alpha1\nkind: LocalhostProfile\n"));
    }
}
