//! What the installer reads from and writes to the API server besides the
//! profiles: the pod templates that name a profile, this node's
//! NodeProfileStatus, and the Node that owns it.
use std::{collections::BTreeMap, path::Path};

use k8s_openapi::{
    api::core::v1::{Node, PodSpec},
    apimachinery::pkg::apis::meta::v1::{OwnerReference, Time},
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::{Value, json};
use syscensus_api::{FIELD_MANAGER, NodeProfileStatus, WorkloadKind};
use tracing::warn;

use super::{
    Installer,
    plan::{Template, localhost_profile},
};
use crate::localhost::{
    self,
    usage::{self, named_in_annotations, named_in_pod_spec, pod_spec_pointer},
};

impl Installer {
    /// What the pod template of the workload `relative` names says of it.
    pub(super) async fn template(&self, relative: &Path) -> Template {
        let localhost = localhost_profile(relative);
        let Some((namespace, kind, name)) = usage::workload_of(&localhost::slash_path(relative))
        else {
            return Template::DoesNot;
        };
        // A bare Pod's template is the Pod: if it is not on this node, it
        // never will be.
        if kind == WorkloadKind::Pod {
            return Template::DoesNot;
        }
        let (group, version) = kind.api_version().split_once('/').unwrap_or(("", "v1"));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind.as_str()));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &namespace, &resource);
        let title = format!("{} {namespace}/{name}", kind.as_str());
        match api.get_opt(&name).await {
            Ok(None) => Template::DoesNot,
            Ok(Some(object)) => {
                let object = serde_json::to_value(&object).unwrap_or_default();
                let spec: Option<PodSpec> = object
                    .pointer(pod_spec_pointer(kind))
                    .and_then(|v| serde_json::from_value(v.clone()).ok());
                let metadata = pod_spec_pointer(kind).trim_end_matches("/spec").to_owned()
                    + "/metadata/annotations";
                let annotations: BTreeMap<String, String> = object
                    .pointer(&metadata)
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let names = spec.is_some_and(|s| named_in_pod_spec(&s).contains_key(&localhost))
                    || named_in_annotations(&annotations).contains(&localhost);
                if names {
                    Template::Names(title)
                } else {
                    Template::DoesNot
                }
            }
            Err(error) => Template::Unknown(format!(
                "cannot read {title}: {}",
                crate::profile::excerpt(&error.to_string(), 200)
            )),
        }
    }

    /// Writes the node's NodeProfileStatus when `spec` differs from what
    /// it says.
    pub(super) async fn report(&mut self, mut spec: Value) {
        let api: Api<NodeProfileStatus> = Api::all(self.client.clone());
        if !self.read_back {
            match api.get_opt(&self.node).await {
                Ok(found) => {
                    self.read_back = true;
                    self.reported = found.and_then(|f| {
                        let mut v = serde_json::to_value(&f.spec).ok()?;
                        v.as_object_mut()?.remove("changed");
                        Some(v)
                    });
                }
                Err(error) => {
                    self.errors += 1;
                    warn!(%error, "cannot read this node's NodeProfileStatus; will retry");
                    return;
                }
            }
        }
        if self.reported.as_ref() == Some(&spec) {
            return;
        }
        if self.owner.is_none() {
            self.owner = self.node_owner().await;
        }
        let reported = spec.clone();
        spec["changed"] = json!(Time(jiff::Timestamp::now()));
        let mut metadata = json!({"name": self.node});
        if let Some(owner) = &self.owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        let patch = json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "NodeProfileStatus",
            "metadata": metadata,
            "spec": spec,
        });
        match api
            .patch(
                &self.node,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => self.reported = Some(reported),
            Err(error) => {
                self.errors += 1;
                warn!(%error, "cannot write this node's NodeProfileStatus; will retry");
            }
        }
    }

    /// This node's Node, as an owner: its NodeProfileStatus goes with it.
    pub(super) async fn node_owner(&self) -> Option<OwnerReference> {
        match Api::<Node>::all(self.client.clone())
            .get_opt(&self.node)
            .await
        {
            Ok(Some(node)) => Some(OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: self.node.clone(),
                uid: node.metadata.uid?,
                ..OwnerReference::default()
            }),
            Ok(None) => None,
            Err(error) => {
                warn!(%error, "cannot read this node's Node object; its NodeProfileStatus has no owner yet");
                None
            }
        }
    }
}
