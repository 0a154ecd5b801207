//! A fake Kubernetes API server for tests: real Kubernetes JSON over plain
//! HTTP on 127.0.0.1, for the real `kube` client; or over HTTPS with a CA of
//! its own ([`FakeApiServer::start_tls`], see [`tls`]), for clients in Pods.
//!
//! It keeps objects in memory and serves get, list, watch (resourceVersion,
//! bookmarks, 410 Gone), create, replace, delete, server-side apply with
//! managed fields and conflicts, JSON merge patches, and the status
//! subresource: what syscensus and its tests use of the API. Other patch
//! formats, finalizers and the garbage collector are not served. It
//! validates `events.k8s.io` Events as the real server does. Tests drive it
//! directly too: store access, a request log, injected failures (refused
//! connections, error codes, delays), and writes held at a barrier so that
//! writers collide.
//!
//! ```no_run
//! # async fn example() {
//! use syscensus_fake_apiserver::FakeApiServer;
//! let server = FakeApiServer::start();
//! let client = server.client();
//! let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(client);
//! # }
//! ```
#![allow(
    unused_crate_dependencies,
    reason = "anyhow and clap are the fake-apiserver binary's"
)]
#![allow(
    clippy::unwrap_used,
    reason = "a test fixture: a broken invariant panics with context"
)]

mod apply;
mod events;
mod fields;
mod http;
pub mod process;
pub mod resources;
mod selector;
pub mod status;
mod store;
mod strategy;
pub mod tls;
mod watch;

use std::{
    convert::Infallible,
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc},
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, runtime::Handle, sync::watch as channel, task::JoinSet};

use self::store::{Store, Write};
pub use self::{
    resources::{Gvr, ListMap, ResourceDef},
    status::ApiError,
};

/// The field manager of writes made through [`FakeApiServer`]'s store
/// methods.
pub const TEST_MANAGER: &str = "fake-apiserver-test";

/// How many changes are kept for watches, unless changed with
/// [`FakeApiServer::set_history_limit`].
const DEFAULT_HISTORY: usize = 10_000;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, such as `/api/v1/namespaces/default/pods`.
    pub path: String,
    /// The raw query string (percent-encoded).
    pub query: String,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    /// The request body as text (empty for none).
    pub body: String,
    /// The HTTP status code of the response (200 for a watch that started).
    pub status: u16,
    /// The Authorization header, if any (`Bearer <token>` from a service
    /// account).
    pub authorization: Option<String>,
}

impl RequestRecord {
    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        http::parse_query(&self.query).remove(name)
    }

    /// Whether this was a watch.
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }
}

/// Injected failures.
#[derive(Debug, Default)]
struct Faults {
    remaining: u32,
    /// Only writes (anything but GET) fail.
    writes_only: bool,
    code: u16,
    retry_after: Option<u64>,
    delay: Duration,
}

/// Writes to one path held until a number of them have arrived
/// ([`FakeApiServer::hold_writes`]).
#[derive(Debug)]
struct Hold {
    path: String,
    parties: usize,
    /// The bodies of the writes held so far.
    held: Vec<String>,
    /// `true` once the last party arrived.
    release: channel::Sender<bool>,
}

/// How long a held write waits for the others before it goes through
/// alone, so a test whose writers never all come fails on its assertions
/// rather than hanging.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// State shared by the control API, the connections and the watches.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// The resourceVersion after each write: wakes the watches.
    changes: channel::Sender<u64>,
    /// Bumped to end every open watch with 410 Gone.
    expiries: channel::Sender<u64>,
    faults: Mutex<Faults>,
    hold: Mutex<Option<Hold>>,
    log: Mutex<Vec<RequestRecord>>,
    bookmark_interval: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Runs `f` on the store and wakes the watches.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = lock(&self.store);
        let out = f(&mut store);
        self.changes.send_replace(store.resource_version());
        out
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }

    /// The delay to apply to a request, and the failure to answer it with.
    pub(crate) fn take_fault(&self, write: bool) -> (Duration, Option<(u16, Option<u64>)>) {
        let mut faults = lock(&self.faults);
        let fault = (faults.remaining > 0 && (write || !faults.writes_only)).then(|| {
            faults.remaining -= 1;
            (faults.code, faults.retry_after)
        });
        (faults.delay, fault)
    }

    /// Holds a write to `path` while a [`Hold`] of it waits for parties:
    /// returns when the last one arrived (or after [`HOLD_LIMIT`]).
    pub(crate) async fn hold(&self, path: &str, body: &[u8]) {
        let mut released = {
            let mut hold = lock(&self.hold);
            let Some(hold) = hold
                .as_mut()
                .filter(|h| h.path == path && h.held.len() < h.parties)
            else {
                return;
            };
            hold.held.push(String::from_utf8_lossy(body).into_owned());
            if hold.held.len() == hold.parties {
                hold.release.send_replace(true);
            }
            hold.release.subscribe()
        };
        let _ = tokio::time::timeout(HOLD_LIMIT, released.wait_for(|r| *r)).await;
    }

    pub(crate) fn log(&self, record: RequestRecord) {
        lock(&self.log).push(record);
    }

    pub(crate) fn bookmark_interval(&self) -> Duration {
        *lock(&self.bookmark_interval)
    }
}

/// The open listener: stopping it closes the port.
#[derive(Debug)]
struct Listening {
    stop: channel::Sender<bool>,
    closed: mpsc::Receiver<()>,
}

/// A fake API server on 127.0.0.1, running on its own thread until dropped.
///
/// Control methods are synchronous and may be called from any thread or
/// async test; they panic with a message on failures of the test setup.
#[derive(Debug)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    port: u16,
    runtime: Handle,
    listening: Mutex<Option<Listening>>,
    tls: Option<tls::ServerTls>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts a server on a free port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// A server as syscensus finds a cluster: its CRDs installed and
    /// the namespace `namespace` made.
    pub fn start_with_syscensus(namespace: &str) -> Self {
        Self::start().with_syscensus(namespace)
    }

    /// Starts a server on a free port that speaks HTTPS only, with a CA of
    /// its own ([`FakeApiServer::ca_pem`]).
    pub fn start_tls() -> Self {
        Self::start_with(0, Some(tls::ServerTls::new()))
    }

    /// This server with syscensus's CRDs installed and the namespace
    /// `namespace` made.
    pub fn with_syscensus(self, namespace: &str) -> Self {
        let server = self;
        server
            .create_crd_of::<syscensus_api::ProfileRecording>()
            .expect("ProfileRecording CRD");
        server
            .create_crd_of::<syscensus_api::ContainerProfile>()
            .expect("ContainerProfile CRD");
        server
            .create_crd_of::<syscensus_api::LocalhostProfile>()
            .expect("LocalhostProfile CRD");
        server
            .create_crd_of::<syscensus_api::NodeProfileStatus>()
            .expect("NodeProfileStatus CRD");
        server
            .create(
                &Gvr::new("", "v1", "namespaces"),
                None,
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            )
            .expect("namespace");
        server
    }

    /// Starts a server on `port` (0 for a free one), such as the port of a
    /// server that was stopped, to stand in for it after a restart.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, None)
    }

    fn start_with(port: u16, tls: Option<tls::ServerTls>) -> Self {
        let listener =
            bind(port).unwrap_or_else(|e| panic!("failed to listen on 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        // resourceVersions start at the current time in milliseconds, so a
        // restarted server's are newer than any its predecessor gave out, and
        // a client resuming a watch from an old one gets 410 Gone.
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let (changes, _) = channel::channel(0);
        let (expiries, _) = channel::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(DEFAULT_HISTORY, base)),
            changes,
            expiries,
            faults: Mutex::default(),
            hold: Mutex::default(),
            log: Mutex::default(),
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
        });
        let (handle_tx, handle_rx) = mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fake-apiserver-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("failed to build the fake API server's runtime");
                let _ = handle_tx.send(runtime.handle().clone());
                runtime.block_on(async {
                    let _ = shutdown_rx.await;
                });
            })
            .expect("failed to spawn the fake API server's thread");
        let runtime = handle_rx
            .recv()
            .expect("the fake API server's runtime did not start");
        let server = Self {
            shared,
            port,
            runtime,
            listening: Mutex::new(None),
            tls,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        *lock(&server.listening) = Some(server.serve(listener));
        server
    }

    fn serve(&self, listener: std::net::TcpListener) -> Listening {
        let (stop, mut stop_rx) = channel::channel(false);
        let (closed_tx, closed) = mpsc::channel();
        let shared = Arc::clone(&self.shared);
        let tls = self.tls.clone();
        self.runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                let _ = closed_tx.send(());
                return;
            };
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    accepted = listener.accept() => {
                        match (accepted, &tls) {
                            (Ok((stream, _)), None) => {
                                connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                            }
                            (Ok((stream, _)), Some(tls)) => {
                                let acceptor = tls.acceptor().clone();
                                let shared = Arc::clone(&shared);
                                connections.spawn(async move {
                                    // A client that fails the handshake
                                    // (distrusts the CA) is dropped.
                                    if let Ok(stream) = acceptor.accept(stream).await {
                                        serve_connection(stream, shared).await;
                                    }
                                });
                            }
                            (Err(_), _) => {}
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            drop(listener);
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            let _ = closed_tx.send(());
        });
        Listening { stop, closed }
    }

    /// `http://127.0.0.1:<port>`, or `https://` for a server started with
    /// [`FakeApiServer::start_tls`].
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) of a server started with
    /// [`FakeApiServer::start_tls`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(tls::ServerTls::ca_pem)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A kubeconfig for this server: no authentication, namespace
    /// `default`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// Writes [`FakeApiServer::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// A `kube::Client` for this server with namespace `default`. Call it
    /// inside a tokio runtime (the client spawns a task).
    pub fn client(&self) -> kube::Client {
        let mut config =
            kube::Config::new(self.url().parse().expect("the server URL is a valid URI"));
        config.default_namespace = "default".to_owned();
        kube::Client::try_from(config).expect("failed to build a client for the fake API server")
    }

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

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// `true`: closes the port and every open connection, so clients see
    /// connection refused; `false`: listens on the same port again. The
    /// objects are kept.
    pub fn set_unavailable(&self, unavailable: bool) {
        let mut listening = lock(&self.listening);
        match (unavailable, listening.take()) {
            (true, Some(open)) => {
                let _ = open.stop.send(true);
                open.closed
                    .recv_timeout(Duration::from_secs(10))
                    .expect("the fake API server did not close its port");
            }
            (false, None) => {
                let listener = bind(self.port).unwrap_or_else(|e| {
                    panic!("failed to listen on 127.0.0.1:{} again: {e}", self.port)
                });
                *listening = Some(self.serve(listener));
            }
            (_, state) => *listening = state,
        }
    }

    /// Answers the next `n` requests with `code` (as a Status), with
    /// `Retry-After: 1` for 429 and 503 as the real server sends.
    pub fn fail_next(&self, n: u32, code: u16) {
        self.fail_next_with_retry_after(n, code, matches!(code, 429 | 503).then_some(1));
    }

    /// Like [`FakeApiServer::fail_next`] with a chosen `Retry-After` (in
    /// seconds; None for no header).
    pub fn fail_next_with_retry_after(&self, n: u32, code: u16, retry_after: Option<u64>) {
        let mut faults = lock(&self.shared.faults);
        faults.remaining = n;
        faults.writes_only = false;
        faults.code = code;
        faults.retry_after = retry_after;
    }

    /// Answers the next `n` writes (creates, updates, patches, deletes)
    /// with `code`; reads and watches go through.
    pub fn fail_next_writes(&self, n: u32, code: u16) {
        let mut faults = lock(&self.shared.faults);
        faults.remaining = n;
        faults.writes_only = true;
        faults.code = code;
        faults.retry_after = matches!(code, 429 | 503).then_some(1);
    }

    /// Holds the next `parties` writes (creates, updates, patches, deletes)
    /// to `path`, such as
    /// `/apis/syscensus.io/v1alpha1/namespaces/ns/containerprofiles/name`,
    /// until all of them have arrived, then serves them one after the
    /// other: writers that each read an object and then write it all read
    /// the same resourceVersion, so every write after the first conflicts
    /// (or, without a precondition, overwrites). A held write goes through
    /// alone after a minute. Later writes are not held.
    pub fn hold_writes(&self, path: &str, parties: usize) {
        *lock(&self.shared.hold) = Some(Hold {
            path: path.to_owned(),
            parties,
            held: Vec::new(),
            release: channel::channel(false).0,
        });
    }

    /// The bodies of the writes held by [`FakeApiServer::hold_writes`] so
    /// far, in the order they arrived.
    pub fn held_writes(&self) -> Vec<String> {
        lock(&self.shared.hold)
            .as_ref()
            .map(|h| h.held.clone())
            .unwrap_or_default()
    }

    /// Delays every request by `delay` (zero for none).
    pub fn delay(&self, delay: Duration) {
        lock(&self.shared.faults).delay = delay;
    }

    /// How often watches that allow bookmarks get one (1 s unless set).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.shared.bookmark_interval) = interval.max(Duration::from_millis(10));
    }

    /// How many changes are kept for watches; a watch from before the
    /// oldest gets 410 Gone.
    pub fn set_history_limit(&self, limit: usize) {
        self.shared.write(|s| s.set_history_limit(limit));
    }

    /// Forgets the change history: watches that start from an older
    /// resourceVersion get 410 Gone (open watches go on).
    pub fn compact_history(&self) {
        self.shared.write(Store::compact);
    }

    /// Forgets the change history and ends every open watch with a 410
    /// Gone error event, as the real server does when a watch falls behind
    /// a compaction: clients must list again.
    pub fn expire_watches(&self) {
        self.shared.write(Store::compact);
        self.shared.expiries.send_modify(|n| *n += 1);
    }

    /// Stops the server (as dropping it does).
    pub fn stop(self) {}
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bind(port: u16) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve_connection<S>(stream: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(http::handle(shared, request).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
