//! Errors reading and writing profiles.
use std::path::PathBuf;

/// A profile that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ProfileError {
    /// The exit status for this error.
    pub fn exit_status(&self) -> u8 {
        match self {
            ProfileError::Read { .. } => crate::error::exit::NO_INPUT,
        }
    }
}
