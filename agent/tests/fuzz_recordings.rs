//! Property tests of what the agent and `syscensus export` read from the
//! cluster and from files: ProfileRecording selectors (random operators,
//! missing values, thousands of terms, huge values), ContainerRecording and
//! ContainerProfile documents, the export source reader, and the paths
//! built from names. Nothing may panic or take unbounded time, and no name
//! may lead a path out of its directory.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeMap,
    path::{Component, Path},
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use proptest::{prelude::*, test_runner::Config};
use serde_json::{Value, json};
use syscensus::{
    container_recording::ContainerRecording,
    daemon::selection::{matches, selects, validate},
    export::{Entry, Filter, PlanOptions, file_entries, plan, recording_entry},
    localhost::{self, localhost_profile, profile_path, spec_profile_path},
    profile::Profile,
};
use syscensus_api::{ContainerProfileSpec, ProfileRecording, ProfileRecordingSpec, WorkloadKind};

/// A proptest configuration with `cases` cases (or `PROPTEST_CASES`) and no
/// regression files written into the source tree.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const KINDS: [WorkloadKind; 7] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::ReplicaSet,
    WorkloadKind::Job,
    WorkloadKind::CronJob,
    WorkloadKind::Pod,
];

/// A Kubernetes-ish name: valid most of the time, else one that tries to
/// leave a directory, holds a slash, a NUL, uppercase or non-ASCII
/// characters, or is far too long.
fn hostile_name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
        2 => "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,3}",
        1 => proptest::sample::select(vec![
            "", ".", "..", "../..", "/", "/etc", "a/b", "a/../b", "..a", "a..", "a\0b", "-a",
            "a-", "A", "a b", "é", "a\\b", "~", "*", "%2e%2e", "./a", "a/.",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z.]{250,300}",
        1 => any::<String>(),
    ]
    .boxed()
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-z]{1,3}", "[a-z]{0,3}", 0..5)
}

const OPERATORS: [&str; 8] = [
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "in",
    "",
    "Gt",
    "Exists ",
];

fn requirement() -> impl Strategy<Value = LabelSelectorRequirement> {
    (
        "[a-z]{1,3}",
        prop_oneof![
            8 => proptest::sample::select(OPERATORS.to_vec()).prop_map(str::to_owned),
            1 => any::<String>(),
        ],
        proptest::option::of(proptest::collection::vec("[a-z]{0,3}", 0..4)),
    )
        .prop_map(|(key, operator, values)| LabelSelectorRequirement {
            key,
            operator,
            values,
        })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    (
        proptest::option::of(label_map()),
        proptest::option::of(proptest::collection::vec(requirement(), 0..6)),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

fn well_formed(r: &LabelSelectorRequirement) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" | "NotIn" => !values.is_empty(),
        "Exists" | "DoesNotExist" => values.is_empty(),
        _ => false,
    }
}

/// Kubernetes' selector semantics, written out plainly.
fn reference(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().flatten().all(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            let present = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => present.is_some_and(|v| values.contains(v)),
                "NotIn" => present.is_none_or(|v| !values.contains(v)),
                "Exists" => present.is_some(),
                _ => present.is_none(),
            }
        })
}

fn spec_with(selector: LabelSelector) -> ProfileRecordingSpec {
    ProfileRecordingSpec {
        include_exec_sessions: false,
        pod_selector: selector,
        containers: Vec::new(),
        include_init_containers: true,
        base_set: None,
        paused: false,
    }
}

fn time() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("2024-05-01T10:00:00Z".to_owned()),
        "[0-9TZ:.+-]{0,25}",
        any::<String>(),
    ]
}

fn syscall_map() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
    proptest::collection::btree_map(
        prop_oneof![
            4 => proptest::sample::select(vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"]).prop_map(str::to_owned),
            1 => hostile_name(),
        ],
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(vec!["read", "write", "openat", "execve", "clone3"]).prop_map(str::to_owned),
                1 => hostile_name(),
            ],
            0..6,
        ),
        0..4,
    )
}

/// A ContainerRecording document (JSON) with random, sometimes hostile,
/// fields; now and then a field of the wrong type or missing.
fn recording_value() -> impl Strategy<Value = Value> {
    (
        (
            hostile_name(),
            proptest::option::of(hostile_name()),
            proptest::option::of(hostile_name()),
            proptest::option::of(hostile_name()),
            hostile_name(),
        ),
        (
            proptest::sample::select(vec!["Running", "Exited", "Paused"]),
            proptest::sample::select(vec!["Exec", "Late", ""]),
            time(),
            time(),
            proptest::option::of(time()),
        ),
        syscall_map(),
        proptest::collection::btree_map(any::<String>(), any::<String>(), 0..3),
        proptest::collection::vec(any::<String>(), 0..3),
        0u8..12,
    )
        .prop_map(
            |(
                (container_id, container_name, namespace, pod_name, cgroup),
                (state, start, first, last, last_new),
                syscalls,
                labels,
                warnings,
                damage,
            )| {
                let mut doc = json!({
                    "apiVersion": "syscensus.io/v1alpha1",
                    "kind": "ContainerRecording",
                    "containerId": container_id,
                    "cgroup": cgroup,
                    "state": state,
                    "start": start,
                    "firstSeen": first,
                    "lastSeen": last,
                    "syscalls": syscalls,
                    "labels": labels,
                    "warnings": warnings,
                    "profile": {
                        "defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [
                            { "names": ["capset"], "action": "SCMP_ACT_ALLOW", "comment": "runtime base set: runc-1.1" }
                        ],
                    },
                });
                if let Some(name) = container_name {
                    doc["containerName"] = json!(name);
                }
                if namespace.is_some() || pod_name.is_some() {
                    doc["pod"] = json!({ "uid": "u" });
                    if let Some(namespace) = namespace {
                        doc["pod"]["namespace"] = json!(namespace);
                    }
                    if let Some(pod_name) = pod_name {
                        doc["pod"]["name"] = json!(pod_name);
                    }
                }
                if let Some(t) = last_new {
                    doc["lastNewSyscall"] = json!(t);
                }
                match damage {
                    0 => doc["syscalls"] = json!([1, 2]),
                    1 => doc["profile"] = json!("not a profile"),
                    2 => {
                        doc.as_object_mut().unwrap().remove("containerId");
                    }
                    3 => doc["pod"] = json!(null),
                    4 => doc["labels"] = json!({ "a": 1 }),
                    _ => {}
                }
                doc
            },
        )
}

/// A ContainerProfile object (JSON) with random names and contents.
fn container_profile_value() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(hostile_name()),
        hostile_name(),
        prop_oneof![
            8 => proptest::sample::select(KINDS.iter().map(|k| k.as_str()).collect::<Vec<_>>()).prop_map(str::to_owned),
            1 => any::<String>(),
        ],
        hostile_name(),
        hostile_name(),
        syscall_map(),
        proptest::option::of((hostile_name(), proptest::collection::vec(hostile_name(), 0..3))),
        time(),
    )
        .prop_map(
            |(namespace, recording, kind, workload, container, syscalls, base, t)| {
                let mut doc = json!({
                    "apiVersion": "syscensus.io/v1alpha1",
                    "kind": "ContainerProfile",
                    "metadata": { "name": "p" },
                    "spec": {
                        "recording": recording,
                        "workload": { "kind": kind, "name": workload },
                        "container": container,
                        "syscalls": syscalls,
                        "syscallCount": 1,
                        "firstSeen": t,
                        "lastSeen": "2024-05-01T10:00:00Z",
                    },
                });
                if let Some(namespace) = namespace {
                    doc["metadata"]["namespace"] = json!(namespace);
                }
                if let Some((name, syscalls)) = base {
                    doc["spec"]["runtimeBaseSet"] = json!({ "name": name, "syscalls": syscalls });
                }
                doc
            },
        )
}

/// Whether `path` is relative and made of plain names only.
fn is_plain_relative(path: &Path) -> bool {
    path.is_relative() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

fn assert_contained(path: &str) {
    let path = Path::new(path);
    assert!(is_plain_relative(path), "{path:?} escapes its directory");
    for component in path.components() {
        let name = component.as_os_str().to_str().unwrap();
        assert!(!name.contains(['\0', '\\']), "{path:?}");
        assert!(name.len() <= 255, "{path:?}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Selectors with random operators and values: never a panic; a
    /// well-formed selector matches exactly as Kubernetes does; a malformed
    /// one never selects anything.
    #[test]
    fn selectors_match_like_kubernetes(selector in selector(), labels in label_map()) {
        let result = matches(&selector, &labels);
        let all_well_formed = selector.match_expressions.iter().flatten().all(well_formed);
        if all_well_formed {
            prop_assert_eq!(result, Ok(reference(&selector, &labels)));
        } else {
            prop_assert_ne!(result, Ok(true));
        }
        let spec = spec_with(selector);
        let _ = validate(&spec);
        let _ = selects(&spec, &labels, "c", false);
    }

    /// For any strings, `profile_path` either refuses or gives a relative
    /// path of plain components that ends in `<container>.json`; valid
    /// names always give one.
    #[test]
    fn profile_paths_never_escape(
        namespace in hostile_name(),
        kind in proptest::sample::select(KINDS.to_vec()),
        workload in hostile_name(),
        container in hostile_name(),
    ) {
        let valid = syscensus_api::validate_dns_label(&namespace).is_ok()
            && syscensus_api::validate_dns_subdomain(&workload).is_ok()
            && syscensus_api::validate_dns_label(&container).is_ok()
            && workload.len() + kind.as_str().len() < 255;
        match profile_path(&namespace, kind, &workload, &container) {
            Ok(path) => {
                prop_assert!(valid, "{:?} accepted", path);
                assert_contained(path.to_str().unwrap());
                prop_assert_eq!(path.components().count(), 3);
                prop_assert_eq!(path.file_name().unwrap().to_str().unwrap(), format!("{container}.json"));
                let localhost = localhost_profile(&namespace, kind, &workload, &container).unwrap();
                prop_assert!(localhost.starts_with("syscensus/"));
                assert_contained(&localhost);
            }
            Err(error) => {
                prop_assert!(!valid, "{} refused: {}", namespace, error);
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Arbitrary JSON never panics the ContainerRecording reader; what
    /// reads survives `to_json`; its export path never escapes.
    #[test]
    fn container_recordings(doc in recording_value()) {
        let Ok(recording) = serde_json::from_value::<ContainerRecording>(doc) else {
            return Ok(());
        };
        let again: ContainerRecording = serde_json::from_str(&recording.to_json()).unwrap();
        prop_assert_eq!(&again, &recording);
        if let Some(entry) = recording_entry(&recording) {
            if let Ok(path) = spec_profile_path(&entry.namespace, &entry.spec) {
                assert_contained(path.to_str().unwrap());
            }
            let _ = localhost::render(&entry.spec);
        }
    }

    /// Files of ContainerProfiles, ContainerRecordings, Lists and other
    /// documents, as `syscensus export --from` reads them: never a panic,
    /// and the export planned from them writes only inside its directory.
    #[test]
    fn export_sources(
        docs in proptest::collection::vec(
            prop_oneof![
                3 => container_profile_value(),
                2 => recording_value(),
                1 => proptest::collection::vec(container_profile_value(), 0..3)
                    .prop_map(|items| json!({ "apiVersion": "v1", "kind": "List", "items": items })),
                1 => Just(json!({ "apiVersion": "v1", "kind": "ConfigMap" })),
                1 => Just(json!("a string")),
            ],
            0..4,
        ),
        yaml in any::<bool>(),
        spo in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(if yaml { "profiles.yaml" } else { "profiles.json" });
        let text = if yaml {
            docs.iter().map(|d| serde_norway::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n")
        } else {
            serde_json::to_string(&json!({ "apiVersion": "v1", "kind": "List", "items": docs })).unwrap()
        };
        std::fs::write(&file, text).unwrap();
        for source in [file.as_path(), dir.path()] {
            let Ok(entries) = file_entries(source, &Filter::default()) else {
                continue;
            };
            if let Ok(plan) = plan(entries, None, &PlanOptions { spo, ..Default::default() }) {
                for path in plan.files.keys() {
                    assert_contained(path);
                }
            }
        }
    }

    /// ContainerProfile specs with random syscall maps render without a
    /// panic; with known names the file parses back to the same names.
    #[test]
    fn rendered_profiles(doc in container_profile_value()) {
        let Ok(spec) = serde_json::from_value::<ContainerProfileSpec>(doc["spec"].clone()) else {
            return Ok(());
        };
        let text = localhost::render(&spec);
        let known = spec.syscalls.iter().all(|(arch, names)| {
            syscensus::syscalls::Arch::from_scmp_name(arch).is_some()
                && names.iter().all(|n| syscensus::syscalls::is_known(n))
        }) && spec.runtime_base_set.as_ref().is_none_or(|b| {
            b.syscalls.iter().all(|n| syscensus::syscalls::is_known(n))
        });
        if known {
            let parsed = Profile::parse(&text, Path::new("rendered.json"), None);
            prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed, text);
        }
    }

    /// ProfileRecording documents with bad selectors read without a panic,
    /// and the agent's checks answer.
    #[test]
    fn profile_recording_documents(
        selector in selector(),
        containers in proptest::collection::vec(hostile_name(), 0..4),
        base_set in proptest::option::of(hostile_name()),
        labels in label_map(),
    ) {
        let doc = json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "ProfileRecording",
            "metadata": { "name": "r", "namespace": "n" },
            "spec": {
                "podSelector": selector,
                "containers": containers,
                "baseSet": base_set,
            },
        });
        let recording: ProfileRecording = serde_json::from_value(doc).unwrap();
        let _ = validate(&recording.spec);
        for container in &recording.spec.containers {
            let _ = selects(&recording.spec, &labels, container, true);
        }
    }
}

fn requirement_of(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

/// Hostile ProfileRecordings: 10,000 match expressions, a 1 MB label
/// value, 100,000 container names, an unknown operator at the very end.
/// The checks answer in bounded time, and errors say what is wrong.
#[test]
fn hostile_recordings_are_bounded() {
    let huge = "v".repeat(1 << 20);
    let mut expressions: Vec<LabelSelectorRequirement> = (0..10_000)
        .map(|i| requirement_of(&format!("k{i}"), "NotIn", &["a", "b", &huge[..100]]))
        .collect();
    let containers: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let mut labels: BTreeMap<String, String> = (0..1_000)
        .map(|i| (format!("k{i}"), format!("x{i}")))
        .collect();
    labels.insert("app".to_owned(), huge.clone());
    let mut match_labels = BTreeMap::new();
    match_labels.insert("app".to_owned(), huge.clone());
    let mut spec = ProfileRecordingSpec {
        include_exec_sessions: false,
        pod_selector: LabelSelector {
            match_labels: Some(match_labels),
            match_expressions: Some(expressions.clone()),
        },
        containers: containers.clone(),
        include_init_containers: true,
        base_set: Some(huge.clone()),
        paused: false,
    };
    let started = Instant::now();
    validate(&spec).unwrap();
    assert!(selects(&spec, &labels, "c99999", false).unwrap());
    assert!(!selects(&spec, &labels, "c100000", false).unwrap());

    // The same, round-tripped through JSON as the API server sends it.
    let doc = json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": { "name": "r", "namespace": "n" },
        "spec": spec,
    });
    let recording: ProfileRecording = serde_json::from_str(&doc.to_string()).unwrap();
    assert!(selects(&recording.spec, &labels, "c5", false).unwrap());

    // An unknown operator after 10,000 good terms: an error naming it.
    expressions.push(requirement_of("zone", "Matches", &["a"]));
    spec.pod_selector.match_expressions = Some(expressions);
    let error = selects(&spec, &labels, "c5", false).unwrap_err();
    assert!(
        error.to_string().contains("unknown operator \"Matches\""),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Every malformed term is an error of its own, whatever the labels.
#[test]
fn malformed_terms_are_errors() {
    let labels: BTreeMap<String, String> = [("a".to_owned(), "x".to_owned())].into();
    for (term, words) in [
        (requirement_of("a", "In", &[]), "In on a needs values"),
        (requirement_of("a", "NotIn", &[]), "NotIn on a needs values"),
        (requirement_of("a", "Exists", &["x"]), "takes no values"),
        (
            requirement_of("a", "DoesNotExist", &["x"]),
            "takes no values",
        ),
        (requirement_of("a", "in", &["x"]), "unknown operator \"in\""),
        (requirement_of("a", "", &[]), "unknown operator \"\""),
    ] {
        let spec = spec_with(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![term]),
        });
        let error = validate(&spec).unwrap_err().to_string();
        assert!(error.contains(words), "{error}");
        assert!(selects(&spec, &labels, "c", false).is_err());
    }
}

/// A malformed term behind `matchLabels` or behind an `In` term is found
/// by `validate` too: were it not, the recording would show phase
/// Recording, condition Valid, while every Pod it should select is skipped
/// (`selects(..).unwrap_or(false)`).
#[test]
fn validate_checks_every_term() {
    let bad = requirement_of("zone", "Matches", &["a"]);
    let behind_labels = spec_with(LabelSelector {
        match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
        match_expressions: Some(vec![bad.clone()]),
    });
    let behind_in = spec_with(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![requirement_of("app", "In", &["web"]), bad]),
    });
    for spec in [behind_labels, behind_in] {
        assert!(validate(&spec).is_err(), "{:?}", spec.pod_selector);
    }
}

/// A ContainerProfile that an approver labels approved is installed by
/// every node's agent. With an unknown architecture or syscall name in
/// `spec.syscalls` (the CRD does not restrict them) the file would be one
/// that no runtime, nor `syscensus run`, accepts, and Pods using it would
/// fail to start: `check_spec`, which the installer and exports call,
/// refuses it, naming the problem; what it accepts renders into a profile
/// that parses.
#[test]
fn unknown_names_are_not_installed() {
    let doc = json!({
        "recording": "r",
        "workload": { "kind": "Deployment", "name": "web" },
        "container": "nginx",
        "syscalls": { "SCMP_ARCH_BOGUS": ["read"], "SCMP_ARCH_X86_64": ["no_such_syscall"] },
        "syscallCount": 2,
        "firstSeen": "2024-05-01T10:00:00Z",
        "lastSeen": "2024-05-01T10:00:00Z",
    });
    let mut spec: ContainerProfileSpec = serde_json::from_value(doc).unwrap();
    let error = localhost::check(&spec).unwrap_err();
    assert!(error.contains("SCMP_ARCH_BOGUS"), "{error}");
    spec.syscalls.remove("SCMP_ARCH_BOGUS");
    let error = localhost::check(&spec).unwrap_err();
    assert!(error.contains("no_such_syscall"), "{error}");
    spec.syscalls.insert(
        "SCMP_ARCH_X86_64".into(),
        vec!["read".into(), "write".into()],
    );
    localhost::check(&spec).unwrap();
    Profile::parse(&localhost::render(&spec), Path::new("installed.json"), None).unwrap();
}

/// Entries with names that try to leave the export directory are refused
/// with an error naming the field.
#[test]
fn traversal_names_are_refused() {
    let spec = |workload: &str, container: &str| -> ContainerProfileSpec {
        serde_json::from_value(json!({
            "recording": "r",
            "workload": { "kind": "Pod", "name": workload },
            "container": container,
            "syscalls": { "SCMP_ARCH_X86_64": ["read"] },
            "syscallCount": 1,
            "firstSeen": "2024-05-01T10:00:00Z",
            "lastSeen": "2024-05-01T10:00:00Z",
        }))
        .unwrap()
    };
    for (namespace, workload, container, what) in [
        ("..", "web", "c", "namespace"),
        ("ns", "../../etc", "c", "workload name"),
        ("ns", "web", "../passwd", "container name"),
        ("ns", "web", "a/b", "container name"),
        ("ns/../..", "web", "c", "namespace"),
        ("ns", "..", "c", "workload name"),
        ("ns", "web", "", "container name"),
    ] {
        let entry = Entry {
            namespace: namespace.to_owned(),
            spec: spec(workload, container),
        };
        let error = plan(
            vec![entry],
            None,
            &PlanOptions {
                spo: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains(what), "{error}");
    }
}

/// The fuzz targets' seeds (fuzz/seeds/) are documents the readers take,
/// so that fuzzing starts from valid input.
#[test]
fn fuzz_seeds_read() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let recording = std::fs::read(seeds.join("container_recording/exited.json")).unwrap();
    let recording: ContainerRecording = serde_json::from_slice(&recording).unwrap();
    assert!(recording_entry(&recording).is_some());
    for file in ["containerprofile.yaml", "list.json", "recording.json"] {
        let entries = file_entries(&seeds.join("export_source").join(file), &Filter::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!entries.is_empty(), "{file}");
        plan(
            entries,
            None,
            &PlanOptions {
                spo: true,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(seeds.join("crd_objects/profilerecording.yaml")).unwrap();
    let recording: ProfileRecording = serde_norway::from_str(&text).unwrap();
    validate(&recording.spec).unwrap();
    let text =
        std::fs::read_to_string(seeds.join("crd_objects/profilerecording-empty.json")).unwrap();
    let recording: ProfileRecording = serde_json::from_str(&text).unwrap();
    validate(&recording.spec).unwrap();
}
