//! The real server's validation of Events written through
//! `events.k8s.io/v1` (kubernetes pkg/apis/core/validation/events.go):
//! what a new Event must carry, and what no update may change. The one
//! validation this server does, since a client that gets it wrong fails on
//! every real cluster.

use serde_json::Value;

use super::{resources::ResourceDef, status::ApiError};

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// Fields an update through events.k8s.io/v1 may not change.
const IMMUTABLE: [&str; 12] = [
    "regarding",
    "reason",
    "note",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
    "type",
    "eventTime",
    "action",
    "related",
    "reportingController",
];

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field].as_str().unwrap_or_default()
}

/// A DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, each label
/// starting and ending alphanumeric, at most 253 characters.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A qualified name (`prefix/name` or `name`), as reportingController must
/// be.
fn is_qualified_name(value: &str) -> bool {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

fn series_errors(event: &Value, errors: &mut Vec<String>) {
    let series = &event["series"];
    if series.is_null() {
        return;
    }
    if series["count"].as_i64().unwrap_or(0) < 2 {
        errors.push("series.count: Invalid value: \"\": should be at least 2".into());
    }
    if text(series, "lastObservedTime").is_empty() {
        errors.push("series.lastObservedTime: Required value".into());
    }
}

/// Checks a write of `new` (over `old`, for an update) of an Event of
/// events.k8s.io; other resources pass.
pub(crate) fn validate(
    def: &ResourceDef,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if def.group != "events.k8s.io" || def.kind != "Event" {
        return Ok(());
    }
    let mut errors = Vec::new();
    let namespace = new["metadata"]["namespace"].as_str().unwrap_or_default();
    let event_time = text(new, "eventTime");
    if event_time.is_empty() {
        errors.push("eventTime: Required value".to_owned());
    } else {
        let regarding_namespace = new["regarding"]["namespace"].as_str().unwrap_or_default();
        if regarding_namespace.is_empty() && !matches!(namespace, "default" | "kube-system") {
            errors
                .push("regarding.namespace: Invalid value: does not match event.namespace".into());
        }
        for (field, limit) in [
            ("reportingController", usize::MAX),
            ("reportingInstance", REPORTING_INSTANCE_LIMIT),
            ("action", ACTION_LIMIT),
            ("reason", REASON_LIMIT),
        ] {
            let value = text(new, field);
            if value.is_empty() {
                errors.push(format!("{field}: Required value"));
            } else if value.len() > limit {
                errors.push(format!(
                    "{field}: Invalid value: can have at most {limit} characters"
                ));
            }
        }
        let controller = text(new, "reportingController");
        if !controller.is_empty() && !is_qualified_name(controller) {
            errors.push(format!(
                "reportingController: Invalid value: \"{controller}\": not a qualified name"
            ));
        }
        if text(new, "note").len() > NOTE_LIMIT {
            errors.push(format!(
                "note: Invalid value: can have at most {NOTE_LIMIT} characters"
            ));
        }
    }
    match old {
        None => {
            let name = new["metadata"]["name"].as_str().unwrap_or_default();
            if !is_dns_subdomain(name) {
                errors.push(format!(
                    "metadata.name: Invalid value: \"{name}\": not a DNS subdomain"
                ));
            }
            series_errors(new, &mut errors);
            if !matches!(text(new, "type"), "Normal" | "Warning") {
                errors.push(format!("type: Invalid value: \"{}\"", text(new, "type")));
            }
            for field in [
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
                "deprecatedCount",
                "deprecatedSource",
            ] {
                if !new[field].is_null() {
                    errors.push(format!("{field}: Invalid value: needs to be unset"));
                }
            }
        }
        Some(old) => {
            if old["series"] != new["series"] {
                series_errors(new, &mut errors);
            }
            for field in IMMUTABLE.into_iter().chain(["reportingInstance"]) {
                if old[field] != new[field] {
                    errors.push(format!("{field}: Invalid value: field is immutable"));
                }
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &def.group_resource(),
        new["metadata"]["name"].as_str().unwrap_or_default(),
        format!("[{}]", errors.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use serde_json::json;

    use super::*;
    use crate::resources::builtins;

    fn def() -> ResourceDef {
        builtins()
            .into_iter()
            .find(|d| d.group == "events.k8s.io")
            .unwrap()
    }

    fn event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "rec.0123456789abcdef", "namespace": "shop"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "syscensus.io/agent", "reportingInstance": "node-a",
            "action": "Record", "reason": "RecordingStarted", "type": "Normal",
            "note": "recording containers on node node-a",
            "regarding": {"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "namespace": "shop", "name": "rec"}
        })
    }

    #[test]
    fn a_complete_event_and_a_series_update_pass() {
        validate(&def(), None, &event()).unwrap();
        let mut repeated = event();
        repeated["series"] = json!({"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"});
        validate(&def(), Some(&event()), &repeated).unwrap();
    }

    #[test]
    fn what_the_real_server_refuses() {
        for (field, value) in [
            ("eventTime", Value::Null),
            ("reportingController", json!("syscensus agent")),
            ("reportingInstance", json!("n".repeat(129))),
            ("action", Value::Null),
            ("type", json!("Info")),
            ("note", json!("x".repeat(1025))),
            (
                "series",
                json!({"count": 1, "lastObservedTime": "2026-01-01T00:00:00Z"}),
            ),
            ("deprecatedCount", json!(1)),
        ] {
            let mut bad = event();
            bad[field] = value;
            let error = validate(&def(), None, &bad).unwrap_err();
            assert_eq!(error.code, 422, "{field}");
            assert!(error.message.contains(field), "{field}: {}", error.message);
        }
        let mut bad = event();
        bad["metadata"]["name"] = json!("Rec.x");
        assert!(validate(&def(), None, &bad).is_err());
        for field in ["note", "reason", "reportingInstance", "eventTime"] {
            let mut changed = event();
            changed[field] = json!("other");
            let error = validate(&def(), Some(&event()), &changed).unwrap_err();
            assert!(
                error.message.contains("immutable"),
                "{field}: {}",
                error.message
            );
        }
    }
}
