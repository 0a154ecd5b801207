//! The object store: objects by resource, namespace and name, one global
//! resourceVersion, a bounded history of changes for watches, and the
//! write semantics of the real server (status subresource, generation,
//! preconditions, managed fields).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::{
    fields::{self, Manager},
    resources::{self, Gvr, ResourceDef},
    selector::Selectors,
    status::ApiError,
    strategy::{now, same_object, spec_changed},
};

mod write;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept for watches.
#[derive(Debug, Clone)]
pub(crate) struct HistoryEvent {
    pub(crate) rv: u64,
    pub(crate) gvr: Gvr,
    pub(crate) namespace: String,
    pub(crate) kind: EventType,
    pub(crate) object: Value,
    /// The object before a modification, to turn a change across a
    /// selector into ADDED or DELETED for a watch with that selector.
    pub(crate) previous: Option<Value>,
}

/// How a write is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Write<'a> {
    pub(crate) subresource: Option<&'a str>,
    pub(crate) manager: &'a str,
    pub(crate) dry_run: bool,
}

/// The objects and their history.
#[derive(Debug)]
pub(crate) struct Store {
    defs: Vec<ResourceDef>,
    objects: BTreeMap<Gvr, BTreeMap<(String, String), Value>>,
    rv: u64,
    history: VecDeque<HistoryEvent>,
    history_limit: usize,
    /// Watches from a resourceVersion older than this get 410 Gone.
    compacted: u64,
}

const NAMESPACES: &str = "namespaces";

impl Store {
    /// A store with the built-in resources and the namespaces a new
    /// cluster has, whose resourceVersions count from `base`.
    pub(crate) fn new(history_limit: usize, base: u64) -> Self {
        let mut store = Self {
            defs: resources::builtins(),
            objects: BTreeMap::new(),
            rv: base,
            history: VecDeque::new(),
            history_limit,
            compacted: base,
        };
        let namespaces = Gvr::new("", "v1", NAMESPACES);
        let write = Write {
            subresource: None,
            manager: "kube-apiserver",
            dry_run: false,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store
                .create(&namespaces, None, object, write)
                .expect("a new store takes its namespaces");
        }
        store
    }

    /// The current resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Registers (or replaces) a resource.
    pub(crate) fn register(&mut self, def: ResourceDef) {
        self.defs.retain(|d| d.gvr() != def.gvr());
        self.defs.push(def);
    }

    /// Every registered resource.
    pub(crate) fn defs(&self) -> &[ResourceDef] {
        &self.defs
    }

    /// The definition of `gvr`, or 404.
    pub(crate) fn def(&self, gvr: &Gvr) -> Result<&ResourceDef, ApiError> {
        self.defs
            .iter()
            .find(|d| d.gvr() == *gvr)
            .ok_or_else(ApiError::no_route)
    }

    /// Sets how many changes are kept for watches.
    pub(crate) fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit.max(1);
        self.trim();
    }

    /// Forgets every change so far: a watch from an older resourceVersion
    /// gets 410 Gone and must list again.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The changes after `since`, or None when some of them were forgotten.
    pub(crate) fn events_since(&self, since: u64) -> Option<Vec<HistoryEvent>> {
        if since < self.compacted {
            return None;
        }
        let start = self.history.partition_point(|e| e.rv <= since);
        Some(self.history.iter().skip(start).cloned().collect())
    }

    /// The oldest resourceVersion a watch may start from.
    pub(crate) fn oldest_watchable(&self) -> u64 {
        self.compacted
    }

    fn key(def: &ResourceDef, namespace: Option<&str>) -> Result<String, ApiError> {
        match (def.namespaced, namespace) {
            (true, Some(ns)) => Ok(ns.to_owned()),
            (true, None) => Err(ApiError::no_route()),
            (false, _) => Ok(String::new()),
        }
    }

    /// One object.
    pub(crate) fn get(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let def = self.def(gvr)?;
        let ns = Self::key(def, namespace)?;
        self.objects
            .get(gvr)
            .and_then(|objects| objects.get(&(ns, name.to_owned())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.group_resource(), name))
    }

    /// The objects of `gvr` in `namespace` (all namespaces when None) that
    /// match `selectors`, sorted by namespace and name.
    pub(crate) fn list(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        selectors: &Selectors,
    ) -> Result<Vec<Value>, ApiError> {
        let def = self.def(gvr)?;
        let ns = if def.namespaced { namespace } else { None };
        Ok(self
            .objects
            .get(gvr)
            .into_iter()
            .flatten()
            .filter(|((o_ns, _), _)| ns.is_none_or(|ns| ns == o_ns))
            .map(|(_, o)| o)
            .filter(|o| selectors.matches(o))
            .cloned()
            .collect())
    }

    /// DELETE: removes an object (finalizers and the garbage collector are
    /// not served). `options` is the DeleteOptions body (preconditions).
    pub(crate) fn delete(
        &mut self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let def = self.def(gvr)?.clone();
        let gr = def.group_resource();
        let old = self.get(gvr, namespace, name)?;
        let pre = &options["preconditions"];
        if let Some(uid) = pre["uid"].as_str()
            && uid != old["metadata"]["uid"]
        {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = pre["resourceVersion"].as_str()
            && rv != old["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    old["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                ),
            ));
        }
        let ns = old["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if def.group.is_empty() && def.plural == NAMESPACES {
            self.delete_contents(name);
        }
        if def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions" {
            for served in resources::from_crd(&old).unwrap_or_default() {
                self.drop_resource(&served.gvr());
            }
        }
        Ok(self.remove(&def.gvr(), &ns, name))
    }

    fn remove(&mut self, gvr: &Gvr, ns: &str, name: &str) -> Value {
        let mut object = self
            .objects
            .get_mut(gvr)
            .and_then(|o| o.remove(&(ns.to_owned(), name.to_owned())))
            .unwrap_or(Value::Null);
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(gvr, ns, EventType::Deleted, &object, None);
        object
    }

    fn delete_contents(&mut self, namespace: &str) {
        let doomed: Vec<(Gvr, String)> = self
            .objects
            .iter()
            .flat_map(|(gvr, objects)| {
                objects
                    .keys()
                    .filter(|(ns, _)| ns == namespace)
                    .map(|(_, name)| (gvr.clone(), name.clone()))
            })
            .collect();
        for (gvr, name) in doomed {
            self.remove(&gvr, namespace, &name);
        }
    }

    fn drop_resource(&mut self, gvr: &Gvr) {
        let doomed: Vec<(String, String)> = self
            .objects
            .get(gvr)
            .into_iter()
            .flat_map(|o| o.keys().cloned())
            .collect();
        for (ns, name) in doomed {
            self.remove(gvr, &ns, &name);
        }
        self.defs.retain(|d| d.gvr() != *gvr);
    }

    /// For a CustomResourceDefinition being written: its resources (to
    /// register once stored) and the status the real server gives an
    /// accepted definition.
    fn crd_hook(
        &self,
        def: &ResourceDef,
        object: &mut Value,
    ) -> Result<Vec<ResourceDef>, ApiError> {
        if def.group != "apiextensions.k8s.io" || def.plural != "customresourcedefinitions" {
            return Ok(Vec::new());
        }
        let defs = resources::from_crd(object)?;
        let condition = |kind: &str| json!({"type": kind, "status": "True", "reason": kind, "message": "", "lastTransitionTime": now()});
        let served: Vec<&str> = defs.iter().map(|d| d.version.as_str()).collect();
        object["status"] = json!({
            "acceptedNames": object["spec"]["names"],
            "conditions": [condition("NamesAccepted"), condition("Established")],
            "storedVersions": served,
        });
        Ok(defs)
    }

    fn check_namespace(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        object: &Value,
    ) -> Result<String, ApiError> {
        if !def.namespaced {
            return Ok(String::new());
        }
        let Some(ns) = namespace else {
            return Err(ApiError::no_route());
        };
        if object["metadata"]["namespace"]
            .as_str()
            .is_some_and(|o| !o.is_empty() && o != ns)
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let exists = self
            .objects
            .get(&Gvr::new("", "v1", NAMESPACES))
            .is_some_and(|o| o.contains_key(&(String::new(), ns.to_owned())));
        if !exists {
            return Err(ApiError::not_found(NAMESPACES, ns));
        }
        Ok(ns.to_owned())
    }

    /// Stores `new` (unless it changes nothing, which is no write at all, as
    /// on the real server), with a new resourceVersion and generation, and
    /// records the change.
    #[allow(clippy::too_many_arguments, reason = "the parts of one write")]
    fn commit(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        old: Option<&Value>,
        mut new: Value,
        managers: &[Manager],
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        super::events::validate(def, old, &new)?;
        fields::write_managers(&mut new, managers, &now());
        if let Some(old) = old {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let bump = i64::from(spec_changed(def, old, &new));
            new["metadata"]["generation"] = json!(generation + bump);
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            if same_object(old, &new) {
                return Ok(old.clone());
            }
        }
        if dry_run {
            return Ok(new);
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let gvr = def.gvr();
        self.objects
            .entry(gvr.clone())
            .or_default()
            .insert((ns.to_owned(), name.to_owned()), new.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(&gvr, ns, kind, &new, old);
        Ok(new)
    }

    fn record(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        kind: EventType,
        object: &Value,
        previous: Option<&Value>,
    ) {
        self.history.push_back(HistoryEvent {
            rv: self.rv,
            gvr: gvr.clone(),
            namespace: ns.to_owned(),
            kind,
            object: object.clone(),
            previous: previous.cloned(),
        });
        self.trim();
    }

    fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
    }
}
