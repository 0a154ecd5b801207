//! Kubernetes Events (`events.k8s.io/v1`) this node posts on
//! ProfileRecordings and ContainerProfiles, and when: what happened is an
//! [`Occurrence`]; this module folds repeats into Event series and bounds
//! what one node writes, so that 5,000 nodes cannot flood the API server.
//!
//! - An occurrence starts a series (one Event object, created at once) or,
//!   when the same thing (object, reason, note) happened within
//!   [`SERIES_WINDOW`] of the series' last occurrence, counts in it.
//! - A series' count is written (`series.count`, `series.lastObservedTime`)
//!   at once for its first repeat, then at most every [`SERIES_INTERVAL`].
//! - Every write takes a token from the node's bucket: [`BURST`] at once,
//!   then one per [`REFILL`]. Writes wait for a token; at most
//!   [`MAX_SERIES`] series are kept, and an occurrence beyond that is
//!   dropped (and counted).
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tracing::debug;

use super::{Chosen, Decision, Machine, Now};
use crate::daemon::contribution::Key;

mod series;

pub(super) use series::Events;

/// A repeat within this of a series' last occurrence counts in it;
/// later, it starts a new Event.
pub const SERIES_WINDOW: Duration = Duration::from_secs(30 * 60);
/// A series' count is written at most this often (its first repeat at
/// once).
pub const SERIES_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Writes a node may make at once...
pub const BURST: u32 = 10;
/// ...and then one per this.
pub const REFILL: Duration = Duration::from_secs(60);
/// Series kept at once (pending or recent).
pub const MAX_SERIES: usize = 256;
/// A ContainerProfile whose syscalls did not grow for this long looked
/// converged: new syscalls then are worth an Event.
pub const QUIET: Duration = Duration::from_secs(60 * 60);

/// Why an Event is posted (its `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// This node started recording containers for a ProfileRecording.
    RecordingStarted,
    /// A ContainerProfile that had not grown for [`QUIET`] grew.
    NewSyscallsAfterQuiet,
    /// This node installed an approved profile.
    ProfileInstalled,
    /// This node refused to install an approved profile.
    ProfileRefused,
    /// An installed profile refused a syscall to a container for the first
    /// time (on the Pod, and on its LocalhostProfile).
    SyscallRefused,
}

impl Reason {
    /// Every reason: the label values of the metric.
    pub const ALL: [Reason; 5] = [
        Reason::RecordingStarted,
        Reason::NewSyscallsAfterQuiet,
        Reason::ProfileInstalled,
        Reason::ProfileRefused,
        Reason::SyscallRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RecordingStarted => "RecordingStarted",
            Reason::NewSyscallsAfterQuiet => "NewSyscallsAfterQuiet",
            Reason::ProfileInstalled => "ProfileInstalled",
            Reason::ProfileRefused => "ProfileRefused",
            Reason::SyscallRefused => "SyscallRefused",
        }
    }

    /// What the agent did (the Event's `action`).
    pub fn action(self) -> &'static str {
        match self {
            Reason::RecordingStarted => "Record",
            Reason::NewSyscallsAfterQuiet => "Merge",
            Reason::ProfileInstalled | Reason::ProfileRefused => "Install",
            Reason::SyscallRefused => "Enforce",
        }
    }

    /// `Warning` rather than `Normal`: a profile that may be incomplete
    /// (in git, or installed), or one that is not installed.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Reason::NewSyscallsAfterQuiet | Reason::ProfileRefused | Reason::SyscallRefused
        )
    }
}

/// The kind of object an Event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ProfileRecording,
    ContainerProfile,
    LocalhostProfile,
    Pod,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ProfileRecording => "ProfileRecording",
            Kind::ContainerProfile => "ContainerProfile",
            Kind::LocalhostProfile => "LocalhostProfile",
            Kind::Pod => "Pod",
        }
    }

    /// The `apiVersion` of objects of this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Pod => "v1",
            _ => "syscensus.io/v1alpha1",
        }
    }
}

/// The object an Event is about (its `regarding`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Regarding {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// `kubectl describe` finds an object's Events by its UID.
    pub uid: Option<String>,
}

/// Something that happened, worth an Event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Occurrence {
    pub regarding: Regarding,
    pub reason: Reason,
    /// One line, at most [`MAX_NOTE`] bytes.
    pub note: String,
}

/// The API server's limit on an Event's note.
pub const MAX_NOTE: usize = 1024;

impl Occurrence {
    pub fn new(regarding: Regarding, reason: Reason, note: &str) -> Occurrence {
        let mut note = note.replace('\n', " ");
        if note.len() > MAX_NOTE {
            let mut end = MAX_NOTE - 3;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
            note.push_str("...");
        }
        Occurrence {
            regarding,
            reason,
            note,
        }
    }
}

/// A write the shell makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventWrite {
    /// Create the Event `name` for `occurrence`, first seen at `first`;
    /// with a `series` when it happened again before it could be created.
    Create {
        name: String,
        occurrence: Occurrence,
        first: jiff::Timestamp,
        series: Option<(u32, jiff::Timestamp)>,
    },
    /// Set the series (count, last observed) of the Event `name`.
    Series {
        name: String,
        namespace: String,
        count: u32,
        last: jiff::Timestamp,
    },
}

impl EventWrite {
    /// The Event's name.
    pub fn name(&self) -> &str {
        match self {
            EventWrite::Create { name, .. } | EventWrite::Series { name, .. } => name,
        }
    }
}

/// Why a write failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFailure {
    /// The Event is gone (404: expired by the API server's event TTL).
    Gone,
    /// The Event exists already (409 on create: an earlier create went
    /// through).
    Exists,
    /// Anything else; tried again later.
    Other(String),
}

/// An approved profile this node installed or refused (from the
/// installer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installation {
    /// Written to the kubelet's seccomp directory, as `path` (the
    /// `localhostProfile`), with new bytes.
    Installed { profile: Regarding, path: String },
    /// Not installed, for `reason`; said once per reason.
    Refused { profile: Regarding, reason: String },
}

/// What a write added to a ContainerProfile that existed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub key: Key,
    pub uid: Option<String>,
    /// Syscalls the profile did not have, per architecture.
    pub added: BTreeMap<String, Vec<String>>,
    /// When its syscalls last grew before (else when it was first seen).
    pub quiet_since: Option<jiff::Timestamp>,
}

/// Syscall names a note lists at most.
const NOTE_NAMES: usize = 20;

/// The Event for syscalls added to a profile that had not grown for
/// [`QUIET`], if it had not.
pub(super) fn after_quiet(learned: &Learned, node: &str, now: Now) -> Option<Occurrence> {
    let count: usize = learned.added.values().map(Vec::len).sum();
    let quiet = now.time.duration_since(learned.quiet_since?);
    let quiet = Duration::try_from(quiet).ok()?;
    if count == 0 || quiet < QUIET {
        return None;
    }
    let mut listed = 0;
    let mut groups = Vec::new();
    for (arch, names) in &learned.added {
        let take: Vec<&str> = names
            .iter()
            .take(NOTE_NAMES - listed)
            .map(String::as_str)
            .collect();
        if take.is_empty() {
            break;
        }
        listed += take.len();
        groups.push(format!("{arch}: {}", take.join(" ")));
    }
    let more = if count > listed {
        format!(" and {} more", count - listed)
    } else {
        String::new()
    };
    let note = format!(
        "{count} new syscall(s) after {} without any, recorded on node {node}: {}{more}",
        human(quiet),
        groups.join("; ")
    );
    Some(Occurrence::new(
        Regarding {
            kind: Kind::ContainerProfile,
            namespace: learned.key.namespace.clone(),
            name: learned.key.object_name(),
            uid: learned.uid.clone(),
        },
        Reason::NewSyscallsAfterQuiet,
        &note,
    ))
}

impl Machine {
    pub(super) fn observe_event(&mut self, occurrence: Occurrence, now: Now) {
        if let Some(events) = self.events.as_mut() {
            debug!(
                reason = occurrence.reason.as_str(),
                object = %occurrence.regarding.name,
                note = %occurrence.note,
                "event"
            );
            events.observe(occurrence, now);
        }
    }

    pub(super) fn node(&self) -> String {
        self.config
            .kube
            .as_ref()
            .map(|k| k.node.clone())
            .unwrap_or_default()
    }

    /// Recordings (namespace, name) with a chosen container on this node.
    pub(super) fn recordings_here(&self) -> BTreeSet<(String, String)> {
        self.containers
            .values()
            .filter_map(|c| match &c.decision {
                Decision::Chosen(chosen) => Some(chosen),
                _ => None,
            })
            .flat_map(|chosen| {
                chosen
                    .keys
                    .iter()
                    .map(|k| (k.namespace.clone(), k.recording.clone()))
            })
            .collect()
    }

    /// A container was chosen: each of its recordings that recorded
    /// nothing on this node (`here`) starts here now.
    pub(super) fn recording_started(
        &mut self,
        chosen: &Chosen,
        here: &mut BTreeSet<(String, String)>,
        now: Now,
    ) {
        let node = self.node();
        for key in &chosen.keys {
            let id = (key.namespace.clone(), key.recording.clone());
            if !here.insert(id) {
                continue;
            }
            let uid = self
                .round
                .as_ref()
                .and_then(|r| r.cluster())
                .and_then(|c| {
                    c.recordings
                        .iter()
                        .find(|r| r.namespace == key.namespace && r.name == key.recording)
                })
                .and_then(|r| r.uid.clone());
            let occurrence = Occurrence::new(
                Regarding {
                    kind: Kind::ProfileRecording,
                    namespace: key.namespace.clone(),
                    name: key.recording.clone(),
                    uid,
                },
                Reason::RecordingStarted,
                &format!("recording containers on node {node}"),
            );
            self.observe_event(occurrence, now);
        }
    }

    /// What the writes of ContainerProfiles added: new syscalls in a
    /// profile that looked converged.
    pub(super) fn on_learned(&mut self, learned: Vec<Learned>, now: Now) {
        let node = self.node();
        for learned in learned {
            if let Some(occurrence) = after_quiet(&learned, &node, now) {
                self.observe_event(occurrence, now);
            }
        }
    }

    pub(super) fn on_installations(&mut self, installations: Vec<Installation>, now: Now) {
        let node = self.node();
        for installation in installations {
            let occurrence = match installation {
                Installation::Installed { profile, path } => Occurrence::new(
                    profile,
                    Reason::ProfileInstalled,
                    &format!("installed on node {node} as {path}"),
                ),
                Installation::Refused { profile, reason } => Occurrence::new(
                    profile,
                    Reason::ProfileRefused,
                    &format!("not installed on node {node}: {reason}"),
                ),
            };
            self.observe_event(occurrence, now);
        }
    }
}

/// A name of its own for an Event: the object's name (cut to fit) and 16
/// hex digits of what makes the series (node, object, reason, note, first
/// time), as client-go names its Events.
fn event_name(occurrence: &Occurrence, node: &str, first: jiff::Timestamp) -> String {
    use sha2::Digest as _;
    let r = &occurrence.regarding;
    let mut hash = sha2::Sha256::new();
    for part in [
        node,
        r.kind.as_str(),
        &r.namespace,
        &r.name,
        r.uid.as_deref().unwrap_or(""),
        occurrence.reason.as_str(),
        &occurrence.note,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(first.as_nanosecond().to_le_bytes());
    let digest = hash.finalize();
    let suffix: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    // A DNS subdomain of at most 253 characters: the name, a dot, 16 hex.
    let mut prefix: String = r.name.chars().take(253 - 17).collect();
    while prefix.ends_with(['.', '-']) {
        prefix.pop();
    }
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}.{suffix}")
    }
}

/// The Event's `reportingInstance` for `node`: the API server takes at
/// most 128 characters, node names may have 253.
pub fn reporting_instance(node: &str) -> String {
    if node.len() <= 128 {
        return node.to_owned();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(node.as_bytes());
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let head: String = node.chars().take(119).collect();
    format!("{head}-{suffix}")
}

/// A duration as people read it: `2h14m`, `45m`, `3d4h`.
pub fn human(duration: Duration) -> String {
    let minutes = duration.as_secs() / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, minutes) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}
