//! The optional monitoring component (`deploy/components/monitoring`): it
//! renders with kustomize over deploy/base, its Service validates against
//! the Kubernetes schemas, and its ServiceMonitor against the Prometheus
//! Operator's CRD (`tests/data/third-party`, v0.93.0), which the Kubernetes
//! schemas do not hold: kubernetes-validate only warns that it has no schema
//! for it. The CRD's schema is made strict (unknown fields refused, as
//! `kubectl apply --validate=strict` refuses them) and checked with Python's
//! jsonschema. The Service must select the agent Pods and their metrics
//! port, and the ServiceMonitor that Service.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::process::Command;

use serde_json::{Value, json};
use syscensus_tests::{
    manifests::{render, render_path},
    workspace_root,
};

/// deploy/base with the monitoring component, as a user's overlay uses it.
fn render_with_monitoring() -> Vec<Value> {
    let overlay = tempfile::tempdir().unwrap();
    // kustomize takes only relative paths to other kustomizations.
    let up = "../".repeat(overlay.path().components().count() - 1);
    let root = workspace_root().display().to_string();
    let root = root.trim_start_matches('/');
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "resources: [{up}{root}/deploy/base]\ncomponents: [{up}{root}/deploy/components/monitoring]\n"
        ),
    )
    .unwrap();
    render_path(overlay.path(), "deploy/components/monitoring")
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The CRD's schema, strict: every object schema with properties refuses
/// others, unless it keeps unknown fields on purpose.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let keeps_unknown = map
                .get("x-kubernetes-preserve-unknown-fields")
                .is_some_and(|v| v == true);
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !keeps_unknown
            {
                map.insert("additionalProperties".into(), json!(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

fn service_monitor_schema() -> Value {
    let path = workspace_root()
        .join("tests/data/third-party/prometheus-operator-servicemonitors-crd.yaml");
    let crd: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let crd = serde_json::to_value(crd).unwrap();
    assert_eq!(crd["spec"]["names"]["kind"], "ServiceMonitor");
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .unwrap();
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    strict(&mut schema);
    schema
}

/// The errors of `doc` against `schema` (Python's jsonschema; the CRD's
/// OpenAPI v3 schema reads as JSON Schema draft 7 here).
fn schema_errors(schema: &Value, doc: &Value) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (schema_path, doc_path) = (dir.path().join("schema.json"), dir.path().join("doc.json"));
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    std::fs::write(&doc_path, doc.to_string()).unwrap();
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  doc = json.load(open(sys.argv[2]))\n\
                  for e in jsonschema.Draft7Validator(schema).iter_errors(doc):\n\
                  \x20   print('/'.join(map(str, e.absolute_path)) + ': ' + e.message)\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&schema_path)
        .arg(&doc_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python3 jsonschema (installed with kubernetes-validate by scripts/setup): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_monitoring_component_renders_and_validates() {
    let docs = render_with_monitoring();
    let rendered = tempfile::NamedTempFile::new().unwrap();
    let yaml: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_norway::to_string(d).unwrap()))
        .collect();
    std::fs::write(rendered.path(), yaml).unwrap();
    // The newest schemas the validator has, and the oldest release the
    // manifests are for (as tests/deploy.rs checks the others).
    for version in [None, Some("1.30.0")] {
        let mut validate = Command::new("python3");
        validate.args(["-m", "kubernetes_validate", "--strict"]);
        if let Some(version) = version {
            validate.args(["--kubernetes-version", version]);
        }
        let validate = validate.arg(rendered.path()).output().unwrap();
        let said = String::from_utf8_lossy(&validate.stdout);
        assert!(
            validate.status.success(),
            "does not validate ({version:?}): {said}{}",
            String::from_utf8_lossy(&validate.stderr)
        );
        assert!(
            said.contains("passed for resource service/syscensus-agent-metrics"),
            "{said}"
        );
        // What the Kubernetes schemas cannot check:
        assert!(
            said.contains("Couldn't find schema for kind ServiceMonitor"),
            "kubernetes-validate learned the ServiceMonitor: check it there too\n{said}"
        );
    }
    let schema = service_monitor_schema();
    let monitor = find(&docs, "ServiceMonitor");
    let errors = schema_errors(&schema, monitor);
    assert!(
        errors.is_empty(),
        "the ServiceMonitor does not validate: {errors:?}"
    );
    // The check can fail: a misspelt field, a wrong type.
    let mut misspelt = monitor.clone();
    misspelt["spec"]["endpoints"][0]["intervall"] = json!("30s");
    misspelt["spec"]["endpoints"][0]["relabelings"][0]["action"] = json!("rename");
    let errors = schema_errors(&schema, &misspelt);
    assert!(
        errors.iter().any(|e| e.contains("intervall"))
            && errors.iter().any(|e| e.contains("rename")),
        "{errors:?}"
    );
}

#[test]
fn the_service_monitor_reaches_every_agents_metrics_port() {
    let docs = render_with_monitoring();
    let daemonset = find(&docs, "DaemonSet");
    let service = find(&docs, "Service");
    let monitor = find(&docs, "ServiceMonitor");
    let namespace = &daemonset["metadata"]["namespace"];
    assert_eq!(&service["metadata"]["namespace"], namespace);
    assert_eq!(&monitor["metadata"]["namespace"], namespace);
    // The Service selects the agent Pods, on their metrics port.
    let pod_labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value, "the Service selects by {key}");
    }
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "one endpoint per agent"
    );
    let port = &service["spec"]["ports"][0];
    let agent = &daemonset["spec"]["template"]["spec"]["containers"][0];
    let container_port = agent["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .unwrap_or_else(|| panic!("no container port {}", port["targetPort"]));
    let listen = agent["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SYSCENSUS_LISTEN")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        listen.rsplit(':').next().unwrap(),
        container_port["containerPort"].to_string(),
        "the agent listens on the port the Service targets"
    );
    // The ServiceMonitor selects that Service, by its port's name.
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "selects by {key}"
        );
    }
    assert!(
        monitor["spec"]["namespaceSelector"]["matchNames"]
            .as_array()
            .unwrap()
            .contains(namespace)
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], port["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    // The component adds these two and changes nothing else.
    let base = render("deploy/base");
    let rest: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] != "Service" && d["kind"] != "ServiceMonitor")
        .collect();
    assert_eq!(rest, base.iter().collect::<Vec<_>>());
}
