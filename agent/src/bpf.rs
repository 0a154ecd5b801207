//! The loaded kernel program.

/// The kernel program, built by `build.rs` for the BPF target.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/syscensus"));

/// The kernel program could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {}

impl BpfError {
    /// The exit status for this error.
    pub fn exit_status(&self) -> u8 {
        crate::error::exit::UNAVAILABLE
    }
}
