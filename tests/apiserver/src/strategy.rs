//! What a write may change and what it sets, as the real server's
//! strategies decide: kind and names, the status subresource, generation,
//! managed fields of updates, no-op detection, uids and timestamps.

use serde_json::{Map, Value, json};

use super::{
    fields::{self, Manager},
    resources::ResourceDef,
    status::ApiError,
    store::Write,
};

/// Checks kind and apiVersion (filled in when absent) and that metadata is
/// an object.
pub(crate) fn checked_body(def: &ResourceDef, mut body: Value) -> Result<Value, ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let api_version = def.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => map.insert("apiVersion".to_owned(), json!(api_version)),
    };
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => map.insert("kind".to_owned(), json!(def.kind)),
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    Ok(body)
}

pub(crate) fn check_name(object: &Value, name: &str) -> Result<(), ApiError> {
    match object["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// The namespace in a body, if any, must be the request's.
pub(crate) fn check_namespace_of(
    def: &ResourceDef,
    object: &Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if def.namespaced && !ns.is_empty() && Some(ns) != namespace => {
            Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(()),
    }
}

/// What a write may change: a write to `/status` only the status; a write
/// to the resource neither identity, server-set metadata nor (with a status
/// subresource) the status.
pub(crate) fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
) -> Value {
    if subresource == Some("status") {
        let mut object = old.clone();
        match new.get("status") {
            Some(status) => object["status"] = status.clone(),
            None => {
                object.as_object_mut().map(|m| m.remove("status"));
            }
        }
        return object;
    }
    new["apiVersion"] = json!(def.api_version());
    new["kind"] = json!(def.kind);
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
    ] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                new["metadata"].as_object_mut().map(|m| m.remove(k));
            }
        }
    }
    if def.status_subresource {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    new
}

/// Gives `write.manager` (operation Update) the fields this write changed,
/// taking them from other managers, and drops ownership of removed fields.
pub(crate) fn record_update(
    managers: &mut Vec<Manager>,
    old: Option<&Value>,
    new: &Value,
    def: &ResourceDef,
    write: Write<'_>,
) {
    let new_tracked = fields::tracked(new, def, write.subresource);
    let old_tracked = old
        .map(|o| fields::tracked(o, def, write.subresource))
        .unwrap_or(Value::Null);
    let new_leaves = fields::leaves(&new_tracked, def);
    let old_leaves = fields::leaves(&old_tracked, def);
    let changed: Vec<fields::Path> = new_leaves
        .iter()
        .filter(|(path, leaf)| old_leaves.get(*path) != Some(*leaf))
        .map(|(path, _)| path.clone())
        .collect();
    if !changed.is_empty() {
        for m in managers.iter_mut() {
            for path in &changed {
                m.fields.remove(path);
            }
        }
        let entry = match managers
            .iter_mut()
            .position(|m| m.is(write.manager, "Update", write.subresource))
        {
            Some(i) => &mut managers[i],
            None => {
                managers.push(Manager {
                    manager: write.manager.to_owned(),
                    operation: "Update".to_owned(),
                    api_version: def.api_version(),
                    time: None,
                    subresource: write.subresource.map(str::to_owned),
                    fields: Default::default(),
                });
                managers.last_mut().expect("just pushed")
            }
        };
        entry.fields.extend(changed);
        entry.time = None;
    }
    for m in managers.iter_mut() {
        m.fields.retain(|p| fields::get(new, p).is_some());
    }
    managers.retain(|m| !m.fields.is_empty());
}

/// Whether anything but metadata (and, with a status subresource, status)
/// changed: what bumps `metadata.generation`.
pub(crate) fn spec_changed(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            if def.status_subresource {
                map.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Equal but for resourceVersion and managed-fields times.
pub(crate) fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
            if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
                for e in entries {
                    e.as_object_mut().map(|m| m.remove("time"));
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// The current time as Kubernetes writes it.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn random_u64() -> u64 {
    use std::{
        hash::BuildHasher,
        sync::atomic::{AtomicU64, Ordering},
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn random_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}
