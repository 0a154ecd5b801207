//! Label and field selectors, parsed as the real server parses them.

use serde_json::Value;

use super::{resources::ResourceDef, status::ApiError};

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    /// Whether a key with `value` (None when absent) satisfies this.
    fn matches(&self, value: Option<&str>) -> bool {
        match self {
            Self::Equals(_, v) => value == Some(v.as_str()),
            Self::NotEquals(_, v) => value != Some(v.as_str()),
            Self::In(_, vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
            Self::NotIn(_, vs) => !value.is_some_and(|x| vs.iter().any(|v| v == x)),
            Self::Exists(_) => value.is_some(),
            Self::NotExists(_) => value.is_none(),
            Self::GreaterThan(_, n) => value
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Self::LessThan(_, n) => value
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }

    fn key(&self) -> &str {
        match self {
            Self::Equals(k, _)
            | Self::NotEquals(k, _)
            | Self::In(k, _)
            | Self::NotIn(k, _)
            | Self::Exists(k)
            | Self::NotExists(k)
            | Self::GreaterThan(k, _)
            | Self::LessThan(k, _) => k,
        }
    }
}

/// A parsed `labelSelector` and `fieldSelector`; empty ones match all.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selectors {
    /// Parses both selectors, checking field labels against what `def`
    /// supports (400 otherwise, as the real server answers).
    pub(crate) fn parse(
        def: &ResourceDef,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = labels.map(parse_labels).transpose()?.unwrap_or_default();
        let fields = fields.map(parse_fields).transpose()?.unwrap_or_default();
        for field in &fields {
            if !def.has_field_label(field.key()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    field.key()
                )));
            }
        }
        Ok(Self { labels, fields })
    }

    /// Whether `object` matches both selectors.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.labels
            .iter()
            .all(|r| r.matches(labels.get(r.key()).and_then(Value::as_str)))
            && self
                .fields
                .iter()
                .all(|r| r.matches(Some(&field_value(object, r.key()))))
    }
}

/// The value of a field label: strings as they are, numbers and booleans
/// printed, missing fields as the empty string.
fn field_value(object: &Value, label: &str) -> String {
    let value = label.split('.').fold(object, |v, part| &v[part]);
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits at commas outside parentheses.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_labels(selector: &str) -> Result<Vec<Requirement>, ApiError> {
    let bad = |term: &str| {
        ApiError::bad_request(format!(
            "unable to parse requirement: invalid label selector: {term:?}"
        ))
    };
    split_terms(selector)
        .into_iter()
        .map(|term| {
            if let Some(key) = term.strip_prefix('!') {
                return Ok(Requirement::NotExists(key.trim().to_owned()));
            }
            if let Some((key, value)) = term.split_once("!=") {
                return Ok(Requirement::NotEquals(
                    key.trim().to_owned(),
                    value.trim().to_owned(),
                ));
            }
            if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                return Ok(Requirement::Equals(
                    key.trim().to_owned(),
                    value.trim().to_owned(),
                ));
            }
            if let Some((key, value)) = term.split_once('>') {
                let n = value.trim().parse().map_err(|_| bad(term))?;
                return Ok(Requirement::GreaterThan(key.trim().to_owned(), n));
            }
            if let Some((key, value)) = term.split_once('<') {
                let n = value.trim().parse().map_err(|_| bad(term))?;
                return Ok(Requirement::LessThan(key.trim().to_owned(), n));
            }
            let mut words = term.splitn(2, char::is_whitespace);
            let key = words.next().unwrap_or_default().to_owned();
            let Some(rest) = words.next().map(str::trim) else {
                return Ok(Requirement::Exists(key));
            };
            let (op, set) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let set = set.trim();
            let values = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| bad(term))?
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            match op {
                "in" => Ok(Requirement::In(key, values)),
                "notin" => Ok(Requirement::NotIn(key, values)),
                _ => Err(bad(term)),
            }
        })
        .collect()
}

fn parse_fields(selector: &str) -> Result<Vec<Requirement>, ApiError> {
    split_terms(selector)
        .into_iter()
        .map(|term| {
            if let Some((key, value)) = term.split_once("!=") {
                Ok(Requirement::NotEquals(
                    key.trim().to_owned(),
                    value.trim().to_owned(),
                ))
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Ok(Requirement::Equals(
                    key.trim().to_owned(),
                    value.trim().to_owned(),
                ))
            } else {
                Err(ApiError::bad_request(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::builtins;

    fn pods() -> ResourceDef {
        builtins().remove(0)
    }

    #[test]
    fn labels_equality_and_sets() {
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"nodeName": "node-a"}});
        let m = |l: &str| {
            Selectors::parse(&pods(), Some(l), None)
                .unwrap()
                .matches(&pod)
        };
        assert!(m("app=web"));
        assert!(m("app==web,tier!=back"));
        assert!(!m("app=db"));
        assert!(m("app in (db, web)"));
        assert!(!m("app notin (db,web)"));
        assert!(m("tier"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app in (web),tier"));
    }

    #[test]
    fn fields_known_and_unknown() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "node-a"}});
        let m = |f: &str| {
            Selectors::parse(&pods(), None, Some(f))
                .unwrap()
                .matches(&pod)
        };
        assert!(m("spec.nodeName=node-a"));
        assert!(!m("spec.nodeName=node-b"));
        assert!(m("metadata.name=p,metadata.namespace=default"));
        assert!(m("spec.nodeName!=node-b"));
        assert!(m("status.phase="));
        let err = Selectors::parse(&pods(), None, Some("spec.bogus=x")).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
