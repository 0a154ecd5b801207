//! Hostile custom resources: what the generated CRD schema lets through to
//! the agents, checked by validating documents against it the way the API
//! server does (types, required fields, enums, lengths, item counts,
//! patterns); which fields that take outside input have no bound at all;
//! and that any JSON or YAML deserializes into the API types or fails,
//! without a panic.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, OnceLock},
};

use proptest::{prelude::*, test_runner::Config};
use regex::Regex;
use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, ProfileRecording, crds};

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

/// The `openAPIV3Schema` of the CRD of `kind`.
fn schema(kind: &str) -> &'static Value {
    static SCHEMAS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        crds()
            .into_iter()
            .map(|crd| {
                let kind = crd.spec.names.kind.clone();
                let crd = serde_json::to_value(crd).unwrap();
                (
                    kind,
                    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone(),
                )
            })
            .collect()
    });
    &schemas[kind]
}

/// Whether `text` matches `pattern` (compiled once).
fn is_match(pattern: &str, text: &str) -> bool {
    static REGEXES: OnceLock<Mutex<BTreeMap<String, Regex>>> = OnceLock::new();
    let mut regexes = REGEXES.get_or_init(Mutex::default).lock().unwrap();
    regexes
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).unwrap())
        .is_match(text)
}

/// The API server's `date-time` format check (kube-openapi's
/// `strfmt.IsDateTime`): case-blind, a calendar date before the first `t`,
/// and after it hours, minutes, seconds, any fraction (after any one
/// character: the server's pattern leaves its dot unescaped) and a `z` or
/// `±hh:mm` offset.
fn is_date_time(text: &str) -> bool {
    let lower = text.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if text.len() < 4 || parts.len() < 2 {
        return false;
    }
    let (date, time) = (parts[0], parts[1]);
    if !is_match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", date) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| date[range].parse::<i8>().unwrap_or(0);
    let year = date[..4].parse::<i16>().unwrap();
    if k8s_openapi::jiff::civil::Date::new(year, number(5..7), number(8..10)).is_err() {
        return false;
    }
    is_match(
        r"^[0-9]{2}:[0-9]{2}:[0-9]{2}(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
        time,
    ) && &time[..2] <= "23"
        && &time[3..5] <= "59"
        && &time[6..8] <= "59"
}

/// Validates `doc` against an OpenAPI v3 structural schema as the API
/// server does for the keywords the generated schemas use; unknown fields
/// are pruned by the server, so they pass here.
fn check(schema: &Value, doc: &Value, path: &str, errors: &mut Vec<String>) {
    if doc.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!("{path}: null"));
        }
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "string" => doc.is_string(),
        "integer" => doc.is_i64() || doc.is_u64(),
        "number" => doc.is_number(),
        "boolean" => doc.is_boolean(),
        "array" => doc.is_array(),
        "object" => doc.is_object(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{path}: not a {ty}"));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(doc)
    {
        errors.push(format!("{path}: not one of {values:?}"));
    }
    if let Some(text) = doc.as_str() {
        let chars = text.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|max| chars > max) {
            errors.push(format!("{path}: longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|min| chars < min) {
            errors.push(format!("{path}: shorter than {}", schema["minLength"]));
        }
        if let Some(pattern) = schema["pattern"].as_str()
            && !is_match(pattern, text)
        {
            errors.push(format!("{path}: does not match {pattern}"));
        }
        if schema["format"] == "date-time" && !is_date_time(text) {
            errors.push(format!("{path}: not a date-time"));
        }
    }
    if let Some(items) = doc.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|max| items.len() as u64 > max)
        {
            errors.push(format!("{path}: more than {} items", schema["maxItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(object) = doc.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{path}.{}: required", required.as_str().unwrap()));
            }
        }
        if schema["maxProperties"]
            .as_u64()
            .is_some_and(|max| object.len() as u64 > max)
        {
            errors.push(format!(
                "{path}: more than {} properties",
                schema["maxProperties"]
            ));
        }
        for (key, value) in object {
            let property = &schema["properties"][key];
            if property.is_object() {
                check(property, value, &format!("{path}.{key}"), errors);
            } else if schema["additionalProperties"].is_object() {
                check(
                    &schema["additionalProperties"],
                    value,
                    &format!("{path}.{key}"),
                    errors,
                );
            }
        }
    }
}

fn errors(kind: &str, doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema(kind), doc, "", &mut errors);
    errors
}

fn recording(spec: Value) -> Value {
    json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": { "name": "r", "namespace": "n" },
        "spec": spec,
    })
}

fn profile(spec_changes: Value) -> Value {
    let mut spec = json!({
        "recording": "rec",
        "workload": { "kind": "Deployment", "name": "web" },
        "container": "nginx",
        "syscalls": { "SCMP_ARCH_X86_64": ["read"] },
        "syscallCount": 1,
        "firstSeen": "2024-05-01T10:00:00Z",
        "lastSeen": "2024-05-01T10:00:00Z",
    });
    for (key, value) in spec_changes.as_object().unwrap() {
        spec[key] = value.clone();
    }
    json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ContainerProfile",
        "metadata": { "name": "p", "namespace": "n" },
        "spec": spec,
    })
}

/// Every string, array and map in `schema` below `path` that has no bound:
/// a string with neither maxLength nor enum (nor a date-time format), an
/// array without maxItems, a map without maxProperties.
fn unbounded(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    match schema["type"].as_str() {
        Some("string")
            if schema["maxLength"].is_null()
                && schema["enum"].is_null()
                && schema["format"] != json!("date-time") =>
        {
            out.insert(path.to_owned());
        }
        Some("array") => {
            if schema["maxItems"].is_null() {
                out.insert(path.to_owned());
            }
            unbounded(&schema["items"], &format!("{path}[]"), out);
        }
        Some("object") => {
            if schema["additionalProperties"].is_object() {
                if schema["maxProperties"].is_null() {
                    out.insert(path.to_owned());
                }
                unbounded(&schema["additionalProperties"], &format!("{path}{{}}"), out);
            }
            for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                unbounded(property, &format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

/// The fields of `spec` (written by users, or by every node's agent) that
/// the schema leaves unbounded: the API server's request limit (3 MiB) and
/// etcd's object limit (1.5 MiB) are their only bound. The selector's come
/// from k8s-openapi's LabelSelector. A field that gains a bound comes off
/// this list; a new field must be bounded or listed here.
const UNBOUNDED: [&str; 21] = [
    "ContainerProfile.spec.runtimeBaseSet.name",
    "ContainerProfile.spec.runtimeBaseSet.syscalls",
    "ContainerProfile.spec.runtimeBaseSet.syscalls[]",
    "ContainerProfile.spec.sessionOnlySyscalls",
    "ContainerProfile.spec.sessionOnlySyscalls{}",
    "ContainerProfile.spec.sessionOnlySyscalls{}[]",
    "ContainerProfile.spec.sessions[].syscalls",
    "ContainerProfile.spec.sessions[].syscalls{}",
    "ContainerProfile.spec.sessions[].syscalls{}[]",
    "ContainerProfile.spec.syscalls",
    "ContainerProfile.spec.syscalls{}",
    "ContainerProfile.spec.syscalls{}[]",
    "ContainerProfile.spec.warnings",
    "ContainerProfile.spec.warnings[]",
    "ProfileRecording.spec.podSelector.matchExpressions",
    "ProfileRecording.spec.podSelector.matchExpressions[].key",
    "ProfileRecording.spec.podSelector.matchExpressions[].operator",
    "ProfileRecording.spec.podSelector.matchExpressions[].values",
    "ProfileRecording.spec.podSelector.matchExpressions[].values[]",
    "ProfileRecording.spec.podSelector.matchLabels",
    "ProfileRecording.spec.podSelector.matchLabels{}",
];

#[test]
fn unbounded_spec_fields_are_known() {
    let mut found = BTreeSet::new();
    for kind in ["ContainerProfile", "ProfileRecording"] {
        unbounded(
            &schema(kind)["properties"]["spec"],
            &format!("{kind}.spec"),
            &mut found,
        );
    }
    let known: BTreeSet<String> = UNBOUNDED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        found, known,
        "the spec fields without maxLength/maxItems/maxProperties changed: bound new fields, and update the list"
    );
}

/// Fields of ContainerProfile that the installer turns into paths, and the
/// containers filter of ProfileRecording, are bounded and patterned.
#[test]
fn bounds_that_must_be_there() {
    let pr = schema("ProfileRecording");
    let spec = &pr["properties"]["spec"]["properties"];
    assert_eq!(spec["containers"]["maxItems"], json!(64));
    assert_eq!(spec["containers"]["items"]["maxLength"], json!(63));
    assert!(spec["containers"]["items"]["pattern"].is_string());
    assert_eq!(spec["baseSet"]["maxLength"], json!(63));
    assert!(spec["baseSet"]["pattern"].is_string());
    let cp = schema("ContainerProfile");
    let spec = &cp["properties"]["spec"]["properties"];
    assert_eq!(spec["container"]["maxLength"], json!(63));
    assert_eq!(spec["recording"]["maxLength"], json!(253));
    assert_eq!(
        spec["workload"]["properties"]["name"]["maxLength"],
        json!(253)
    );
    assert!(spec["workload"]["properties"]["kind"]["enum"].is_array());
}

/// What the schema refuses before any agent sees it.
#[test]
fn hostile_documents_the_schema_refuses() {
    let huge: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    for (doc, words) in [
        (
            recording(json!({ "podSelector": {}, "containers": huge })),
            "more than 64 items",
        ),
        (
            recording(json!({ "podSelector": {}, "containers": ["../etc"] })),
            "does not match",
        ),
        (
            recording(json!({ "podSelector": {}, "containers": ["Nginx"] })),
            "does not match",
        ),
        (
            recording(json!({ "podSelector": {}, "containers": [""] })),
            "shorter than 1",
        ),
        (
            recording(json!({ "podSelector": {}, "containers": ["a".repeat(64)] })),
            "longer than 63",
        ),
        (
            recording(json!({ "podSelector": {}, "baseSet": "../../x" })),
            "does not match",
        ),
        (
            recording(json!({ "podSelector": {}, "baseSet": "r".repeat(64) })),
            "longer than 63",
        ),
        (
            recording(json!({ "containers": [] })),
            "podSelector: required",
        ),
        (recording(json!({ "podSelector": [] })), "not a object"),
        (
            recording(json!({ "podSelector": { "matchExpressions": [{ "key": "a" }] } })),
            "operator: required",
        ),
        (
            recording(json!({ "podSelector": {}, "paused": "yes" })),
            "not a boolean",
        ),
        (
            profile(json!({ "container": "a".repeat(64) })),
            "longer than 63",
        ),
        (profile(json!({ "container": "" })), "shorter than 1"),
        (
            profile(json!({ "recording": "r".repeat(254) })),
            "longer than 253",
        ),
        (
            profile(json!({ "workload": { "kind": "Bogus", "name": "web" } })),
            "not one of",
        ),
        (
            profile(json!({ "workload": { "kind": "Pod", "name": "w".repeat(254) } })),
            "longer than 253",
        ),
        (
            profile(json!({ "workload": { "kind": "Pod" } })),
            "name: required",
        ),
        (profile(json!({ "syscallCount": "many" })), "not a integer"),
        (
            profile(json!({ "syscalls": { "SCMP_ARCH_X86_64": "read" } })),
            "not a array",
        ),
    ] {
        let kind = doc["kind"].as_str().unwrap();
        let found = errors(kind, &doc);
        assert!(
            found.iter().any(|e| e.contains(words)),
            "expected {words:?}, got {found:?}"
        );
    }
}

/// What the schema lets through, so the agents must refuse it themselves
/// (and do: see agent/tests/fuzz_recordings.rs): selectors with unknown
/// operators or 10,000 terms, 1 MB label values, names that are no
/// Kubernetes names where the schema has a length but no pattern, unknown
/// syscall names.
#[test]
fn hostile_documents_the_schema_lets_through() {
    let big = "v".repeat(1 << 20);
    let terms: Vec<Value> = (0..10_000)
        .map(|i| json!({ "key": format!("k{i}"), "operator": "Bogus" }))
        .collect();
    for doc in [
        recording(json!({ "podSelector": { "matchExpressions": terms } })),
        recording(
            json!({ "podSelector": { "matchExpressions": [{ "key": "a", "operator": "In" }] } }),
        ),
        recording(json!({ "podSelector": { "matchLabels": { "app": big } } })),
        profile(json!({ "container": "../x" })),
        profile(json!({ "workload": { "kind": "Pod", "name": "../../etc" } })),
        profile(json!({ "recording": "a/b" })),
        profile(json!({ "syscalls": { "SCMP_ARCH_BOGUS": ["no_such_syscall", "../x"] } })),
    ] {
        let kind = doc["kind"].as_str().unwrap();
        assert_eq!(errors(kind, &doc), Vec::<String>::new(), "{kind}");
        match kind {
            "ProfileRecording" => {
                serde_json::from_value::<ProfileRecording>(doc).unwrap();
            }
            _ => {
                serde_json::from_value::<ContainerProfile>(doc).unwrap();
            }
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9:./-]{0,12}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(vec![
                        "apiVersion",
                        "kind",
                        "metadata",
                        "name",
                        "namespace",
                        "spec",
                        "status",
                        "podSelector",
                        "matchLabels",
                        "matchExpressions",
                        "key",
                        "operator",
                        "values",
                        "containers",
                        "baseSet",
                        "paused",
                        "recording",
                        "workload",
                        "container",
                        "syscalls",
                        "syscallCount",
                        "firstSeen",
                        "lastSeen",
                        "contributors",
                        "runtimeBaseSet",
                        "installed",
                        "conditions",
                        "phase",
                    ])
                    .prop_map(str::to_owned),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid document with one field replaced by arbitrary JSON.
fn near_valid(kind: &'static str) -> impl Strategy<Value = Value> {
    let fields: Vec<&str> = if kind == "ProfileRecording" {
        vec![
            "podSelector",
            "containers",
            "baseSet",
            "paused",
            "includeInitContainers",
        ]
    } else {
        vec![
            "recording",
            "workload",
            "container",
            "syscalls",
            "syscallCount",
            "firstSeen",
            "contributors",
            "runtimeBaseSet",
        ]
    };
    // Times near the form the agents read, some the server takes and some
    // it refuses.
    let time = proptest::string::string_regex(
        r"[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{0,12}|,[0-9])?([Zz]|[+-][0-2][0-9]:?[0-6][0-9])?",
    )
    .unwrap()
    .prop_map(Value::String);
    let value = prop_oneof![3 => json_value(), 1 => time];
    let fields = if kind == "ProfileRecording" {
        fields
    } else {
        [fields, vec!["lastSeen", "lastNewSyscall"]].concat()
    };
    (proptest::sample::select(fields), value).prop_map(move |(field, value)| {
        let mut doc = if kind == "ProfileRecording" {
            recording(json!({ "podSelector": { "matchLabels": { "app": "web" } } }))
        } else {
            profile(json!({}))
        };
        doc["spec"][field] = value;
        doc
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary JSON, near-valid documents and their YAML forms: the API
    /// types deserialize or refuse, never panic; and a document the schema
    /// accepts with known fields only deserializes.
    #[test]
    fn documents_deserialize_or_fail(
        doc in prop_oneof![json_value(), near_valid("ProfileRecording"), near_valid("ContainerProfile")],
    ) {
        let as_recording = serde_json::from_value::<ProfileRecording>(doc.clone());
        let as_profile = serde_json::from_value::<ContainerProfile>(doc.clone());
        let yaml = serde_norway::to_string(&doc).unwrap();
        let _ = serde_norway::from_str::<ProfileRecording>(&yaml);
        let _ = serde_norway::from_str::<ContainerProfile>(&yaml);
        if let Some(kind) = doc["kind"].as_str().filter(|k| ["ProfileRecording", "ContainerProfile"].contains(k))
            && doc["spec"].is_object()
            && errors(kind, &doc).is_empty()
        {
            // Schema-valid specs must be readable by the agents, whatever
            // metadata and status say.
            let mut doc = doc.clone();
            doc["metadata"] = json!({ "name": "x", "namespace": "n" });
            doc.as_object_mut().unwrap().remove("status");
            let ok = if kind == "ProfileRecording" {
                serde_json::from_value::<ProfileRecording>(doc.clone()).is_ok()
            } else {
                serde_json::from_value::<ContainerProfile>(doc.clone()).is_ok()
            };
            prop_assert!(ok, "schema-valid {} does not deserialize: {}", kind, doc);
        }
        let _ = (as_recording, as_profile);
    }

    /// Arbitrary YAML text never panics the readers.
    #[test]
    fn yaml_text_never_panics(text in prop_oneof![
        any::<String>(),
        "(apiVersion: |kind: ProfileRecording\n|spec:\n  |podSelector: |\\{|\\}|\\[|\\]|&a |\\*a |- |\n|[a-z]{1,4}: ){0,30}",
    ]) {
        let _ = serde_norway::from_str::<ProfileRecording>(&text);
        let _ = serde_norway::from_str::<ContainerProfile>(&text);
    }
}
