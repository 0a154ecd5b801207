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
mod counters;
mod events;
mod faults;
mod fields;
mod http;
mod objects;
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
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, runtime::Handle, sync::watch as channel, task::JoinSet};

use self::{
    counters::Tally,
    faults::{Faults, HOLD_LIMIT, Hold},
    store::Store,
};
pub use self::{
    counters::{Counters, RequestKind, WatchCount},
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
    /// Whether requests go into `log`.
    log_requests: AtomicBool,
    tally: Mutex<Tally>,
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

    /// Counts a request, and logs it unless the log is off.
    pub(crate) fn log(&self, record: RequestRecord) {
        let (verb, resource) = counters::classify(&record.method, &record.path, record.is_watch());
        let kind = RequestKind {
            verb,
            resource,
            status: record.status,
        };
        *lock(&self.tally).requests.entry(kind).or_default() += 1;
        if self.log_requests.load(Ordering::Relaxed) {
            lock(&self.log).push(record);
        }
    }

    /// Lists a new watch stream in the counters.
    pub(crate) fn count_watch(&self, resource: String, scope: String) -> Arc<counters::WatchStat> {
        let stat = Arc::new(counters::WatchStat {
            resource,
            scope,
            initial: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        lock(&self.tally).watches.push(Arc::clone(&stat));
        stat
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
            .create_crd_of::<syscensus_api::RefusalReport>()
            .expect("RefusalReport CRD");
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
            log_requests: AtomicBool::new(true),
            tally: Mutex::default(),
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
