//! Tests' direct access to the server's objects: create, read, replace,
//! apply and delete as a client would, watch events included, without HTTP.

use serde_json::{Value, json};

use crate::{
    FakeApiServer, Gvr, ResourceDef, TEST_MANAGER, selector,
    status::ApiError,
    store::{Store, Write},
};

impl FakeApiServer {
    /// Registers (or replaces) a resource, such as a custom resource.
    pub fn register_custom(&self, def: ResourceDef) {
        self.shared.write(|s| s.register(def));
    }

    /// Creates a CustomResourceDefinition object (JSON value), which
    /// registers its resources as the real server does.
    pub fn create_crd(&self, crd: &Value) -> Result<Value, ApiError> {
        self.create(
            &Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            None,
            crd.clone(),
        )
    }

    /// Creates the CustomResourceDefinition of a Rust type.
    pub fn create_crd_of<K: kube::CustomResourceExt>(&self) -> Result<Value, ApiError> {
        let crd = serde_json::to_value(K::crd()).expect("a CRD serializes to JSON");
        self.create_crd(&crd)
    }

    fn write_as(manager: &str) -> Write<'_> {
        Write {
            subresource: None,
            manager,
            dry_run: false,
        }
    }

    /// Creates an object, as a POST would (watch events included).
    pub fn create(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, ApiError> {
        self.shared
            .write(|s| s.create(gvr, namespace, object, Self::write_as(TEST_MANAGER)))
    }

    /// One object.
    pub fn get(&self, gvr: &Gvr, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.shared.read(|s| s.get(gvr, namespace, name))
    }

    /// The objects of a resource in `namespace`, or in all namespaces.
    pub fn list(&self, gvr: &Gvr, namespace: Option<&str>) -> Result<Vec<Value>, ApiError> {
        self.shared
            .read(|s| s.list(gvr, namespace, &selector::Selectors::default()))
    }

    /// Replaces an object, as a PUT would; its name comes from the object.
    pub fn update(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.shared
            .write(|s| s.update(gvr, namespace, &name, object, Self::write_as(TEST_MANAGER)))
    }

    /// Server-side applies `object` as `manager`.
    pub fn apply(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        manager: &str,
        object: Value,
        force: bool,
    ) -> Result<Value, ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.shared.write(|s| {
            s.apply_patch(
                gvr,
                namespace,
                &name,
                &object,
                force,
                Self::write_as(manager),
            )
            .map(|(o, _)| o)
        })
    }

    /// Server-side applies `status` to the status subresource of an object
    /// (as [`TEST_MANAGER`], forced), as a kubelet or controller would.
    pub fn apply_status(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let (api_version, kind) = self
            .shared
            .read(|s| s.def(gvr).map(|d| (d.api_version(), d.kind.clone())))?;
        let body = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "status": status});
        let write = Write {
            subresource: Some("status"),
            manager: TEST_MANAGER,
            dry_run: false,
        };
        self.shared.write(|s| {
            s.apply_patch(gvr, namespace, name, &body, true, write)
                .map(|(o, _)| o)
        })
    }

    /// Deletes an object, as a DELETE would (objects with finalizers are
    /// only marked).
    pub fn delete(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.shared
            .write(|s| s.delete(gvr, namespace, name, &Value::Null))
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.read(Store::resource_version)
    }
}
