//! Where exported profiles come from: the cluster's ContainerProfiles, or
//! files: ContainerProfile objects (as `kubectl get -o yaml|json` writes
//! them, single or in a List) and the ContainerRecording documents of an
//! agent's state directory.
use std::{
    fs,
    path::{Path, PathBuf},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, api::ListParams};
use serde::Deserialize as _;
use serde_json::Value;
use syscensus_api::{
    BaseSetRef, ContainerProfile, ContainerProfileSpec, WorkloadKind, WorkloadRef, labels,
};

use super::{
    ExportError,
    plan::{Base, Entry},
};
use crate::{container_recording::ContainerRecording, refusal::report::ContainerRefusals};

/// Which profiles to export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only the ContainerProfiles of this ProfileRecording.
    pub recording: Option<String>,
}

impl Filter {
    fn keeps(&self, entry: &Entry, from_recording_object: bool) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| *n == entry.namespace)
            && (!from_recording_object
                || self
                    .recording
                    .as_ref()
                    .is_none_or(|r| *r == entry.spec.recording))
    }

    /// The selection in words, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.namespace {
            parts.push(format!("namespace {n}"));
        }
        if let Some(r) = &self.recording {
            parts.push(format!("recording {r}"));
        }
        if parts.is_empty() {
            "all namespaces".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Every document of a YAML or JSON file, in order (empty YAML documents
/// left out).
pub fn read_documents(path: &Path) -> Result<Vec<Value>, ExportError> {
    let text = fs::read_to_string(path).map_err(ExportError::read(path))?;
    let parse_error = |message: String| ExportError::Parse {
        path: path.to_path_buf(),
        message,
    };
    if text.trim_start().starts_with(['{', '[']) {
        let value: Value = serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        return Ok(vec![value]);
    }
    let mut out = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| parse_error(e.to_string()))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The YAML and JSON files below `dir`, sorted; hidden files and
/// directories (such as `.git`) are left out.
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).map_err(ExportError::read(&current))? {
            let entry = entry.map_err(ExportError::read(&current))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let file_type = entry.file_type().map_err(ExportError::read(&path))?;
            if file_type.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The profiles in `path`: a file, an agent's state directory (its
/// `containers/` documents), or a directory of files. A named file must hold
/// only profiles; in a directory, other documents are skipped.
pub fn file_entries(path: &Path, filter: &Filter) -> Result<Vec<Entry>, ExportError> {
    let (files, strict) = if path.is_dir() {
        let containers = path.join("containers");
        if containers.is_dir() {
            (walk(&containers)?, true)
        } else {
            (walk(path)?, false)
        }
    } else {
        (vec![path.to_path_buf()], true)
    };
    let mut out = Vec::new();
    for file in files {
        for (index, document) in read_documents(&file)?.into_iter().enumerate() {
            collect(&file, index + 1, document, strict, filter, &mut out)?;
        }
    }
    Ok(out)
}

fn collect(
    path: &Path,
    index: usize,
    document: Value,
    strict: bool,
    filter: &Filter,
    out: &mut Vec<Entry>,
) -> Result<(), ExportError> {
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let parse_error = |e: serde_json::Error| ExportError::Parse {
        path: path.to_path_buf(),
        message: format!("document {index} ({kind}): {e}"),
    };
    match kind.as_str() {
        "ContainerProfile" => {
            let object: ContainerProfile =
                serde_json::from_value(document.clone()).map_err(parse_error)?;
            let namespace =
                object
                    .metadata
                    .namespace
                    .clone()
                    .ok_or_else(|| ExportError::Parse {
                        path: path.to_path_buf(),
                        message: format!(
                            "document {index}: ContainerProfile {:?} has no metadata.namespace",
                            object.metadata.name.unwrap_or_default()
                        ),
                    })?;
            let entry = Entry {
                namespace,
                spec: object.spec,
            };
            if filter.keeps(&entry, true) {
                out.push(entry);
            }
        }
        "ContainerRecording" => {
            let recording: ContainerRecording =
                serde_json::from_value(document).map_err(parse_error)?;
            match recording_entry(&recording) {
                Some(entry) if filter.keeps(&entry, false) => out.push(entry),
                Some(_) => {}
                None => tracing::warn!(
                    file = %path.display(),
                    container = %recording.container_id,
                    "the recording names no Pod or container: skipped"
                ),
            }
        }
        list if list == "List" || list.ends_with("List") => {
            let items = document
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                collect(path, index, item, strict, filter, out)?;
            }
        }
        other if strict => {
            return Err(ExportError::Document {
                path: path.to_path_buf(),
                index,
                kind: if other.is_empty() {
                    "document without a kind".to_owned()
                } else {
                    other.to_owned()
                },
            });
        }
        other => tracing::debug!(file = %path.display(), kind = other, "not a profile: skipped"),
    }
    Ok(())
}

fn time(text: &str) -> Time {
    Time(text.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// The refusal reports in `path` (`--with-denials`): an agent's state
/// directory (its `refusals/`), a directory of reports, a report, or the
/// array `syscensus denials -o json` prints. Other documents in a directory
/// are skipped; a file given by name must hold reports only.
pub fn denial_reports(path: &Path) -> Result<Vec<ContainerRefusals>, ExportError> {
    let (files, strict) = if path.is_dir() {
        let refusals = path.join("refusals");
        (
            walk(if refusals.is_dir() { &refusals } else { path })?,
            false,
        )
    } else {
        (vec![path.to_path_buf()], true)
    };
    let mut out = Vec::new();
    for file in files {
        let mut index = 0;
        for document in read_documents(&file)? {
            let items = match document {
                Value::Array(items) => items,
                other => vec![other],
            };
            for item in items {
                index += 1;
                let kind = item
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                if kind == crate::refusal::status::PROFILE_REFUSALS_KIND {
                    let refusals: crate::refusal::status::ProfileRefusals =
                        serde_json::from_value(item).map_err(|e| ExportError::Parse {
                            path: file.clone(),
                            message: format!("document {index} (LocalhostProfileRefusals): {e}"),
                        })?;
                    out.push(refusals.as_container_refusals());
                    continue;
                }
                if kind != crate::refusal::report::KIND {
                    if strict {
                        return Err(ExportError::NotDenials {
                            path: file.clone(),
                            index,
                            kind: if kind.is_empty() {
                                "document without a kind".to_owned()
                            } else {
                                kind
                            },
                        });
                    }
                    continue;
                }
                let report = serde_json::from_value(item).map_err(|e| ExportError::Parse {
                    path: file.clone(),
                    message: format!("document {index} (ContainerRefusals): {e}"),
                })?;
                out.push(report);
            }
        }
    }
    Ok(out)
}

/// What a ContainerRecording says, as a ContainerProfile spec. A recording
/// knows its Pod but not the Pod's owners: the workload is the Pod itself
/// (kind Pod, named after it). `None` when the recording names no Pod or
/// container.
pub fn recording_entry(recording: &ContainerRecording) -> Option<Entry> {
    let pod = recording.pod.as_ref()?;
    let namespace = pod.namespace.clone()?;
    let pod_name = pod.name.clone()?;
    let container = recording.container_name.clone()?;
    let runtime_base_set = recording.base_set().as_ref().map(BaseSetRef::from);
    Some(Entry {
        namespace,
        spec: ContainerProfileSpec {
            recording: "local".to_owned(),
            workload: WorkloadRef {
                kind: WorkloadKind::Pod,
                name: pod_name,
            },
            container,
            init_container: false,
            syscall_count: recording.syscalls.len() as i64,
            syscalls: recording.syscalls.to_spec(),
            runtime_base_set,
            contributors: Default::default(),
            first_seen: time(&recording.first_seen),
            last_seen: time(&recording.last_seen),
            last_new_syscall: recording.last_new_syscall.as_deref().map(time),
            warnings: recording.warnings.clone(),
            session_only_syscalls: recording.session_only_syscalls.to_spec(),
            sessions: recording
                .sessions
                .iter()
                .map(crate::container_recording::SessionRecord::summary)
                .collect(),
        },
    })
}

/// The cluster's ContainerProfiles that `filter` selects.
pub async fn cluster_entries(
    client: &kube::Client,
    filter: &Filter,
) -> Result<Vec<Entry>, ExportError> {
    let api: Api<ContainerProfile> = match &filter.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let mut params = ListParams::default();
    if let Some(recording) = &filter.recording {
        params = params.labels(&format!(
            "{}={}",
            labels::RECORDING,
            syscensus_api::label_value(recording)
        ));
    }
    let list = api
        .list(&params)
        .await
        .map_err(ExportError::kube("list ContainerProfiles"))?;
    let mut out = Vec::new();
    for object in list.items {
        let Some(namespace) = object.metadata.namespace.clone() else {
            continue;
        };
        let entry = Entry {
            namespace,
            spec: object.spec,
        };
        if filter.keeps(&entry, true) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The workload manifests in `dir` (or a single file), for `--base`.
pub fn read_base(path: &Path) -> Result<Base, ExportError> {
    let files = if path.is_dir() {
        walk(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut base = Base::default();
    for file in files {
        for document in read_documents(&file)? {
            base.add(&document);
        }
    }
    Ok(base)
}
