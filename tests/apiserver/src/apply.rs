//! Server-side apply: merge an applied configuration into the live object,
//! detect conflicts with other managers, and drop fields a manager stopped
//! applying.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{
    fields::{self, Leaf, Manager, Path, child_path, element_key},
    resources::ResourceDef,
    status::ApiError,
};

/// The result of an apply: the merged object and its managers (the
/// applier's entry with no time yet).
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) object: Value,
    pub(crate) managers: Vec<Manager>,
}

/// Applies `config` as `manager` to `live` (the live object, or for a create
/// the object's identity only).
///
/// Semantics, as the real server's structured merge: maps merge field by
/// field, list maps element by element on their keys, other lists and
/// scalars are replaced. A field whose value the apply changes and that
/// another manager owns is a conflict (409) unless `force`, which moves the
/// field to the applier. Fields the applier applied last time but not now
/// are removed unless another manager owns them.
pub(crate) fn apply(
    live: &Value,
    config: &Value,
    def: &ResourceDef,
    subresource: Option<&str>,
    manager: &str,
    force: bool,
) -> Result<Applied, ApiError> {
    let mut managers = fields::read_managers(live);
    let applied = fields::tracked(config, def, subresource);
    let new_fields = fields::leaves(&applied, def);

    let mut conflicts: Vec<(usize, Path)> = Vec::new();
    for (i, m) in managers.iter().enumerate() {
        if m.is(manager, "Apply", subresource) {
            continue;
        }
        for path in &m.fields {
            let Some(Leaf::Value(value)) = new_fields.get(path) else {
                continue;
            };
            let current = fields::get(live, path);
            let both_maps = value.is_object() && current.is_some_and(Value::is_object);
            if !both_maps && current != Some(*value) {
                conflicts.push((i, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(def, live, &managers, &conflicts));
        }
        for (i, path) in &conflicts {
            managers[*i].fields.remove(path);
        }
    }

    let mut object = live.clone();
    merge_applied(&mut object, &applied, def, "");

    let previous: BTreeSet<Path> = managers
        .iter()
        .find(|m| m.is(manager, "Apply", subresource))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    // Shallow paths first: a list element goes with its fields. A key field
    // of an element that stays stays too, or the element loses its identity.
    for path in &previous {
        if new_fields.contains_key(path) || is_element_key(path) {
            continue;
        }
        let shared = managers
            .iter()
            .filter(|m| !m.is(manager, "Apply", subresource))
            .any(|m| m.fields.iter().any(|p| p.starts_with(path)));
        if !shared {
            fields::remove(&mut object, path);
        }
    }

    let owned: BTreeSet<Path> = new_fields.keys().cloned().collect();
    match managers
        .iter_mut()
        .find(|m| m.is(manager, "Apply", subresource))
    {
        Some(entry) => {
            entry.fields = owned;
            entry.api_version = def.api_version();
            entry.time = None;
        }
        None => managers.push(Manager {
            manager: manager.to_owned(),
            operation: "Apply".to_owned(),
            api_version: def.api_version(),
            time: None,
            subresource: subresource.map(str::to_owned),
            fields: owned,
        }),
    }
    for m in &mut managers {
        m.fields.retain(|p| fields::get(&object, p).is_some());
    }
    Ok(Applied { object, managers })
}

/// Whether `path` is a key field of the list element it is in.
fn is_element_key(path: &[fields::PathElem]) -> bool {
    match path {
        [
            ..,
            fields::PathElem::Key(key),
            fields::PathElem::Field(field),
        ] => serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(field)),
        _ => false,
    }
}

/// Merges an applied configuration into `live`.
fn merge_applied(live: &mut Value, applied: &Value, def: &ResourceDef, schema: &str) {
    match applied {
        Value::Object(map) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let Value::Object(target) = live else {
                return;
            };
            for (k, v) in map {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge_applied(
                        target.entry(k.clone()).or_insert(Value::Null),
                        v,
                        def,
                        &child_path(schema, k),
                    );
                }
            }
        }
        Value::Array(items)
            if items.iter().all(Value::is_object) && def.list_keys(schema).is_some() =>
        {
            let keys = def.list_keys(schema).unwrap_or_default().to_vec();
            if !live.is_array() {
                *live = Value::Array(Vec::new());
            }
            let Value::Array(target) = live else {
                return;
            };
            let element_schema = format!("{schema}[]");
            for item in items {
                let key = element_key(item, &keys);
                match target.iter_mut().find(|t| element_key(t, &keys) == key) {
                    Some(existing) => merge_applied(existing, item, def, &element_schema),
                    None => {
                        let mut fresh = Value::Null;
                        merge_applied(&mut fresh, item, def, &element_schema);
                        target.push(fresh);
                    }
                }
            }
        }
        other => *live = other.clone(),
    }
}

fn conflict_error(
    def: &ResourceDef,
    live: &Value,
    managers: &[Manager],
    conflicts: &[(usize, Path)],
) -> ApiError {
    let name = live["metadata"]["name"].as_str().unwrap_or_default();
    let n = conflicts.len();
    let mut message = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let mut causes = Vec::new();
    let mut by_manager: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, path) in conflicts {
        let field = fields::path_string(path);
        let who = &managers[*i];
        causes.push(json!({
            "type": "FieldManagerConflict",
            "message": format!("conflict with \"{}\" using {}", who.manager, who.api_version),
            "field": field,
        }));
        match by_manager.iter_mut().find(|(j, _)| j == i) {
            Some((_, paths)) => paths.push(field),
            None => by_manager.push((*i, vec![field])),
        }
    }
    if n == 1 {
        let who = &managers[conflicts[0].0];
        message.push_str(&format!(
            "conflict with \"{}\" using {}: {}",
            who.manager,
            who.api_version,
            fields::path_string(&conflicts[0].1)
        ));
    } else {
        let parts: Vec<String> = by_manager
            .iter()
            .map(|(i, paths)| {
                let who = &managers[*i];
                let list: Vec<String> = paths.iter().map(|p| format!("- {p}")).collect();
                format!(
                    "conflicts with \"{}\" using {}:\n{}",
                    who.manager,
                    who.api_version,
                    list.join("\n")
                )
            })
            .collect();
        message.push_str(&parts.join("\n"));
    }
    let mut error = ApiError::conflict(&def.group_resource(), name, "");
    error.message = message;
    if let Some(details) = error.details.as_mut() {
        details["causes"] = Value::Array(causes);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widgets() -> ResourceDef {
        ResourceDef::custom(
            "example.syscensus.io",
            "v1",
            "Widget",
            "widgets",
            true,
            true,
        )
        .list_map("spec.ports", &["port"])
    }

    fn identity() -> Value {
        json!({"apiVersion": "example.syscensus.io/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}})
    }

    fn with_managers(applied: Applied) -> Value {
        let mut object = applied.object;
        fields::write_managers(&mut object, &applied.managers, "2024-01-01T00:00:00Z");
        object
    }

    fn config(spec: Value) -> Value {
        let mut c = identity();
        c["spec"] = spec;
        c
    }

    #[test]
    fn two_managers_share_the_object() {
        let def = widgets();
        let a = with_managers(
            apply(
                &identity(),
                &config(json!({"size": 1})),
                &def,
                None,
                "a",
                false,
            )
            .unwrap(),
        );
        let b = with_managers(
            apply(&a, &config(json!({"color": "red"})), &def, None, "b", false).unwrap(),
        );
        assert_eq!(b["spec"], json!({"size": 1, "color": "red"}));
        assert_eq!(b["metadata"]["managedFields"].as_array().unwrap().len(), 2);

        let err = apply(&b, &config(json!({"size": 2})), &def, None, "b", false).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\" using example.syscensus.io/v1: .spec.size"
        );

        // Same value: shared ownership, no conflict.
        let shared = with_managers(
            apply(
                &b,
                &config(json!({"size": 1, "color": "red"})),
                &def,
                None,
                "b",
                false,
            )
            .unwrap(),
        );
        // a stops applying size: b still owns it, so it stays.
        let kept =
            with_managers(apply(&shared, &config(json!({})), &def, None, "a", false).unwrap());
        assert_eq!(kept["spec"]["size"], 1);

        let forced = with_managers(
            apply(
                &b,
                &config(json!({"size": 2, "color": "red"})),
                &def,
                None,
                "b",
                true,
            )
            .unwrap(),
        );
        assert_eq!(forced["spec"]["size"], 2);
        // a lost size; applying without it removes nothing of b's.
        let a_again =
            with_managers(apply(&forced, &config(json!({})), &def, None, "a", false).unwrap());
        assert_eq!(a_again["spec"], json!({"size": 2, "color": "red"}));
    }

    #[test]
    fn dropped_fields_are_removed_and_list_maps_merge() {
        let def = widgets();
        let a = with_managers(
            apply(
                &identity(),
                &config(json!({"ports": [{"port": 1, "name": "x"}], "size": 1})),
                &def,
                None,
                "a",
                false,
            )
            .unwrap(),
        );
        let b = with_managers(
            apply(
                &a,
                &config(json!({"ports": [{"port": 2}]})),
                &def,
                None,
                "b",
                false,
            )
            .unwrap(),
        );
        assert_eq!(
            b["spec"]["ports"],
            json!([{"port": 1, "name": "x"}, {"port": 2}])
        );
        let a2 = with_managers(
            apply(&b, &config(json!({"ports": []})), &def, None, "a", false).unwrap(),
        );
        assert_eq!(a2["spec"], json!({"ports": [{"port": 2}]}));
    }
}
