//! Whether the nodes a workload may run on have its profiles installed: the
//! nodes its pod template selects, the NodeProfileStatus reports of
//! syscensus profiles, and the Security Profiles Operator's own account.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use serde_json::Value;
use syscensus_api::NodeProfileStatus;

use super::Installer;
use crate::export::{ExportError, WorkloadPatch, pod_spec_pointer};

pub(super) fn node_selector(patch: &WorkloadPatch, live: &Value) -> BTreeMap<String, String> {
    live.pointer(&format!(
        "{}/nodeSelector",
        pod_spec_pointer(patch.workload.kind)
    ))
    .and_then(Value::as_object)
    .map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The Nodes whose labels match `selector`.
pub(super) fn matching_nodes(
    nodes: &[Node],
    selector: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| {
            let labels = n.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect()
}

/// What the nodes report of the syscensus profiles the export holds: per
/// node, path → SHA-256, and refusals (path → reason). Read in pages, and
/// only the paths asked about are kept, so that a large cluster's reports
/// do not all sit in memory.
#[derive(Debug, Default)]
pub(super) struct NodeReports {
    pub(super) installed: BTreeMap<String, BTreeMap<String, String>>,
    pub(super) refused: BTreeMap<String, BTreeMap<String, String>>,
}

pub(super) async fn node_reports(
    client: &Client,
    paths: &BTreeMap<String, String>,
) -> Result<NodeReports, ExportError> {
    let api: Api<NodeProfileStatus> = Api::all(client.clone());
    let mut reports = NodeReports::default();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(ExportError::kube("list NodeProfileStatuses"))?;
        for status in page.items {
            let node = status.spec.node.clone();
            let installed = reports.installed.entry(node.clone()).or_default();
            for entry in status.spec.installed {
                if paths.contains_key(&entry.localhost_profile) {
                    installed.insert(entry.localhost_profile, entry.sha256);
                }
            }
            for refusal in status.spec.refused {
                if let Some((path, _)) =
                    paths.iter().find(|(_, object)| **object == refusal.profile)
                {
                    reports
                        .refused
                        .entry(node.clone())
                        .or_default()
                        .insert(path.clone(), refusal.reason);
                }
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(reports)
}

/// Whether the Security Profiles Operator has installed the exported
/// SeccompProfile: `None` if so, else why not.
pub(super) async fn spo_problem(
    client: &Client,
    installer: &Installer,
) -> Result<Option<String>, ExportError> {
    let Installer::Spo {
        api_version,
        name,
        namespace,
        spec,
    } = installer
    else {
        return Ok(None);
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, "SeccompProfile"));
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let title = format!(
        "SeccompProfile {}{name}",
        namespace
            .as_ref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default()
    );
    let live = match api.get_opt(name).await {
        Ok(Some(live)) => live,
        Ok(None) => return Ok(Some(format!("{title} does not exist"))),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Ok(Some(format!(
                "{title} cannot be read: the Security Profiles Operator's {api_version} API is not served"
            )));
        }
        Err(error) => return Err(ExportError::kube(format!("read {title}"))(error)),
    };
    if live.data.get("spec") != Some(spec) {
        return Ok(Some(format!(
            "{title} is not the one exported (its spec differs)"
        )));
    }
    let state = live
        .data
        .pointer("/status/status")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if state != "Installed" {
        return Ok(Some(format!(
            "{title} is {state}, not Installed, by the Security Profiles Operator's account"
        )));
    }
    Ok(None)
}
