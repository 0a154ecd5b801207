//! The PATCH formats other than apply: JSON merge patch (RFC 7386),
//! strategic merge patch (merge patch with list maps merged by key) and
//! JSON patch (RFC 6902).

use serde_json::{Map, Value};

use super::{fields::child_path, resources::ResourceDef, status::ApiError};

/// A PATCH body format, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Apply,
    Merge,
    Strategic,
    Json,
}

impl PatchType {
    pub(crate) fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// RFC 7386: maps merge, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Strategic merge patch, approximated: a merge patch, except that lists the
/// resource declares as list maps (containers by name, ...) merge element
/// by element on their first key, honouring `$patch: delete` and
/// `$patch: replace`; other `$` directives are dropped.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value, def: &ResourceDef, schema: &str) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = without_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        let path = child_path(schema, k);
        match v {
            Value::Null => {
                map.remove(k);
            }
            Value::Array(items) if def.list_keys(&path).is_some() => {
                let key = def
                    .list_keys(&path)
                    .and_then(|keys| keys.first())
                    .cloned()
                    .unwrap_or_default();
                let slot = map
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                merge_list(slot, items, &key, def, &format!("{path}[]"));
            }
            _ => strategic_merge(map.entry(k.clone()).or_insert(Value::Null), v, def, &path),
        }
    }
}

fn merge_list(
    slot: &mut Value,
    items: &[Value],
    key: &str,
    def: &ResourceDef,
    element_schema: &str,
) {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *slot = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(|i| without_directives(i.as_object().unwrap_or(&Map::new())))
                .collect(),
        );
        return;
    }
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(live) = slot else {
        return;
    };
    for item in items {
        let id = item.get(key);
        let found = live.iter().position(|l| id.is_some() && l.get(key) == id);
        match (item.get("$patch").and_then(Value::as_str), found) {
            (Some("delete"), Some(i)) => {
                live.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_merge(&mut live[i], item, def, element_schema),
            (_, None) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item, def, element_schema);
                live.push(fresh);
            }
        }
    }
}

fn without_directives(map: &Map<String, Value>) -> Value {
    Value::Object(
        map.iter()
            .filter(|(k, _)| !k.starts_with('$'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// RFC 6902 (add, remove, replace, test, move, copy); a failed operation is
/// 422, as the real server answers.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("the JSON patch is not valid: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the JSON patch could not be applied: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources::builtins;

    #[test]
    fn merge_patch_rfc7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let deployments = builtins()
            .into_iter()
            .find(|d| d.plural == "deployments")
            .unwrap();
        let mut doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}, {"name": "a", "$patch": "delete"}]
        }}}});
        strategic_merge(&mut doc, &patch, &deployments, "");
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}])
        );
    }
}
