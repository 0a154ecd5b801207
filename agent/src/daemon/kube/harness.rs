//! One node's cluster writes, callable from outside the crate for the
//! scale harness only (`cargo xtask bench --cluster`,
//! tests/src/cluster_bench.rs), which runs many simulated nodes' writes in
//! one process against the test API server. Not an interface of the
//! agent: the daemon goes through [`super::Kube`]. These are thin
//! wrappers; the writing and merging are the agent's own code.
use std::sync::Arc;

use kube::Client;
use syscensus_api::ProfileRecording;

use super::{status::StatusWriter, writer};
use crate::daemon::{
    contribution::{Contribution, Counted, Key},
    machine::StatusReport,
};

/// What one write of a node's contribution did.
#[derive(Debug)]
pub struct Written {
    /// What the ContainerProfile now counts of this node: carried into the
    /// node's contribution, as the agent does, so that the next write does
    /// not count it again.
    pub counted: Option<Counted>,
    /// Attempts that met a conflict before this one went through.
    pub conflicts: usize,
}

/// Writes `ours`, node `node`'s contribution, to the ContainerProfile of
/// `key` as the agent's flush does: read, merge, write with the read
/// resourceVersion, again after a conflict. `Ok(None)`: other writers kept
/// winning for all the writer's attempts (the agent then waits for its
/// flush's backoff and tries again).
pub async fn write_contribution(
    client: &Client,
    key: &Key,
    node: &str,
    ours: &Contribution,
) -> Result<Option<Written>, kube::Error> {
    match writer::write(client, key, node, ours).await {
        Ok(written) => Ok(Some(Written {
            counted: written.counted,
            conflicts: written.conflicts,
        })),
        Err(writer::WriteError::Contended) => Ok(None),
        Err(writer::WriteError::Api(error)) => Err(error),
    }
}

/// A node's writer of the recordings' status and of its Lease.
pub struct NodeStatus(StatusWriter);

impl std::fmt::Debug for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStatus").finish_non_exhaustive()
    }
}

impl NodeStatus {
    /// The writer of node `node`; its Lease goes in `client`'s default
    /// namespace.
    pub fn new(client: Client, node: String) -> NodeStatus {
        NodeStatus(StatusWriter::new(client, node))
    }

    /// What the agent does after each flush: writes the status of each of
    /// `recordings` (as the node's watch shows them) that differs from its
    /// spec once the node's stagger has passed, and the Lease if `report`
    /// changed.
    pub async fn update(&mut self, recordings: &[Arc<ProfileRecording>], report: &StatusReport) {
        self.0.update(recordings, report, 0).await;
    }

    /// Writes the API server refused or did not answer.
    pub fn errors(&self) -> u64 {
        self.0.errors
    }
}
