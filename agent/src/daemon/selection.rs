//! Which recordings select a container: label selectors against Pod labels,
//! container-name filters, init containers. Pure: no I/O.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use syscensus_api::ProfileRecordingSpec;

/// A label selector that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector: {0}")]
pub struct SelectorError(pub String);

/// Whether `selector` selects an object with `labels` (the Kubernetes
/// semantics: every `matchLabels` pair and every `matchExpressions` term; an
/// empty selector selects everything). A selector with a malformed term is
/// an error whatever the labels.
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    check(selector)?;
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let terms = selector.match_expressions.iter().flatten().all(|expr| {
        let values = expr.values.as_deref().unwrap_or_default();
        let present = labels.get(&expr.key);
        match expr.operator.as_str() {
            "In" => present.is_some_and(|v| values.contains(v)),
            "NotIn" => present.is_none_or(|v| !values.contains(v)),
            "Exists" => present.is_some(),
            _ => present.is_none(),
        }
    });
    Ok(pairs && terms)
}

/// Checks every term of `selector`: a known operator, with values for In
/// and NotIn and none for Exists and DoesNotExist.
fn check(selector: &LabelSelector) -> Result<(), SelectorError> {
    for expr in selector.match_expressions.iter().flatten() {
        let has_values = expr.values.as_ref().is_some_and(|v| !v.is_empty());
        match (expr.operator.as_str(), has_values) {
            ("In" | "NotIn", true) | ("Exists" | "DoesNotExist", false) => {}
            ("In" | "NotIn", false) => {
                return Err(SelectorError(format!(
                    "operator {} on {} needs values",
                    expr.operator, expr.key
                )));
            }
            ("Exists" | "DoesNotExist", true) => {
                return Err(SelectorError(format!(
                    "operator {} on {} takes no values",
                    expr.operator, expr.key
                )));
            }
            (other, _) => {
                return Err(SelectorError(format!(
                    "unknown operator {other:?} on {}",
                    expr.key
                )));
            }
        }
    }
    Ok(())
}

/// Checks a recording's spec without a Pod: the selector's operators and
/// values, every term of them.
pub fn validate(spec: &ProfileRecordingSpec) -> Result<(), SelectorError> {
    check(&spec.pod_selector)
}

/// Whether `spec` records container `container` (an init container if
/// `init`) of a Pod with `labels`.
pub fn selects(
    spec: &ProfileRecordingSpec,
    labels: &BTreeMap<String, String>,
    container: &str,
    init: bool,
) -> Result<bool, SelectorError> {
    if spec.paused || (init && !spec.include_init_containers) {
        return Ok(false);
    }
    if !spec.containers.is_empty() && !spec.containers.iter().any(|c| c == container) {
        return Ok(false);
    }
    matches(&spec.pod_selector, labels)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| (*v).to_owned()).collect())
            },
        }
    }

    fn selector(pairs: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: (!pairs.is_empty()).then(|| labels(pairs)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        }
    }

    #[test]
    fn match_labels_and_expressions() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        assert!(matches(&selector(&[], vec![]), &pod).unwrap());
        assert!(matches(&selector(&[("app", "web")], vec![]), &pod).unwrap());
        assert!(!matches(&selector(&[("app", "db")], vec![]), &pod).unwrap());
        assert!(
            matches(
                &selector(&[], vec![expr("tier", "In", &["front", "back"])]),
                &pod
            )
            .unwrap()
        );
        assert!(
            !matches(
                &selector(&[], vec![expr("tier", "NotIn", &["front"])]),
                &pod
            )
            .unwrap()
        );
        assert!(matches(&selector(&[], vec![expr("zone", "NotIn", &["a"])]), &pod).unwrap());
        assert!(matches(&selector(&[], vec![expr("app", "Exists", &[])]), &pod).unwrap());
        assert!(!matches(&selector(&[], vec![expr("app", "DoesNotExist", &[])]), &pod).unwrap());
        assert!(
            !matches(
                &selector(&[("app", "web")], vec![expr("zone", "Exists", &[])]),
                &pod
            )
            .unwrap()
        );
    }

    #[test]
    fn bad_selectors_are_errors() {
        let pod = labels(&[]);
        for bad in [
            expr("a", "In", &[]),
            expr("a", "Exists", &["x"]),
            expr("a", "Matches", &["x"]),
        ] {
            assert!(matches(&selector(&[], vec![bad]), &pod).is_err());
        }
    }

    #[test]
    fn container_filters() {
        let spec = ProfileRecordingSpec {
            include_exec_sessions: false,
            pod_selector: selector(&[("app", "web")], vec![]),
            containers: vec!["nginx".into()],
            include_init_containers: false,
            base_set: None,
            paused: false,
        };
        let pod = labels(&[("app", "web")]);
        assert!(selects(&spec, &pod, "nginx", false).unwrap());
        assert!(!selects(&spec, &pod, "sidecar", false).unwrap());
        assert!(!selects(&spec, &pod, "nginx", true).unwrap());
        let paused = ProfileRecordingSpec {
            paused: true,
            ..spec
        };
        assert!(!selects(&paused, &pod, "nginx", false).unwrap());
    }
}
