//! Writes: create, replace, JSON merge patch and server-side apply, with
//! the real server's preconditions, generation and managed fields.

use serde_json::{Value, json};

use super::{Store, Write};
use crate::{
    apply,
    fields::{self, Manager},
    resources::{Gvr, ResourceDef},
    status::ApiError,
    strategy::{
        check_name, check_namespace_of, checked_body, now, prepare_update, random_suffix,
        random_uid, record_update,
    },
};

impl Store {
    /// POST: creates an object; its namespace must exist.
    pub(crate) fn create(
        &mut self,
        gvr: &Gvr,
        namespace: Option<&str>,
        body: Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let def = self.def(gvr)?.clone();
        if write.subresource.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let mut object = checked_body(&def, body)?;
        let meta = object["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
        {
            let name = format!("{prefix}{}", random_suffix());
            meta.insert("name".to_owned(), json!(name));
        }
        self.insert_new(&def, namespace, object, None, write)
    }

    /// Stores a new object (from a create or an apply that creates),
    /// `managers` being the applier's entry or None for an `Update` entry
    /// owning every field.
    fn insert_new(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        mut object: Value,
        managers: Option<Vec<Manager>>,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let gr = def.group_resource();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            return Err(ApiError::invalid(
                &gr,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        let ns = self.check_namespace(def, namespace, &object)?;
        if object["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if self
            .objects
            .get(&def.gvr())
            .is_some_and(|o| o.contains_key(&(ns.clone(), name.clone())))
        {
            return Err(ApiError::already_exists(&gr, &name));
        }
        if def.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        match def.kind.as_str() {
            "Pod" if def.group.is_empty() => object["status"] = json!({"phase": "Pending"}),
            "Namespace" if def.group.is_empty() => object["status"] = json!({"phase": "Active"}),
            _ => {}
        }
        let meta = object["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("uid".to_owned(), json!(random_uid()));
        meta.insert("creationTimestamp".to_owned(), json!(now()));
        meta.insert("generation".to_owned(), json!(1));
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if def.namespaced {
            meta.insert("namespace".to_owned(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        let managers = match managers {
            Some(m) => m,
            None => {
                let mut m = Vec::new();
                record_update(&mut m, None, &object, def, write);
                m
            }
        };
        let crd_defs = self.crd_hook(def, &mut object)?;
        let created = self.commit(def, &ns, &name, None, object, &managers, write.dry_run)?;
        if !write.dry_run {
            crd_defs.into_iter().for_each(|d| self.register(d));
        }
        Ok(created)
    }

    /// PUT: replaces an object (or its status); a resourceVersion in the
    /// body is a precondition.
    pub(crate) fn update(
        &mut self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let def = self.def(gvr)?.clone();
        let old = self.get(gvr, namespace, name)?;
        let body = checked_body(&def, body)?;
        check_name(&body, name)?;
        check_namespace_of(&def, &body, namespace)?;
        let rv = body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if !rv.is_empty() && rv != old["metadata"]["resourceVersion"] {
            return Err(ApiError::stale(&def.group_resource(), name));
        }
        self.write_existing(&def, old, body, write)
    }

    /// PATCH with a JSON merge patch (RFC 7386) of an existing object: its
    /// maps merge, `null` removes, anything else replaces; then an update.
    pub(crate) fn merge_patch(
        &mut self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let mut object = self.get(gvr, namespace, name)?;
        merge(&mut object, patch);
        self.update(gvr, namespace, name, object, write)
    }

    /// PATCH with a server-side apply patch (the only format served).
    pub(crate) fn apply_patch(
        &mut self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
        force: bool,
        write: Write<'_>,
    ) -> Result<(Value, bool), ApiError> {
        let def = self.def(gvr)?.clone();
        if write.subresource.is_some_and(|s| s != "status")
            || (write.subresource.is_some() && !def.status_subresource)
        {
            return Err(ApiError::no_route());
        }
        let existing = self.get(gvr, namespace, name);
        self.apply(&def, namespace, name, existing.ok(), body, force, write)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per part of an apply request"
    )]
    fn apply(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        live: Option<Value>,
        body: &Value,
        force: bool,
        write: Write<'_>,
    ) -> Result<(Value, bool), ApiError> {
        let gr = def.group_resource();
        if write.manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH requests with an apply patch need a fieldManager",
            ));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        if body["apiVersion"].as_str().is_none_or(str::is_empty)
            || body["kind"].as_str().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply configuration",
            ));
        }
        let mut config = checked_body(def, body.clone())?;
        if config["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            config["metadata"]["name"] = json!(name);
        }
        check_name(&config, name)?;
        check_namespace_of(def, &config, namespace)?;
        let rv = config["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match live {
            Some(old) => {
                if !rv.is_empty() && rv != old["metadata"]["resourceVersion"] {
                    return Err(ApiError::stale(&gr, name));
                }
                let applied =
                    apply::apply(&old, &config, def, write.subresource, write.manager, force)?;
                let ns = Self::key(def, namespace)?;
                let mut object = prepare_update(def, &old, applied.object, write.subresource);
                let crd_defs = self.crd_hook(def, &mut object)?;
                let written = self.commit(
                    def,
                    &ns,
                    name,
                    Some(&old),
                    object,
                    &applied.managers,
                    write.dry_run,
                )?;
                if !write.dry_run {
                    crd_defs.into_iter().for_each(|d| self.register(d));
                }
                Ok((written, false))
            }
            None => {
                if write.subresource.is_some() {
                    return Err(ApiError::not_found(&gr, name));
                }
                if !rv.is_empty() {
                    return Err(ApiError::stale(&gr, name));
                }
                let mut identity = json!({
                    "apiVersion": def.api_version(),
                    "kind": def.kind,
                    "metadata": {"name": name},
                });
                if let Some(ns) = namespace.filter(|_| def.namespaced) {
                    identity["metadata"]["namespace"] = json!(ns);
                }
                let applied = apply::apply(&identity, &config, def, None, write.manager, force)?;
                let created = self.insert_new(
                    def,
                    namespace,
                    applied.object,
                    Some(applied.managers),
                    write,
                )?;
                Ok((created, true))
            }
        }
    }

    /// Writes a new version of an existing object: the strategy keeps what
    /// the write may not change, managed fields follow the changes.
    fn write_existing(
        &mut self,
        def: &ResourceDef,
        old: Value,
        new: Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let ns = old["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = old["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut object = prepare_update(def, &old, new, write.subresource);
        let mut managers = fields::read_managers(&old);
        record_update(&mut managers, Some(&old), &object, def, write);
        let crd_defs = self.crd_hook(def, &mut object)?;
        let written = self.commit(
            def,
            &ns,
            &name,
            Some(&old),
            object,
            &managers,
            write.dry_run,
        )?;
        if !write.dry_run {
            crd_defs.into_iter().for_each(|d| self.register(d));
        }
        Ok(written)
    }
}

/// RFC 7386: maps merge, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        target.clone_from(patch);
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}
