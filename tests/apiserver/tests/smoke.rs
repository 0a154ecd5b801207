//! The fake API server against the real `kube` client: CRUD on Pods,
//! watchers with selectors across 410 Gone and outages, bookmarks,
//! server-side apply on a custom resource and its status, merge patches
//! (the only other patch format served), injected failures, and the
//! standalone binary.
//! None of these need root.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, CustomResource, CustomResourceExt, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::{WatchStreamExt, utils::Backoff, watcher},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use syscensus_fake_apiserver::{FakeApiServer, Gvr, process::FakeApiServerProcess};

/// A small custom resource with a status subresource.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "example.syscensus.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
struct WidgetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    color: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

/// Sets a Pod's labels by server-side apply, as a controller would.
async fn relabel(pods: &Api<Pod>, name: &str, labels: Value) {
    let patch =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}});
    pods.patch(
        name,
        &PatchParams::apply("smoke-test").force(),
        &Patch::Apply(patch),
    )
    .await
    .unwrap();
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn pods_create_get_list_delete() {
    let server = FakeApiServer::start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());

    let created = pods
        .create(&PostParams::default(), &pod("p1", "node-a"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();
    pods.create(&PostParams::default(), &pod("p2", "node-b"))
        .await
        .unwrap();

    let again = api_error(
        pods.create(&PostParams::default(), &pod("p1", "node-a"))
            .await,
    );
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));

    let got = pods.get("p1").await.unwrap();
    assert_eq!(got.spec.unwrap().node_name.as_deref(), Some("node-a"));

    let list = pods.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["p1", "p2"]);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv > rv1);

    let on_b = pods
        .list(&ListParams::default().fields("spec.nodeName=node-b"))
        .await
        .unwrap();
    assert_eq!(on_b.items.len(), 1);
    let labelled = pods
        .list(&ListParams::default().labels("app in (web,db),!missing"))
        .await
        .unwrap();
    assert_eq!(labelled.items.len(), 2);
    let unsupported = api_error(
        pods.list(&ListParams::default().fields("spec.bogus=x"))
            .await,
    );
    assert_eq!(unsupported.code, 400);

    // Pages of one, with continue tokens.
    let page = pods.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let token = page.metadata.continue_.unwrap();
    let rest = pods
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items[0].name_any(), "p2");
    assert!(rest.metadata.continue_.is_none());

    // All namespaces, and metadata only.
    let all: Api<Pod> = Api::all(server.client());
    assert_eq!(
        all.list_metadata(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // PUT: a stale resourceVersion is a conflict.
    let stale = pods.get("p1").await.unwrap();
    relabel(&pods, "p1", json!({"v": "2"})).await;
    let conflict = api_error(pods.replace("p1", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    let deleted = pods.delete("p1", &DeleteParams::default()).await.unwrap();
    assert_eq!(deleted.left().unwrap().name_any(), "p1");
    let missing = api_error(pods.get("p1").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "pods \"p1\" not found");

    let in_store = server.list(&Gvr::of::<Pod>(), Some("default")).unwrap();
    assert_eq!(in_store.len(), 1);
    let methods: Vec<(String, u16)> = server
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .take(3)
        .collect();
    assert_eq!(
        methods,
        [
            ("POST".to_owned(), 201),
            ("POST".to_owned(), 201),
            ("POST".to_owned(), 409)
        ]
    );
}

#[tokio::test]
async fn errors_are_kubernetes_status_json() {
    let server = FakeApiServer::start();
    let client = server.client();
    for path in [
        "/api/v1/namespaces/default/pods/nope",
        "/apis/example.syscensus.io/v1/namespaces/default/widgets",
        "/api/v1/namespaces/nowhere/pods/x/log",
    ] {
        let request = hyper::Request::get(path).body(Vec::new().into()).unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status", "{path}");
        assert_eq!(status["apiVersion"], "v1");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A Pod in a namespace that does not exist.
    let pods: Api<Pod> = Api::namespaced(client, "nowhere");
    let err = api_error(pods.create(&PostParams::default(), &pod("p", "n")).await);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn apply_takes_yaml_and_needs_a_field_manager() {
    let server = FakeApiServer::start();
    let client = server.client();
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n";
    let patch = |query: &str| {
        hyper::Request::patch(format!("/api/v1/namespaces/default/configmaps/c{query}"))
            .header("content-type", "application/apply-patch+yaml")
            .body(yaml.as_bytes().to_vec().into())
            .unwrap()
    };
    assert_eq!(client.send(patch("")).await.unwrap().status(), 400);
    assert_eq!(
        client
            .send(patch("?fieldManager=yaml"))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        client
            .send(patch("?fieldManager=yaml"))
            .await
            .unwrap()
            .status(),
        200
    );
    let stored = server
        .get(&Gvr::new("", "v1", "configmaps"), Some("default"), "c")
        .unwrap();
    assert_eq!(stored["data"], json!({"k": "v"}));
    let last = server.requests().pop().unwrap();
    assert!(last.body.contains("kind: ConfigMap"), "{}", last.body);
}

#[tokio::test]
async fn kubeconfig_file_configures_the_client() {
    let server = FakeApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(names.contains(&"default".to_owned()), "{names:?}");
    assert_eq!(client.apiserver_version().await.unwrap().major, "1");
}

/// A short constant backoff, so the watcher reconnects quickly in tests.
struct Quick;

impl Iterator for Quick {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
}

impl Backoff for Quick {
    fn reset(&mut self) {}
}

/// Drives a watcher in a task, as a controller would, forwarding its
/// events as `init`, `init-apply NAME`, `init-done`, `apply NAME`,
/// `delete NAME` or `error`.
fn drive<S>(mut stream: S) -> tokio::sync::mpsc::UnboundedReceiver<String>
where
    S: Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send + Unpin + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let text = match item {
                Ok(watcher::Event::Init) => "init".to_owned(),
                Ok(watcher::Event::InitApply(p)) => format!("init-apply {}", p.name_any()),
                Ok(watcher::Event::InitDone) => "init-done".to_owned(),
                Ok(watcher::Event::Apply(p)) => format!("apply {}", p.name_any()),
                Ok(watcher::Event::Delete(p)) => format!("delete {}", p.name_any()),
                Err(_) => "error".to_owned(),
            };
            if tx.send(text).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next watcher event that is not an error; errors before it are
/// counted.
async fn next(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    errors: &mut usize,
) -> String {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("no watcher event within 10 s")
            .expect("the watcher stream ended");
        if event == "error" {
            *errors += 1;
        } else {
            return event;
        }
    }
}

#[tokio::test]
async fn watcher_sees_its_node_across_gone_and_outages() {
    let server = FakeApiServer::start();
    let pods_gvr = Gvr::of::<Pod>();
    let to_value = |p: Pod| serde_json::to_value(p).unwrap();
    server
        .create(&pods_gvr, Some("default"), to_value(pod("a1", "node-a")))
        .unwrap();
    server
        .create(&pods_gvr, Some("default"), to_value(pod("b1", "node-b")))
        .unwrap();

    let client = server.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut stream = drive(
        watcher(
            Api::<Pod>::all(client),
            watcher::Config::default().fields("spec.nodeName=node-a"),
        )
        .backoff(Quick)
        .boxed(),
    );
    let mut errors = 0;
    for expected in ["init", "init-apply a1", "init-done"] {
        assert_eq!(next(&mut stream, &mut errors).await, expected);
    }

    pods.create(&PostParams::default(), &pod("b2", "node-b"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("a2", "node-a"))
        .await
        .unwrap();
    relabel(&pods, "b1", json!({"seen": "yes"})).await;
    relabel(&pods, "a1", json!({"seen": "yes"})).await;
    pods.delete("b2", &DeleteParams::default()).await.unwrap();
    pods.delete("a2", &DeleteParams::default()).await.unwrap();
    for expected in ["apply a2", "apply a1", "delete a2"] {
        assert_eq!(next(&mut stream, &mut errors).await, expected);
    }
    assert_eq!(errors, 0);

    // The open watch ends with 410 Gone: the watcher lists again.
    server.expire_watches();
    for expected in ["init", "init-apply a1", "init-done"] {
        assert_eq!(next(&mut stream, &mut errors).await, expected);
    }
    assert_eq!(errors, 1, "one 410 error event");
    pods.create(&PostParams::default(), &pod("a3", "node-a"))
        .await
        .unwrap();
    assert_eq!(next(&mut stream, &mut errors).await, "apply a3");

    // An outage the history covers: the watcher resumes where it was.
    server.set_unavailable(true);
    server
        .create(&pods_gvr, Some("default"), to_value(pod("a4", "node-a")))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.set_unavailable(false);
    assert_eq!(next(&mut stream, &mut errors).await, "apply a4");
    assert!(errors > 1, "the refused connections were seen as errors");

    // An outage during which the history was compacted: 410, then a list.
    server.set_unavailable(true);
    server
        .create(&pods_gvr, Some("default"), to_value(pod("a5", "node-a")))
        .unwrap();
    server.compact_history();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.set_unavailable(false);
    for expected in [
        "init",
        "init-apply a1",
        "init-apply a3",
        "init-apply a4",
        "init-apply a5",
        "init-done",
    ] {
        assert_eq!(next(&mut stream, &mut errors).await, expected);
    }

    let watches: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_watch())
        .collect();
    let first = &watches[0];
    assert_eq!(
        first.param("fieldSelector").as_deref(),
        Some("spec.nodeName=node-a")
    );
    assert_eq!(first.param("allowWatchBookmarks").as_deref(), Some("true"));
    assert!(first.param("resourceVersion").is_some_and(|rv| rv != "0"));
}

#[tokio::test]
async fn streaming_list_watcher() {
    let server = FakeApiServer::start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.create(&PostParams::default(), &pod("p", "node-a"))
        .await
        .unwrap();
    let mut events = drive(
        watcher(pods.clone(), watcher::Config::default().streaming_lists())
            .backoff(Quick)
            .boxed(),
    );
    let mut errors = 0;
    for expected in ["init", "init-apply p", "init-done"] {
        assert_eq!(next(&mut events, &mut errors).await, expected);
    }
    pods.create(&PostParams::default(), &pod("q", "node-a"))
        .await
        .unwrap();
    assert_eq!(next(&mut events, &mut errors).await, "apply q");
    let first = server
        .requests()
        .into_iter()
        .find(|r| r.is_watch())
        .unwrap();
    assert_eq!(first.param("sendInitialEvents").as_deref(), Some("true"));
    assert_eq!(
        first.param("resourceVersionMatch").as_deref(),
        Some("NotOlderThan")
    );
}

#[tokio::test]
async fn watches_send_bookmarks_when_asked_and_honour_timeouts() {
    let server = FakeApiServer::start();
    server.set_bookmark_interval(Duration::from_millis(100));
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.create(&PostParams::default(), &pod("p", "node-a"))
        .await
        .unwrap();

    let mut events = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let first = events.next().await.unwrap().unwrap();
    assert!(
        matches!(first, WatchEvent::Added(ref p) if p.name_any() == "p"),
        "{first:?}"
    );
    let bookmark = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Bookmark(bookmark) = bookmark else {
        panic!("expected a bookmark, got {bookmark:?}");
    };
    assert_eq!(bookmark.types.kind, "Pod");
    assert_eq!(
        bookmark.metadata.resource_version,
        server.resource_version().to_string()
    );

    // Without bookmarks, and with a one-second timeout: nothing, then the end.
    let started = Instant::now();
    let quiet = pods
        .watch(
            &WatchParams::default().disable_bookmarks().timeout(1),
            &server.resource_version().to_string(),
        )
        .await
        .unwrap();
    let rest: Vec<_> = quiet.collect().await;
    assert!(rest.is_empty(), "{rest:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // Streaming lists: initial events, then a bookmark marking their end.
    let mut stream = pods
        .watch(&WatchParams::default().initial_events(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    let WatchEvent::Bookmark(end) = stream.next().await.unwrap().unwrap() else {
        panic!("expected the initial-events-end bookmark");
    };
    assert_eq!(
        end.metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );

    // A watch from a resourceVersion older than the history: 410 in-stream.
    let old = server.resource_version().to_string();
    pods.create(&PostParams::default(), &pod("q", "node-a"))
        .await
        .unwrap();
    server.compact_history();
    let mut gone = pods
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match gone.next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_selectors_turn_moves_into_added_and_deleted() {
    let server = FakeApiServer::start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.create(&PostParams::default(), &pod("p", "node-a"))
        .await
        .unwrap();
    let rv = server.resource_version().to_string();
    let params = WatchParams::default()
        .labels("tier=front")
        .disable_bookmarks();
    let mut events = pods.watch(&params, &rv).await.unwrap().boxed();
    relabel(&pods, "p", json!({"tier": "front"})).await;
    relabel(&pods, "p", json!({"tier": "back"})).await;
    let kinds: Vec<String> = events
        .by_ref()
        .take(2)
        .map(|e| match e.unwrap() {
            WatchEvent::Added(_) => "ADDED".to_owned(),
            WatchEvent::Deleted(p) => format!("DELETED {}", p.labels()["tier"]),
            other => format!("{other:?}"),
        })
        .collect()
        .await;
    assert_eq!(kinds, ["ADDED", "DELETED front"]);
}

fn widget(spec: Value) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "example.syscensus.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }))
}

#[tokio::test]
async fn server_side_apply_on_a_custom_resource_and_its_status() {
    let server = FakeApiServer::start();
    server.create_crd_of::<Widget>().unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(server.client());

    // Two managers, two fields: both survive.
    let a = PatchParams::apply("manager-a");
    let b = PatchParams::apply("manager-b");
    let created = widgets
        .patch("w", &a, &widget(json!({"size": 1})))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let both = widgets
        .patch("w", &b, &widget(json!({"color": "red"})))
        .await
        .unwrap();
    assert_eq!(
        (both.spec.size, both.spec.color.as_deref()),
        (Some(1), Some("red"))
    );
    assert_eq!(both.metadata.generation, Some(2));
    let managed = both.metadata.managed_fields.clone().unwrap();
    let managers: Vec<&str> = managed
        .iter()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(managers, ["manager-a", "manager-b"]);
    for entry in &managed {
        assert_eq!(entry.operation.as_deref(), Some("Apply"));
        assert_eq!(
            entry.api_version.as_deref(),
            Some("example.syscensus.io/v1")
        );
        assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
        assert!(
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.as_object().is_some_and(|o| !o.is_empty()))
        );
    }

    // Re-applying the same configuration changes nothing.
    let same = widgets
        .patch("w", &b, &widget(json!({"color": "red"})))
        .await
        .unwrap();
    assert_eq!(same.resource_version(), both.resource_version());

    // A conflict without force, ownership moves with force.
    let conflict = api_error(
        widgets
            .patch("w", &b, &widget(json!({"color": "red", "size": 2})))
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("manager-a") && conflict.message.contains(".spec.size"),
        "{}",
        conflict.message
    );
    let forced = widgets
        .patch(
            "w",
            &PatchParams::apply("manager-b").force(),
            &widget(json!({"color": "red", "size": 2})),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.size, Some(2));
    let owners: Vec<&str> = forced
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(owners, ["manager-b"], "manager-a owned only size");

    // A stale resourceVersion in the applied object is a precondition.
    let stale_rv = forced.resource_version().unwrap();
    widgets
        .patch("w", &a, &widget(json!({"size": 2})))
        .await
        .unwrap();
    let mut stale = json!({
        "apiVersion": "example.syscensus.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "resourceVersion": stale_rv},
        "spec": {"color": "blue"},
    });
    let err = api_error(widgets.patch("w", &b, &Patch::Apply(&stale)).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    stale["metadata"]["resourceVersion"] =
        json!(widgets.get("w").await.unwrap().resource_version());
    let fresh = widgets.patch("w", &b, &Patch::Apply(&stale)).await.unwrap();
    assert_eq!(fresh.spec.color.as_deref(), Some("blue"));

    // Status through the subresource: status only, no generation bump.
    let generation = fresh.metadata.generation;
    let status = Patch::Apply(json!({
        "apiVersion": "example.syscensus.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 99},
        "status": {"phase": "Ready"},
    }));
    let with_status = widgets
        .patch_status("w", &PatchParams::apply("status-writer"), &status)
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(with_status.spec.size, Some(2));
    assert_eq!(with_status.metadata.generation, generation);
    let status_entry = with_status
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some("status-writer"))
        .unwrap();
    assert_eq!(status_entry.subresource.as_deref(), Some("status"));

    // Writes to the resource leave status alone.
    let main = widgets
        .patch(
            "w",
            &a,
            &Patch::Apply(json!({
                "apiVersion": "example.syscensus.io/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 2},
                "status": {"phase": "Bogus"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        main.status.as_ref().unwrap().phase.as_deref(),
        Some("Ready")
    );
    let mut replaced = widgets.get("w").await.unwrap();
    replaced.status = Some(WidgetStatus {
        phase: Some("Replaced".to_owned()),
    });
    replaced.spec.size = Some(3);
    let replaced = widgets
        .replace("w", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        replaced.status.as_ref().unwrap().phase.as_deref(),
        Some("Ready")
    );
    assert_eq!(replaced.spec.size, Some(3));

    // Patch formats other than server-side apply are refused (syscensus
    // uses only apply; the real server refuses strategic merge for custom
    // resources too).
    let strategic = api_error(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {}})),
            )
            .await,
    );
    assert_eq!(strategic.code, 415);

    // The request log saw the apply content type and field managers.
    let apply = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .unwrap();
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        apply.param("fieldManager").as_deref(),
        Some("status-writer")
    );
}

#[tokio::test]
async fn project_crds_are_served_with_their_list_maps() {
    let server = FakeApiServer::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("deploy/base/crds");
    let mut served = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let crd: Value = serde_norway::from_str(&text).unwrap();
        server.create_crd(&crd).unwrap();
        served += 1;
    }
    assert!(served >= 1, "no CRDs in {}", dir.display());

    // Entries of status.conditions (a list map keyed by type), applied by
    // one manager each, all survive; shared fields are forced.
    let gvk = kube::api::GroupVersionKind::gvk("syscensus.io", "v1alpha1", "ProfileRecording");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "profilerecordings");
    let recordings: Api<kube::api::DynamicObject> =
        Api::namespaced_with(server.client(), "default", &resource);
    let body = |node: &str| {
        Patch::Apply(json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "ProfileRecording",
            "metadata": {"name": "r"},
            "status": {"phase": "Recording", "conditions": [{"type": node}]},
        }))
    };
    server
        .create(
            &Gvr::new("syscensus.io", "v1alpha1", "profilerecordings"),
            Some("default"),
            json!({"metadata": {"name": "r"}, "spec": {}}),
        )
        .unwrap();
    for node in ["node-a", "node-b"] {
        let params = PatchParams::apply(&format!("syscensus-node-{node}")).force();
        recordings
            .patch_status("r", &params, &body(node))
            .await
            .unwrap();
    }
    let recording = recordings.get("r").await.unwrap();
    assert_eq!(
        recording.data["status"]["conditions"],
        json!([{"type": "node-a"}, {"type": "node-b"}])
    );
}

#[tokio::test]
async fn injected_failures_and_delays() {
    let server = FakeApiServer::start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());

    // 429 twice: the client retries (honouring Retry-After) and succeeds.
    server.fail_next(2, 429);
    let started = Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);

    // 500 is not retried: the call fails with the Status, the next works.
    server.clear_requests();
    server.fail_next(1, 500);
    let err = api_error(pods.list(&ListParams::default()).await);
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    pods.list(&ListParams::default()).await.unwrap();
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200]);

    // 503 without Retry-After: retried with the client's own backoff.
    server.fail_next_with_retry_after(1, 503, None);
    pods.list(&ListParams::default()).await.unwrap();

    server.delay(Duration::from_millis(300));
    let started = Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.delay(Duration::ZERO);

    // Unavailable: connection refused, then the same port again.
    server.set_unavailable(true);
    let refused = pods.list(&ListParams::default()).await.unwrap_err();
    assert!(!matches!(refused, kube::Error::Api(_)), "{refused:?}");
    server.set_unavailable(false);
    pods.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn standalone_binary_serves_crds_and_restarts_on_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let crd_file = dir.path().join("widgets.yaml");
    std::fs::write(
        &crd_file,
        format!("---\n{}", serde_norway::to_string(&Widget::crd()).unwrap()),
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_fake-apiserver"));

    let first = FakeApiServerProcess::spawn(binary, 0, &kubeconfig, &[&crd_file]);
    let port = first.port();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
    widgets
        .patch(
            "w",
            &PatchParams::apply("test"),
            &widget(json!({"size": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    first.kill();
    assert!(
        widgets.list(&ListParams::default()).await.is_err(),
        "the server is gone"
    );

    let second = FakeApiServerProcess::spawn(binary, port, &kubeconfig, &[&crd_file]);
    assert_eq!(second.port(), port);
    assert!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "state was in memory"
    );
}

/// A merge patch counts an Event's series, as the agent does; the immutable
/// note cannot change; an Event that is gone is a 404; other formats are
/// refused.
#[tokio::test]
async fn merge_patches_update_existing_objects() {
    let server = FakeApiServer::start();
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(server.client(), "default");
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "rec.0123456789abcdef", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "syscensus.io/agent", "reportingInstance": "node-a",
        "action": "Record", "reason": "RecordingStarted", "type": "Normal",
        "note": "recording containers on node node-a",
        "regarding": {"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "namespace": "default", "name": "rec"}
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let series = json!({"series": {"count": 3, "lastObservedTime": "2026-01-01T00:05:00.000000Z"}});
    let patched = events
        .patch(
            "rec.0123456789abcdef",
            &PatchParams::default(),
            &Patch::Merge(&series),
        )
        .await
        .unwrap();
    assert_eq!(patched.series.unwrap().count, 3);
    assert_eq!(
        patched.note.as_deref(),
        Some("recording containers on node node-a")
    );
    let renote = json!({"note": "another"});
    let refused = api_error(
        events
            .patch(
                "rec.0123456789abcdef",
                &PatchParams::default(),
                &Patch::Merge(&renote),
            )
            .await,
    );
    assert_eq!(refused.code, 422, "{refused:?}");
    let gone = api_error(
        events
            .patch("rec.gone", &PatchParams::default(), &Patch::Merge(&series))
            .await,
    );
    assert_eq!(gone.code, 404);
    let strategic = api_error(
        events
            .patch(
                "rec.0123456789abcdef",
                &PatchParams::default(),
                &Patch::Strategic(&series),
            )
            .await,
    );
    assert_eq!(strategic.code, 415, "{strategic:?}");
}

#[tokio::test]
async fn held_writes_collide_on_the_resource_version_they_read() {
    let server = FakeApiServer::start();
    server.create_crd_of::<Widget>().unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    widgets
        .patch("w", &PatchParams::apply("m"), &widget(json!({"size": 1})))
        .await
        .unwrap();
    server.hold_writes(
        "/apis/example.syscensus.io/v1/namespaces/default/widgets/w",
        2,
    );

    // Two writers read, then write with the resourceVersion they read as a
    // precondition: the first write waits at the barrier for the second.
    let write = |color: &'static str| {
        let widgets = widgets.clone();
        async move {
            let read = widgets.get("w").await.unwrap();
            let patch = json!({
                "apiVersion": "example.syscensus.io/v1", "kind": "Widget",
                "metadata": {"name": "w", "resourceVersion": read.metadata.resource_version},
                "spec": {"color": color},
            });
            widgets
                .patch("w", &PatchParams::apply("m").force(), &Patch::Apply(patch))
                .await
        }
    };
    let first = tokio::spawn(write("red"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "the first write was not held");
    assert_eq!(server.held_writes().len(), 1);
    let second = write("blue").await;
    let first = first.await.unwrap();
    let codes: Vec<u16> = [&first, &second]
        .iter()
        .map(|r| match r {
            Ok(_) => 200,
            Err(kube::Error::Api(status)) => status.code,
            Err(e) => panic!("{e:?}"),
        })
        .collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 409], "{first:?} {second:?}");
    assert_eq!(server.held_writes().len(), 2);

    // Later writes are not held.
    widgets
        .patch("w", &PatchParams::apply("m"), &widget(json!({"size": 2})))
        .await
        .unwrap();
}
