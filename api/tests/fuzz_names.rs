//! Property tests of the names syscensus checks and makes: DNS labels and
//! subdomains against Kubernetes' own rules, ContainerProfile object names
//! (always valid, at most 253 characters, distinct for distinct
//! containers) and label values (at most 63 characters).
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use proptest::{prelude::*, test_runner::Config};
use regex::Regex;
use syscensus_api::{
    WorkloadKind, label_value, object_name, validate_dns_label, validate_dns_subdomain,
};

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

/// k8s.io/apimachinery/pkg/util/validation: `dns1123LabelFmt`.
const LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

fn is_label(name: &str) -> bool {
    name.len() <= 63 && Regex::new(&format!("^{LABEL}$")).unwrap().is_match(name)
}

/// Kubernetes' `IsDNS1123Subdomain`, with syscensus's extra rule that each
/// dot-separated part is a label of at most 63 characters.
fn is_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_label)
}

/// A label value (`IsValidLabelValue`): empty, or at most 63 of
/// `[-A-Za-z0-9_.]` starting and ending alphanumeric.
fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && Regex::new("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
                .unwrap()
                .is_match(value))
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9]", "[a-z0-9][a-z0-9-]{0,61}[a-z0-9]", "[a-z]{63}",]
}

fn subdomain() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 1..5)
        .prop_map(|labels| labels.join("."))
        .prop_filter("at most 253 characters", |s| s.len() <= 253)
}

/// Near-valid and hostile strings.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,70}",
        "[a-zA-Z0-9._/ -]{0,10}",
        "[a-z.]{250,260}",
        any::<String>(),
    ]
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

/// `name` with its last character changed to another letter or digit:
/// still valid, and as close as a different name gets.
fn tweak(name: &str, to: char) -> String {
    let mut out: String = name[..name.len() - 1].to_owned();
    let last = name.chars().last().unwrap();
    out.push(if last == to {
        if to == 'a' { 'b' } else { 'a' }
    } else {
        to
    });
    out
}

proptest! {
    #![proptest_config(config(512))]

    /// The checks agree with Kubernetes' rules on any string.
    #[test]
    fn name_checks_agree_with_kubernetes(name in name_like()) {
        prop_assert_eq!(validate_dns_label(&name).is_ok(), is_label(&name), "{:?}", name);
        prop_assert_eq!(validate_dns_subdomain(&name).is_ok(), is_subdomain(&name), "{:?}", name);
        if let Err(error) = validate_dns_subdomain(&name) {
            prop_assert!(error.to_string().starts_with("invalid name"));
        }
    }

    /// Label values of any ASCII text fit in 63 characters, are valid when
    /// the text is a name, and stay distinct.
    #[test]
    fn label_values_fit(a in "[ -~]{0,300}", b in "[a-z0-9.-]{60,300}") {
        prop_assert!(label_value(&a).len() <= 63);
        if is_subdomain(&a) {
            prop_assert!(is_label_value(&label_value(&a)), "{:?}", label_value(&a));
        }
        if a != b {
            prop_assert_ne!(label_value(&a), label_value(&b));
        }
        let tweaked = tweak(&b, '7');
        prop_assert_ne!(label_value(&b), label_value(&tweaked));
    }

    /// Object names of valid parts are valid subdomains of at most 253
    /// characters, and differ when any part differs (here: by one
    /// character, or in kind).
    #[test]
    fn object_names_are_valid_and_distinct(
        recording in label(),
        kind in proptest::sample::select(KINDS.to_vec()),
        other_kind in proptest::sample::select(KINDS.to_vec()),
        workload in subdomain(),
        container in label(),
        part in 0u8..4,
        to in proptest::char::range('a', 'z'),
    ) {
        let name = object_name(&recording, kind.as_str(), &workload, &container);
        prop_assert!(name.len() <= 253);
        prop_assert!(validate_dns_subdomain(&name).is_ok(), "{:?}", name);
        let other = match part {
            0 => object_name(&tweak(&recording, to), kind.as_str(), &workload, &container),
            1 => object_name(&recording, kind.as_str(), &tweak(&workload, to), &container),
            2 => object_name(&recording, kind.as_str(), &workload, &tweak(&container, to)),
            _ if other_kind != kind => object_name(&recording, other_kind.as_str(), &workload, &container),
            _ => return Ok(()),
        };
        prop_assert_ne!(name, other);
    }

    /// Object names of subdomain recordings (which may hold dots) are
    /// valid too.
    #[test]
    fn object_names_of_dotted_recordings_are_valid(
        recording in subdomain(),
        kind in proptest::sample::select(KINDS.to_vec()),
        workload in subdomain(),
        container in label(),
    ) {
        let name = object_name(&recording, kind.as_str(), &workload, &container);
        prop_assert!(name.len() <= 253);
        prop_assert!(validate_dns_subdomain(&name).is_ok(), "{:?}", name);
    }
}

/// `label_value` cuts long text near byte 52, which may fall inside a
/// multi-byte character: it cuts at the character before.
#[test]
fn label_value_of_non_ascii_text() {
    let text = format!("{}é{}", "a".repeat(51), "b".repeat(20));
    assert!(label_value(&text).len() <= 63);
}

/// ProfileRecording names are DNS subdomains, so they may hold dots, and
/// `<recording>.<kind>.<workload>.<container>` is then ambiguous: the hash
/// added to such names keeps two recordings of one namespace from writing
/// the same ContainerProfile.
#[test]
fn object_names_of_dotted_recordings_are_distinct() {
    let a = object_name("a.deployment.b", "Deployment", "c", "d");
    let b = object_name("a", "Deployment", "b.deployment.c", "d");
    assert_ne!(a, b);
}

/// Kubernetes takes any subdomain of at most 253 characters as a
/// Deployment's name, whatever the length of its dot-separated parts, and
/// so does syscensus: such a workload gets a profile path and an export.
#[test]
fn long_single_part_workload_names_are_valid() {
    validate_dns_subdomain(&"a".repeat(100)).unwrap();
}
