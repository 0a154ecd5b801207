//! Field paths and `metadata.managedFields`: which manager owns which
//! field, in the `FieldsV1` encoding the real server uses.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::resources::ResourceDef;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElem {
    /// A field of a map (`f:name`).
    Field(String),
    /// An element of a list map, by its key fields as canonical JSON
    /// (`k:{"name":"c"}`).
    Key(String),
}

/// A field path from the object's root.
pub(crate) type Path = Vec<PathElem>;

/// What a path leads to in an object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Leaf<'a> {
    /// A value that is owned whole: a scalar, an atomic list or an empty map.
    Value(&'a Value),
    /// An element of a list map (owned as `.`, its fields separately).
    Element,
}

/// `.spec.containers[name="c"].image`, as the real server prints paths in
/// conflict messages.
pub(crate) fn path_string(path: &[PathElem]) -> String {
    let mut out = String::new();
    for elem in path {
        match elem {
            PathElem::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElem::Key(k) => {
                let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
        }
    }
    out
}

/// The key of a list-map element: its key fields as canonical JSON.
pub(crate) fn element_key(element: &Value, keys: &[String]) -> String {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut map = Map::new();
    for k in sorted {
        if let Some(v) = element.get(k) {
            map.insert(k.clone(), v.clone());
        }
    }
    Value::Object(map).to_string()
}

fn element_matches(element: &Value, key: &str) -> bool {
    let keys: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
    keys.iter().all(|(k, v)| element.get(k) == Some(v))
}

/// Joins a schema path (`spec.containers[]`) and a field name.
pub(crate) fn child_path(schema: &str, field: &str) -> String {
    if schema.is_empty() {
        field.to_owned()
    } else {
        format!("{schema}.{field}")
    }
}

/// The owned leaves of `object`: scalars, atomic lists, empty maps, and
/// list-map elements with their fields.
pub(crate) fn leaves<'a>(object: &'a Value, def: &ResourceDef) -> BTreeMap<Path, Leaf<'a>> {
    let mut out = BTreeMap::new();
    if let Value::Object(map) = object {
        let mut prefix = Vec::new();
        for (k, v) in map {
            prefix.push(PathElem::Field(k.clone()));
            walk(v, def, k, &mut prefix, &mut out);
            prefix.pop();
        }
    }
    out
}

fn walk<'a>(
    value: &'a Value,
    def: &ResourceDef,
    schema: &str,
    prefix: &mut Path,
    out: &mut BTreeMap<Path, Leaf<'a>>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(PathElem::Field(k.clone()));
                walk(v, def, &child_path(schema, k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items)
            if items.iter().all(Value::is_object) && def.list_keys(schema).is_some() =>
        {
            let keys = def.list_keys(schema).unwrap_or_default();
            let element_schema = format!("{schema}[]");
            for item in items {
                prefix.push(PathElem::Key(element_key(item, keys)));
                out.insert(prefix.clone(), Leaf::Element);
                if let Value::Object(map) = item {
                    for (k, v) in map {
                        prefix.push(PathElem::Field(k.clone()));
                        walk(v, def, &child_path(&element_schema, k), prefix, out);
                        prefix.pop();
                    }
                }
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone(), Leaf::Value(value));
        }
    }
}

/// The value at `path`, if present.
pub(crate) fn get<'a>(object: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, elem| match elem {
        PathElem::Field(f) => v.get(f),
        PathElem::Key(k) => v.as_array()?.iter().find(|e| element_matches(e, k)),
    })
}

/// Removes the field or list element at `path`, if present.
pub(crate) fn remove(object: &mut Value, path: &[PathElem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let parent = parent_path.iter().try_fold(object, |v, elem| match elem {
        PathElem::Field(f) => v.get_mut(f),
        PathElem::Key(k) => v.as_array_mut()?.iter_mut().find(|e| element_matches(e, k)),
    });
    match (parent, last) {
        (Some(Value::Object(map)), PathElem::Field(f)) => {
            map.remove(f);
        }
        (Some(Value::Array(items)), PathElem::Key(k)) => items.retain(|e| !element_matches(e, k)),
        _ => {}
    }
}

/// The part of `object` whose fields are tracked in managed fields for a
/// write to `subresource`: identity and server-set metadata are never
/// tracked; with a status subresource, writes to the resource do not own
/// `status` and writes to `/status` own only `status`.
pub(crate) fn tracked(object: &Value, def: &ResourceDef, subresource: Option<&str>) -> Value {
    let mut object = object.clone();
    let Value::Object(map) = &mut object else {
        return Value::Object(Map::new());
    };
    map.remove("apiVersion");
    map.remove("kind");
    if subresource == Some("status") {
        map.retain(|k, _| k == "status");
    } else if def.status_subresource {
        map.remove("status");
    }
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for k in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(k);
        }
        if meta.is_empty() {
            map.remove("metadata");
        }
    }
    object
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manager {
    pub(crate) manager: String,
    /// `Apply` or `Update`.
    pub(crate) operation: String,
    pub(crate) api_version: String,
    /// None for an entry changed by the write being made: it gets the write's
    /// time.
    pub(crate) time: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) fields: BTreeSet<Path>,
}

impl Manager {
    /// Whether this is the entry of `manager` doing `operation` on
    /// `subresource`.
    pub(crate) fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// The managed-fields entries of `object`.
pub(crate) fn read_managers(object: &Value) -> Vec<Manager> {
    let Some(entries) = object["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            decode(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Manager {
                manager: e["manager"].as_str().unwrap_or_default().to_owned(),
                operation: e["operation"].as_str().unwrap_or_default().to_owned(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: e["time"].as_str().map(str::to_owned),
                subresource: e["subresource"].as_str().map(str::to_owned),
                fields,
            }
        })
        .collect()
}

/// Writes `managers` as `metadata.managedFields` (entries owning nothing
/// are dropped, as the real server drops them), giving changed entries the
/// time `now`.
pub(crate) fn write_managers(object: &mut Value, managers: &[Manager], now: &str) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut entry = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time.as_deref().unwrap_or(now),
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&m.fields),
            });
            if let Some(sub) = &m.subresource {
                entry["subresource"] = json!(sub);
            }
            entry
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(entries));
        }
    }
}

fn encode_elem(elem: &PathElem) -> String {
    match elem {
        PathElem::Field(f) => format!("f:{f}"),
        PathElem::Key(k) => format!("k:{k}"),
    }
}

fn encode(fields: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        node_mut(&mut root, path);
    }
    // A path owned itself that also has owned children is marked with ".".
    for path in fields {
        let node = node_mut(&mut root, path);
        if node
            .as_object()
            .is_some_and(|m| !m.is_empty() && !m.contains_key("."))
        {
            node[".".to_owned()] = json!({});
        }
    }
    root
}

fn node_mut<'a>(root: &'a mut Value, path: &[PathElem]) -> &'a mut Value {
    path.iter().fold(root, |node, elem| {
        let map = node.as_object_mut().expect("FieldsV1 nodes are objects");
        map.entry(encode_elem(elem)).or_insert_with(|| json!({}))
    })
}

fn decode(node: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = node.as_object() else {
        return;
    };
    for (k, child) in map {
        if k == "." {
            out.insert(prefix.clone());
            continue;
        }
        let elem = if let Some(f) = k.strip_prefix("f:") {
            PathElem::Field(f.to_owned())
        } else if let Some(key) = k.strip_prefix("k:") {
            PathElem::Key(key.to_owned())
        } else {
            // `v:` (set elements) and `i:` (list indexes) are not produced
            // here; treat what they hold as owned by the list.
            continue;
        };
        prefix.push(elem);
        if child.as_object().is_some_and(Map::is_empty) {
            out.insert(prefix.clone());
        } else {
            decode(child, prefix, out);
        }
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtins;

    #[test]
    fn fields_v1_round_trip() {
        let pods = builtins().remove(0);
        let pod = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i", "args": ["a"]}], "nodeName": "n"}
        });
        let leaves = leaves(&pod, &pods);
        let fields: BTreeSet<Path> = leaves.keys().cloned().collect();
        let encoded = encode(&fields);
        assert_eq!(
            encoded,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {}}},
                    "f:nodeName": {}
                }
            })
        );
        let mut decoded = BTreeSet::new();
        decode(&encoded, &mut Vec::new(), &mut decoded);
        assert_eq!(decoded, fields);
        let image = fields.iter().find(|p| p.len() == 4).unwrap();
        assert_eq!(path_string(image), ".spec.containers[name=\"c\"].args");
        assert_eq!(get(&pod, image), Some(&json!(["a"])));
    }
}
