//! What a cgroup path under the kubelet's tree is: a QoS class, a Pod, or a
//! container of a Pod, with the Pod UID and the container id.
//!
//! The kubelet lays cgroups out in one of two ways, depending on its cgroup
//! driver (pkg/kubelet/cm/cgroup_manager_linux.go and the runtimes'
//! cgroup naming, Kubernetes 1.30):
//!
//! - cgroupfs: `/kubepods[/burstable|/besteffort]/pod<uid>/<container-id>`
//! - systemd: `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid
//!   with '_' for '-'>.slice/<runtime>-<container-id>.scope`, where the
//!   runtime prefix is `cri-containerd`, `crio` or `docker`
//!
//! Guaranteed Pods have no QoS level. The tree may sit below another cgroup
//! (`/kubelet.slice/kubelet-kubepods.slice/...` on some distributions).

/// A Pod's QoS class, as its cgroup shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    fn from_name(name: &str) -> Option<Qos> {
        match name {
            "burstable" => Some(Qos::Burstable),
            "besteffort" => Some(Qos::BestEffort),
            _ => None,
        }
    }

    /// The QoS class as Kubernetes names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

/// The kubelet's cgroup driver, as the path shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Driver {
    Cgroupfs,
    Systemd,
}

/// What a cgroup below the kubelet's root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeCgroup {
    /// The root itself (`kubepods`, `kubepods.slice`).
    Root { driver: Driver },
    /// A QoS class's cgroup.
    Qos { driver: Driver, qos: Qos },
    /// A Pod's cgroup.
    Pod {
        driver: Driver,
        qos: Qos,
        pod_uid: String,
    },
    /// A container of a Pod (the sandbox's too: the path cannot tell).
    Container {
        driver: Driver,
        qos: Qos,
        pod_uid: String,
        container_id: String,
        /// `cri-containerd`, `crio`, `docker`; empty for cgroupfs.
        runtime: String,
    },
    /// Below the root but none of the above (e.g. `crio-conmon-<id>.scope`, or
    /// a cgroup a container made inside its own).
    Other,
}

impl KubeCgroup {
    /// The container id, for a container.
    pub fn container_id(&self) -> Option<&str> {
        match self {
            KubeCgroup::Container { container_id, .. } => Some(container_id),
            _ => None,
        }
    }

    /// The Pod UID, for a Pod or a container.
    pub fn pod_uid(&self) -> Option<&str> {
        match self {
            KubeCgroup::Pod { pod_uid, .. } | KubeCgroup::Container { pod_uid, .. } => {
                Some(pod_uid)
            }
            _ => None,
        }
    }
}

/// Whether `s` is a container id: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` is a Pod UID (RFC 4122 text form, any case), possibly with
/// '_' for '-' as the systemd driver writes it.
fn pod_uid(s: &str) -> Option<String> {
    let uid = s.replace('_', "-").to_ascii_lowercase();
    let groups: Vec<&str> = uid.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(uid)
}

/// Classifies `path` (from the cgroup2 root, as in /proc/PID/cgroup). `None`
/// if the path is not below a kubelet root at all.
pub fn classify(path: &str) -> Option<KubeCgroup> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // The root: the last component named kubepods or ending in kubepods.slice.
    let root = parts.iter().rposition(|p| {
        *p == "kubepods" || *p == "kubepods.slice" || p.ends_with("-kubepods.slice")
    })?;
    let driver = if parts[root] == "kubepods" {
        Driver::Cgroupfs
    } else {
        Driver::Systemd
    };
    let rest = &parts[root + 1..];
    Some(match driver {
        Driver::Cgroupfs => classify_cgroupfs(rest),
        Driver::Systemd => classify_systemd(parts[root].trim_end_matches(".slice"), rest),
    })
}

fn classify_cgroupfs(rest: &[&str]) -> KubeCgroup {
    let driver = Driver::Cgroupfs;
    let (qos, rest) = match rest.first().and_then(|p| Qos::from_name(p)) {
        Some(qos) => (qos, &rest[1..]),
        None => (Qos::Guaranteed, rest),
    };
    match rest {
        [] if qos == Qos::Guaranteed => KubeCgroup::Root { driver },
        [] => KubeCgroup::Qos { driver, qos },
        [pod] => match pod.strip_prefix("pod").and_then(pod_uid) {
            Some(pod_uid) => KubeCgroup::Pod {
                driver,
                qos,
                pod_uid,
            },
            None => KubeCgroup::Other,
        },
        [pod, container] => match (
            pod.strip_prefix("pod").and_then(pod_uid),
            is_container_id(container),
        ) {
            (Some(pod_uid), true) => KubeCgroup::Container {
                driver,
                qos,
                pod_uid,
                container_id: (*container).to_owned(),
                runtime: String::new(),
            },
            _ => KubeCgroup::Other,
        },
        _ => KubeCgroup::Other,
    }
}

/// `stem` is the root slice's name without `.slice` (`kubepods`,
/// `kubelet-kubepods`): systemd names each child slice after its parent.
fn classify_systemd(stem: &str, rest: &[&str]) -> KubeCgroup {
    let driver = Driver::Systemd;
    let (qos, rest) = match rest.first().and_then(|p| {
        p.strip_prefix(stem)
            .and_then(|s| s.strip_prefix('-'))
            .and_then(|s| s.strip_suffix(".slice"))
            .and_then(Qos::from_name)
    }) {
        Some(qos) => (qos, &rest[1..]),
        None => (Qos::Guaranteed, rest),
    };
    let pod_of = |slice: &str| -> Option<String> {
        let name = slice.strip_suffix(".slice")?;
        let uid = name.rsplit_once("-pod")?.1;
        pod_uid(uid)
    };
    match rest {
        [] if qos == Qos::Guaranteed => KubeCgroup::Root { driver },
        [] => KubeCgroup::Qos { driver, qos },
        [pod] => match pod_of(pod) {
            Some(pod_uid) => KubeCgroup::Pod {
                driver,
                qos,
                pod_uid,
            },
            None => KubeCgroup::Other,
        },
        [pod, scope] => {
            let container = scope
                .strip_suffix(".scope")
                .and_then(|s| s.rsplit_once('-'))
                .filter(|(runtime, id)| is_container_id(id) && !runtime.ends_with("conmon"));
            match (pod_of(pod), container) {
                (Some(pod_uid), Some((runtime, id))) => KubeCgroup::Container {
                    driver,
                    qos,
                    pod_uid,
                    container_id: id.to_owned(),
                    runtime: runtime.to_owned(),
                },
                _ => KubeCgroup::Other,
            }
        }
        _ => KubeCgroup::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "5f0c3a1e-2b7d-4c9a-8e21-6d4f0b3c9a17";

    fn container(driver: Driver, qos: Qos, runtime: &str) -> KubeCgroup {
        KubeCgroup::Container {
            driver,
            qos,
            pod_uid: UID.into(),
            container_id: ID.into(),
            runtime: runtime.into(),
        }
    }

    #[test]
    fn cgroupfs_layouts() {
        let d = Driver::Cgroupfs;
        assert_eq!(classify("/kubepods"), Some(KubeCgroup::Root { driver: d }));
        assert_eq!(
            classify("/kubepods/besteffort"),
            Some(KubeCgroup::Qos {
                driver: d,
                qos: Qos::BestEffort
            })
        );
        assert_eq!(
            classify(&format!("/kubepods/burstable/pod{UID}")),
            Some(KubeCgroup::Pod {
                driver: d,
                qos: Qos::Burstable,
                pod_uid: UID.into()
            })
        );
        for (path, qos) in [
            (
                format!("/kubepods/besteffort/pod{UID}/{ID}"),
                Qos::BestEffort,
            ),
            (format!("/kubepods/burstable/pod{UID}/{ID}"), Qos::Burstable),
            (format!("/kubepods/pod{UID}/{ID}"), Qos::Guaranteed),
        ] {
            assert_eq!(classify(&path), Some(container(d, qos, "")), "{path}");
        }
    }

    #[test]
    fn systemd_layouts() {
        let d = Driver::Systemd;
        let u = UID.replace('-', "_");
        assert_eq!(
            classify("/kubepods.slice"),
            Some(KubeCgroup::Root { driver: d })
        );
        assert_eq!(
            classify("/kubepods.slice/kubepods-besteffort.slice"),
            Some(KubeCgroup::Qos {
                driver: d,
                qos: Qos::BestEffort
            })
        );
        for (path, qos, runtime) in [
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{ID}.scope"
                ),
                Qos::BestEffort,
                "cri-containerd",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/crio-{ID}.scope"
                ),
                Qos::Burstable,
                "crio",
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/docker-{ID}.scope"),
                Qos::Guaranteed,
                "docker",
            ),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{u}.slice/cri-containerd-{ID}.scope"
                ),
                Qos::BestEffort,
                "cri-containerd",
            ),
        ] {
            let got = classify(&path);
            assert_eq!(got, Some(container(d, qos, runtime)), "{path}");
        }
    }

    #[test]
    fn not_containers() {
        let u = UID.replace('-', "_");
        // CRI-O's monitor, a container's own sub-cgroup, junk ids.
        for path in [
            format!("/kubepods.slice/kubepods-pod{u}.slice/crio-conmon-{ID}.scope"),
            format!("/kubepods/pod{UID}/{ID}/nested"),
            format!("/kubepods/pod{UID}/not-an-id"),
            format!("/kubepods/podnot-a-uid/{ID}"),
            "/kubepods/besteffort/weird".to_owned(),
        ] {
            assert_eq!(classify(&path), Some(KubeCgroup::Other), "{path}");
        }
        assert_eq!(classify("/system.slice/containerd.service"), None);
        assert_eq!(classify("/"), None);
        assert_eq!(classify(""), None);
    }

    #[test]
    fn uppercase_and_underscored_uids_are_normalised() {
        let upper = UID.to_ascii_uppercase();
        let got = classify(&format!("/kubepods/pod{upper}/{ID}")).expect("a container path");
        assert_eq!(got.pod_uid(), Some(UID));
        assert_eq!(got.container_id(), Some(ID));
    }
}
