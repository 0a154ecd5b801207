//! What the server counted, for measurements of the load clients put on
//! it: requests by verb, resource and status, and the events each watch
//! sent. Counted by the server as it answers, not by the clients.
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{FakeApiServer, Gvr, lock};

/// Requests of one verb on one resource answered with one status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    /// The verb as RBAC names it: `get`, `list`, `watch`, `create`,
    /// `update`, `patch`, `delete`, `deletecollection`; empty for paths
    /// outside the resources (discovery).
    pub verb: String,
    /// `pods`, `containerprofiles.syscensus.io`, with `/status` for the
    /// status subresource; empty for paths outside the resources.
    pub resource: String,
    /// The HTTP status of the response (200 for a watch that started).
    pub status: u16,
}

impl RequestKind {
    /// Whether the request asked to change something (create, update,
    /// patch, delete), whether or not it succeeded.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// Whether the server answered it with success (2xx).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One watch stream the server served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchCount {
    /// `pods`, `profilerecordings.syscensus.io`, ...
    pub resource: String,
    /// The namespace (empty: all) and the selectors it asked for, as
    /// `namespace?labelSelector=...&fieldSelector=...`.
    pub scope: String,
    /// Events of the starting state: one ADDED per object when it started
    /// without a resourceVersion.
    pub initial: u64,
    /// Events of changes after its start (ADDED, MODIFIED, DELETED;
    /// bookmarks and errors are not counted).
    pub changes: u64,
    /// Bytes of those events (initial and changes).
    pub bytes: u64,
}

/// What the server counted since it started or since
/// [`FakeApiServer::reset_counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests, by verb, resource and status.
    pub requests: BTreeMap<RequestKind, u64>,
    /// Every watch stream served, in the order they started (those that
    /// started before a reset count from the reset).
    pub watches: Vec<WatchCount>,
}

impl Counters {
    /// Requests matching `f`.
    pub fn count(&self, f: impl Fn(&RequestKind) -> bool) -> u64 {
        self.requests
            .iter()
            .filter(|(kind, _)| f(kind))
            .map(|(_, n)| n)
            .sum()
    }

    /// Writes the server carried out (a write request answered with
    /// success).
    pub fn writes(&self) -> u64 {
        self.count(|k| k.is_write() && k.succeeded())
    }

    /// Write requests refused with 409 Conflict (a stale resourceVersion
    /// or an object that already exists).
    pub fn conflicts(&self) -> u64 {
        self.count(|k| k.is_write() && k.status == 409)
    }
}

/// The counts of one watch stream, updated as it sends.
#[derive(Debug)]
pub(crate) struct WatchStat {
    pub(crate) resource: String,
    pub(crate) scope: String,
    pub(crate) initial: AtomicU64,
    pub(crate) changes: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl WatchStat {
    pub(crate) fn sent(&self, initial: bool, bytes: usize) {
        let counter = if initial {
            &self.initial
        } else {
            &self.changes
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The counters as the server keeps them.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) requests: BTreeMap<RequestKind, u64>,
    pub(crate) watches: Vec<Arc<WatchStat>>,
}

/// The verb and resource of a request (see [`RequestKind`]).
pub(crate) fn classify(method: &str, path: &str, watch: bool) -> (String, String) {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return (String::new(), String::new()),
    };
    let rest = match rest {
        ["namespaces", _namespace, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    let (resource, subresource, named) = match rest {
        [resource] => (*resource, None, false),
        [resource, _name] => (*resource, None, true),
        [resource, _name, sub] => (*resource, Some(*sub), true),
        _ => return (String::new(), String::new()),
    };
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => other,
    };
    let mut resource = Gvr::new(group, "", resource).group_resource();
    if let Some(sub) = subresource {
        resource = format!("{resource}/{sub}");
    }
    (verb.to_owned(), resource)
}

impl FakeApiServer {
    /// What the server counted since it started or since the last
    /// [`FakeApiServer::reset_counters`].
    pub fn counters(&self) -> Counters {
        let tally = lock(&self.shared.tally);
        Counters {
            requests: tally.requests.clone(),
            watches: tally
                .watches
                .iter()
                .map(|w| WatchCount {
                    resource: w.resource.clone(),
                    scope: w.scope.clone(),
                    initial: w.initial.load(Ordering::Relaxed),
                    changes: w.changes.load(Ordering::Relaxed),
                    bytes: w.bytes.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    /// Starts counting again from zero; open watches stay listed, with
    /// their counts from now on.
    pub fn reset_counters(&self) {
        let mut tally = lock(&self.shared.tally);
        tally.requests.clear();
        for w in &tally.watches {
            w.initial.store(0, Ordering::Relaxed);
            w.changes.store(0, Ordering::Relaxed);
            w.bytes.store(0, Ordering::Relaxed);
        }
    }

    /// Whether to keep the request log ([`FakeApiServer::requests`]); on
    /// by default. Off, a long measurement does not hold every request
    /// body in memory; the counters count either way.
    pub fn set_request_log(&self, on: bool) {
        self.shared.log_requests.store(on, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn requests_are_classified_as_rbac_names_them() {
        let cases = [
            ("GET", "/api/v1/namespaces/a/pods", false, "list", "pods"),
            ("GET", "/api/v1/pods", true, "watch", "pods"),
            ("GET", "/api/v1/namespaces/a", false, "get", "namespaces"),
            (
                "PATCH",
                "/apis/syscensus.io/v1alpha1/namespaces/a/profilerecordings/r/status",
                false,
                "patch",
                "profilerecordings.syscensus.io/status",
            ),
            (
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/a/leases",
                false,
                "create",
                "leases.coordination.k8s.io",
            ),
            ("GET", "/version", false, "", ""),
        ];
        for (method, path, watch, verb, resource) in cases {
            assert_eq!(
                classify(method, path, watch),
                (verb.to_owned(), resource.to_owned()),
                "{method} {path}"
            );
        }
    }
}
