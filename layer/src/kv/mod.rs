//! The transactional KV contract shared by both backends, modelled on `foundationdb` 0.11.
//!
//! Layer code is generic over [`Database`]; it runs on the embedded engine by default and on
//! FoundationDB with the `fdb` feature. The contract's rules are FoundationDB's (see
//! `shared/FDB-SEMANTICS.md`); [`conformance`] holds one test suite every backend must pass.

pub mod atomic;
pub mod conformance;
pub mod error;
pub mod options;
pub mod retry;
pub mod scan;
pub mod traits;

pub use error::{codes, FdbError, FdbResult, RetryableError};
pub use options::{
    key_after, strinc, ConflictRangeType, KeyValue, MaybeCommitted, MutationType, RangeOption,
    RangeResult,
};
pub use retry::{run, Backoff};
pub use scan::get_range_all;
pub use traits::{Database, Transaction};
