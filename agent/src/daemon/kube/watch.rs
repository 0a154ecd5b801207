//! One helper for every watch the daemon keeps: a reflector's store fed by
//! a watcher in a background task, which retries with backoff while the API
//! server is away.
use std::{fmt::Debug, hash::Hash};

use futures::{FutureExt as _, StreamExt as _};
use kube::{
    Api, Resource,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use serde::de::DeserializeOwned;
use tracing::warn;

/// Watches `api` with `config` and keeps the objects in the returned store;
/// errors are logged as `watching <what>`.
pub(crate) fn watched<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
) -> reflector::Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store::<K>();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                warn!(%error, "watching {what}");
            }
        }
    });
    store
}

/// Whether a store has had its first list.
pub(crate) fn is_ready<K>(store: &reflector::Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}
