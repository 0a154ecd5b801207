//! What tests do to the server itself: the request log, an outage, injected
//! failures and delays, and writes held at a barrier so that writers collide.
use std::time::Duration;

use tokio::sync::watch as channel;

use crate::{FakeApiServer, RequestRecord, bind, lock, store::Store};

/// Injected failures.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) remaining: u32,
    /// Only writes (anything but GET) fail.
    pub(crate) writes_only: bool,
    pub(crate) code: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) delay: Duration,
}

/// Writes to one path held until a number of them have arrived
/// ([`FakeApiServer::hold_writes`]).
#[derive(Debug)]
pub(crate) struct Hold {
    pub(crate) path: String,
    pub(crate) parties: usize,
    /// The bodies of the writes held so far.
    pub(crate) held: Vec<String>,
    /// `true` once the last party arrived.
    pub(crate) release: channel::Sender<bool>,
}

/// How long a held write waits for the others before it goes through
/// alone, so a test whose writers never all come fails on its assertions
/// rather than hanging.
pub(crate) const HOLD_LIMIT: Duration = Duration::from_secs(60);

impl FakeApiServer {
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
