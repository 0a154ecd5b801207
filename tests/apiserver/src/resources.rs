//! The resources the server serves: built-in ones and custom resources
//! registered by a test or read from a CustomResourceDefinition.

use serde_json::Value;

use super::status::ApiError;

/// Group, version and plural resource name: where a kind lives in the API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvr {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, such as `v1`.
    pub version: String,
    /// Plural resource name, such as `pods`.
    pub resource: String,
}

impl Gvr {
    /// A resource by its parts; `group` is empty for the core group.
    pub fn new(group: &str, version: &str, resource: &str) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// The resource of a Rust type with static type information
    /// (k8s-openapi types and `#[derive(CustomResource)]` types).
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Self {
        Self {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            resource: K::plural(&()).into_owned(),
        }
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as error messages name resources.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// A list whose elements are identified by key fields
/// (`x-kubernetes-list-type: map`): server-side apply and strategic merge
/// merge its elements by those keys instead of replacing the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMap {
    /// Path of the list from the object's root: field names joined by `.`,
    /// with `[]` after a list whose elements the path goes into, such as
    /// `spec.containers[].ports`.
    pub path: String,
    /// Key fields of the elements, such as `["name"]`.
    pub keys: Vec<String>,
}

impl ListMap {
    /// A list map at `path` keyed by `keys`.
    pub fn new(path: &str, keys: &[&str]) -> Self {
        Self {
            path: path.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }
}

/// A resource the server serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    /// API group, empty for the core group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind, such as `Pod`.
    pub kind: String,
    /// Plural resource name, such as `pods`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether the resource has a `status` subresource: writes to the
    /// resource leave `status` alone and writes to `/status` change only it.
    pub status_subresource: bool,
    /// Lists merged by key.
    pub list_maps: Vec<ListMap>,
    /// Field selector labels besides `metadata.name` and
    /// `metadata.namespace`.
    pub field_labels: Vec<String>,
    /// Whether this is a custom resource (strategic merge patches are
    /// refused, as the real server refuses them).
    pub custom: bool,
}

impl ResourceDef {
    /// A custom resource: group, version, kind, plural, scope and whether it
    /// has the status subresource. Add list maps with
    /// [`ResourceDef::list_map`].
    pub fn custom(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        status_subresource: bool,
    ) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
            status_subresource,
            list_maps: Vec::new(),
            field_labels: Vec::new(),
            custom: true,
        }
    }

    /// The definition of a Rust custom resource type
    /// (`#[derive(CustomResource)]`), with its list maps found in its
    /// schema.
    pub fn of_crd<K: kube::CustomResourceExt>() -> Self {
        let crd = serde_json::to_value(K::crd()).unwrap_or_default();
        let version = K::api_resource().version;
        from_crd(&crd)
            .ok()
            .and_then(|defs| defs.into_iter().find(|d| d.version == version))
            .unwrap_or_else(|| {
                panic!(
                    "the CRD of {} has no served version {version}",
                    K::crd_name()
                )
            })
    }

    /// Adds a field selector label, such as `spec.nodeName` (what a CRD's
    /// `selectableFields` declares).
    #[must_use]
    pub fn field_label(mut self, label: &str) -> Self {
        self.field_labels.push(label.to_owned());
        self
    }

    /// Adds a list map at `path` keyed by `keys`.
    #[must_use]
    pub fn list_map(mut self, path: &str, keys: &[&str]) -> Self {
        self.list_maps.push(ListMap::new(path, keys));
        self
    }

    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        list_maps: Vec<ListMap>,
    ) -> Self {
        Self {
            custom: false,
            list_maps,
            ..Self::custom(group, version, kind, plural, namespaced, true)
        }
    }

    /// Group, version and resource.
    pub fn gvr(&self) -> Gvr {
        Gvr::new(&self.group, &self.version, &self.plural)
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        self.gvr().api_version()
    }

    /// `pods` or `deployments.apps`.
    pub fn group_resource(&self) -> String {
        self.gvr().group_resource()
    }

    /// The key fields of the list at `path`, if it is a list map.
    pub fn list_keys(&self, path: &str) -> Option<&[String]> {
        self.list_maps
            .iter()
            .find(|m| m.path == path)
            .map(|m| m.keys.as_slice())
    }

    /// Whether `label` may be used in a field selector.
    pub fn has_field_label(&self, label: &str) -> bool {
        matches!(label, "metadata.name" | "metadata.namespace")
            || self.field_labels.iter().any(|l| l == label)
    }
}

/// The list maps of a PodSpec at `prefix` (such as `spec` or
/// `spec.template.spec`), following the Kubernetes OpenAPI schema.
fn pod_spec_maps(prefix: &str) -> Vec<ListMap> {
    let mut maps = vec![ListMap::new(&format!("{prefix}.volumes"), &["name"])];
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let c = format!("{prefix}.{list}");
        maps.push(ListMap::new(&c, &["name"]));
        maps.push(ListMap::new(
            &format!("{c}[].ports"),
            &["containerPort", "protocol"],
        ));
        maps.push(ListMap::new(&format!("{c}[].env"), &["name"]));
        maps.push(ListMap::new(&format!("{c}[].volumeMounts"), &["mountPath"]));
    }
    maps
}

/// List maps every object has.
fn metadata_maps() -> Vec<ListMap> {
    vec![ListMap::new("metadata.ownerReferences", &["uid"])]
}

fn conditions() -> ListMap {
    ListMap::new("status.conditions", &["type"])
}

/// The resources every server starts with.
pub(crate) fn builtins() -> Vec<ResourceDef> {
    let workload = |kind: &str, plural: &str, template: &str| {
        let mut maps = pod_spec_maps(template);
        maps.push(conditions());
        ResourceDef::builtin("apps", "v1", kind, plural, true, maps)
    };
    let mut pod_maps = pod_spec_maps("spec");
    pod_maps.push(conditions());
    let mut pods = ResourceDef::builtin("", "v1", "Pod", "pods", true, pod_maps);
    pods.field_labels = [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut namespaces = ResourceDef::builtin(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        vec![conditions()],
    );
    namespaces.field_labels = vec!["status.phase".to_owned()];
    let mut nodes = ResourceDef::builtin("", "v1", "Node", "nodes", false, vec![conditions()]);
    nodes.field_labels = vec!["spec.unschedulable".to_owned()];
    let mut events = ResourceDef::builtin("", "v1", "Event", "events", true, vec![]);
    events.status_subresource = false;
    events.field_labels = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut new_events =
        ResourceDef::builtin("events.k8s.io", "v1", "Event", "events", true, vec![]);
    new_events.status_subresource = false;
    let mut configmaps = ResourceDef::builtin("", "v1", "ConfigMap", "configmaps", true, vec![]);
    configmaps.status_subresource = false;
    let mut leases =
        ResourceDef::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, vec![]);
    leases.status_subresource = false;
    let mut jobs = ResourceDef::builtin("batch", "v1", "Job", "jobs", true, {
        let mut maps = pod_spec_maps("spec.template.spec");
        maps.push(conditions());
        maps
    });
    jobs.field_labels = vec!["status.successful".to_owned()];
    let mut crds = ResourceDef::builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        vec![conditions(), ListMap::new("spec.versions", &["name"])],
    );
    crds.custom = false;
    let mut all = vec![
        pods,
        namespaces,
        nodes,
        events,
        new_events,
        configmaps,
        leases,
        workload("Deployment", "deployments", "spec.template.spec"),
        workload("ReplicaSet", "replicasets", "spec.template.spec"),
        workload("StatefulSet", "statefulsets", "spec.template.spec"),
        workload("DaemonSet", "daemonsets", "spec.template.spec"),
        jobs,
        ResourceDef::builtin("batch", "v1", "CronJob", "cronjobs", true, {
            let mut maps = pod_spec_maps("spec.jobTemplate.spec.template.spec");
            maps.push(conditions());
            maps
        }),
        crds,
    ];
    for def in &mut all {
        def.list_maps.extend(metadata_maps());
    }
    all
}

/// The resources of an `apiextensions.k8s.io/v1` CustomResourceDefinition
/// (JSON value): one per served version, with the list maps
/// (`x-kubernetes-list-type: map` and `x-kubernetes-list-map-keys`) found in
/// that version's schema, and its `selectableFields` as field labels.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceDef>, ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let invalid = |what: &str| {
        ApiError::invalid("customresourcedefinitions.apiextensions.k8s.io", name, what)
    };
    if crd["kind"] != "CustomResourceDefinition" {
        return Err(invalid("not a CustomResourceDefinition"));
    }
    let spec = &crd["spec"];
    let group = spec["group"]
        .as_str()
        .ok_or_else(|| invalid("spec.group: Required value"))?;
    let kind = spec["names"]["kind"]
        .as_str()
        .ok_or_else(|| invalid("spec.names.kind: Required value"))?;
    let plural = spec["names"]["plural"]
        .as_str()
        .ok_or_else(|| invalid("spec.names.plural: Required value"))?;
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err(invalid("spec.scope: Unsupported value")),
    };
    let versions = spec["versions"]
        .as_array()
        .ok_or_else(|| invalid("spec.versions: Required value"))?;
    let mut defs = Vec::new();
    for version in versions {
        if version["served"] == false {
            continue;
        }
        let Some(v) = version["name"].as_str() else {
            return Err(invalid("spec.versions[].name: Required value"));
        };
        let status = version["subresources"].get("status").is_some();
        let mut def = ResourceDef::custom(group, v, kind, plural, namespaced, status);
        find_list_maps(
            &version["schema"]["openAPIV3Schema"],
            "",
            &mut def.list_maps,
        );
        def.list_maps.extend(metadata_maps());
        for field in version["selectableFields"].as_array().into_iter().flatten() {
            if let Some(path) = field["jsonPath"].as_str() {
                def.field_labels
                    .push(path.trim_start_matches('.').to_owned());
            }
        }
        defs.push(def);
    }
    Ok(defs)
}

fn find_list_maps(schema: &Value, path: &str, out: &mut Vec<ListMap>) {
    if schema["x-kubernetes-list-type"] == "map"
        && let Some(keys) = schema["x-kubernetes-list-map-keys"].as_array()
    {
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        out.push(ListMap::new(path, &keys));
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            find_list_maps(property, &child, out);
        }
    }
    // List maps below `additionalProperties` (map values) are not tracked:
    // their paths would need the map's keys.
    if schema.get("items").is_some() {
        find_list_maps(&schema["items"], &format!("{path}[]"), out);
    }
}
