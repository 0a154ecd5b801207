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
/// empty selector selects everything).
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    for (key, value) in selector.match_labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            return Ok(false);
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let present = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => {
                if values.is_empty() {
                    return Err(SelectorError(format!(
                        "operator In on {} needs values",
                        expr.key
                    )));
                }
                present.is_some_and(|v| values.contains(v))
            }
            "NotIn" => {
                if values.is_empty() {
                    return Err(SelectorError(format!(
                        "operator NotIn on {} needs values",
                        expr.key
                    )));
                }
                present.is_none_or(|v| !values.contains(v))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError(format!(
                    "operator {} on {} takes no values",
                    expr.operator, expr.key
                )));
            }
            "Exists" => present.is_some(),
            "DoesNotExist" => present.is_none(),
            other => {
                return Err(SelectorError(format!(
                    "unknown operator {other:?} on {}",
                    expr.key
                )));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks a recording's spec without a Pod: the selector's operators and
/// values.
pub fn validate(spec: &ProfileRecordingSpec) -> Result<(), SelectorError> {
    matches(&spec.pod_selector, &BTreeMap::new()).map(|_| ())
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
