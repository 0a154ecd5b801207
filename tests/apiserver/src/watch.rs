//! WATCH: a chunked stream of newline-delimited JSON events from the
//! store's history, with selectors, bookmarks, timeouts and 410 Gone.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use hyper::{Response, StatusCode, body::Bytes, header};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};

use super::{
    Shared,
    counters::WatchStat,
    http::{Body, Call, error_response, metadata_only},
    resources::ResourceDef,
    selector::Selectors,
    status::ApiError,
    store::{EventType, HistoryEvent},
};

/// What a watch was asked for.
#[derive(Debug)]
struct WatchRequest {
    def: ResourceDef,
    namespace: Option<String>,
    selectors: Selectors,
    /// None: start with the current objects as ADDED events.
    since: Option<u64>,
    send_initial_events: bool,
    bookmarks: bool,
    timeout: Duration,
    metadata_only: bool,
}

/// The real server's default watch length when `timeoutSeconds` is unset
/// is 30 to 60 minutes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Starts a watch: the response streams events until the timeout, an
/// expiry, the server stopping, or the client going away.
pub(crate) fn start(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    namespace: Option<&str>,
    selectors: Selectors,
    call: &Call,
) -> Response<Body> {
    let rv = call
        .query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    let since = match rv {
        "" | "0" => None,
        rv => match rv.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "invalid resource version {rv:?}"
                )));
            }
        },
    };
    let flag = |name: &str| {
        call.query
            .get(name)
            .is_some_and(|v| v == "true" || v == "1")
    };
    let timeout = call
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let request = WatchRequest {
        def: def.clone(),
        namespace: namespace.filter(|_| def.namespaced).map(str::to_owned),
        selectors,
        since,
        send_initial_events: flag("sendInitialEvents"),
        bookmarks: flag("allowWatchBookmarks"),
        timeout,
        metadata_only: call.metadata_only,
    };
    let mut scope = namespace.unwrap_or_default().to_owned();
    for (i, name) in ["labelSelector", "fieldSelector"]
        .into_iter()
        .filter(|name| call.query.get(*name).is_some_and(|v| !v.is_empty()))
        .enumerate()
    {
        let separator = if i == 0 { '?' } else { '&' };
        let _ = write!(scope, "{separator}{name}={}", call.query[name]);
    }
    let stat = shared.count_watch(def.gvr().group_resource(), scope);
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(Arc::clone(shared), request, tx, stat));
    let mut response = Response::new(Body::Stream(rx));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

impl WatchRequest {
    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, api_version) = if self.metadata_only {
            (
                "PartialObjectMetadata".to_owned(),
                "meta.k8s.io/v1".to_owned(),
            )
        } else {
            (self.def.kind.clone(), self.def.api_version())
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}),
        )
    }

    fn object(&self, object: Value) -> Value {
        if self.metadata_only {
            metadata_only(object)
        } else {
            object
        }
    }

    /// The event a watcher with this request sees for a change, if any: a
    /// modification that moves an object into or out of the selectors is
    /// ADDED or DELETED, as the real server's watch cache sends it.
    fn event(&self, e: &HistoryEvent) -> Option<Bytes> {
        if e.gvr != self.def.gvr() || self.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
            return None;
        }
        let now = self.selectors.matches(&e.object);
        match e.kind {
            EventType::Added | EventType::Deleted if now => {
                Some(line(e.kind.name(), self.object(e.object.clone())))
            }
            EventType::Modified => {
                let before = e
                    .previous
                    .as_ref()
                    .is_some_and(|p| self.selectors.matches(p));
                match (before, now) {
                    (true, true) => Some(line("MODIFIED", self.object(e.object.clone()))),
                    (false, true) => Some(line("ADDED", self.object(e.object.clone()))),
                    (true, false) => {
                        let mut gone = e.previous.clone().unwrap_or_default();
                        gone["metadata"]["resourceVersion"] = json!(e.rv.to_string());
                        Some(line("DELETED", self.object(gone)))
                    }
                    (false, false) => None,
                }
            }
            _ => None,
        }
    }
}

fn expired(since: u64, oldest: u64) -> Bytes {
    let error = ApiError::expired(format!("too old resource version: {since} ({oldest})"));
    line("ERROR", error.to_status())
}

async fn run(
    shared: Arc<Shared>,
    request: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    stat: Arc<WatchStat>,
) {
    let mut changes = shared.changes.subscribe();
    let mut expiries = shared.expiries.subscribe();
    expiries.borrow_and_update();
    let deadline = Instant::now() + request.timeout;
    let interval = shared.bookmark_interval();
    let mut next_bookmark = Instant::now() + interval;

    changes.borrow_and_update();
    let (mut cursor, initial) = shared.read(|store| {
        let now = store.resource_version();
        match request.since {
            None => {
                let objects = store
                    .list(
                        &request.def.gvr(),
                        request.namespace.as_deref(),
                        &request.selectors,
                    )
                    .unwrap_or_default();
                let mut lines: Vec<Bytes> = objects
                    .into_iter()
                    .map(|o| line("ADDED", request.object(o)))
                    .inspect(|l| stat.sent(true, l.len()))
                    .collect();
                if request.send_initial_events && request.bookmarks {
                    lines.push(request.bookmark(now, true));
                }
                (now, Ok(lines))
            }
            // A resourceVersion from the future is from another life of the
            // server: a restarted process starts over, and the client must
            // list again.
            Some(since) if since < store.oldest_watchable() || since > now => {
                (since, Err(expired(since, store.oldest_watchable())))
            }
            Some(since) => (since, Ok(Vec::new())),
        }
    });
    match initial {
        Ok(lines) => {
            for l in lines {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        }
        Err(error) => {
            let _ = tx.send(error).await;
            return;
        }
    }

    loop {
        changes.borrow_and_update();
        let events = shared.read(|store| {
            store
                .events_since(cursor)
                .ok_or_else(|| expired(cursor, store.oldest_watchable()))
        });
        match events {
            Ok(events) => {
                for e in &events {
                    if let Some(l) = request.event(e) {
                        stat.sent(false, l.len());
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                    cursor = e.rv;
                }
            }
            Err(error) => {
                let _ = tx.send(error).await;
                return;
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = expiries.changed() => {
                let oldest = shared.read(|store| store.oldest_watchable());
                let _ = tx.send(expired(cursor, oldest)).await;
                return;
            }
            () = tokio::time::sleep_until(next_bookmark), if request.bookmarks => {
                next_bookmark = Instant::now() + interval;
                if tx.send(request.bookmark(cursor, false)).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if request.bookmarks {
                    let _ = tx.send(request.bookmark(cursor, false)).await;
                }
                return;
            }
            () = tx.closed() => return,
        }
    }
}
