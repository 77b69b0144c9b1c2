//! Errors of world operations: an FDB error to retry, or a reason that retrying cannot fix.

use sekai_schema::{EntityId, KeyError, RegionId};

use super::codec::CodecError;
use crate::kv::{FdbError, RetryableError};

/// Why a world operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The database refused; `kv::run` retries the retryable ones.
    #[error("database: {0}")]
    Fdb(#[from] FdbError),
    /// A stored value does not decode.
    #[error("corrupt stored value: {0}")]
    Codec(#[from] CodecError),
    /// A stored key does not decode.
    #[error("corrupt stored key: {0}")]
    Key(#[from] KeyError),
    /// The spatial index names an entity that does not exist (a broken store: index entries
    /// change in the same transaction as their entity).
    #[error("the spatial index names entity {0}, which does not exist")]
    DanglingIndex(EntityId),
    /// Another processor holds the region's lease.
    #[error("the lease of region {0} is held by another processor")]
    LeaseLost(RegionId),
}

impl RetryableError for WorldError {
    fn as_fdb(&self) -> Option<FdbError> {
        match self {
            WorldError::Fdb(error) => Some(*error),
            _ => None,
        }
    }
}
