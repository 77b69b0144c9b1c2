//! FoundationDB's error codes, with the same numbers and retry rules.
//!
//! Invariants:
//! - every error the KV contract returns carries an FDB error code, so layer code handles the
//!   embedded engine and FoundationDB alike;
//! - `is_retryable` is true exactly for the codes FDB's `on_error` retries;
//! - `is_maybe_committed` is true only for `commit_unknown_result` (1021).

use std::fmt;

/// An error from the KV contract: a FoundationDB error code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdbError {
    code: i32,
}

/// The result type of every KV contract operation.
pub type FdbResult<T> = Result<T, FdbError>;

/// FoundationDB's error codes that the KV contract uses.
pub mod codes {
    /// The read version is older than the 5-second MVCC window.
    pub const TRANSACTION_TOO_OLD: i32 = 1007;
    /// The read version is ahead of what storage has.
    pub const FUTURE_VERSION: i32 = 1009;
    /// A read-conflict range was written after the read version.
    pub const NOT_COMMITTED: i32 = 1020;
    /// The commit may or may not have applied.
    pub const COMMIT_UNKNOWN_RESULT: i32 = 1021;
    /// The transaction was cancelled, dropped or reset before its future resolved.
    pub const TRANSACTION_CANCELLED: i32 = 1025;
    /// The transaction ran past its timeout.
    pub const TRANSACTION_TIMED_OUT: i32 = 1031;
    /// Too many watches are outstanding on this database.
    pub const TOO_MANY_WATCHES: i32 = 1032;
    /// A read touched a key made unreadable by a versionstamped write in the same transaction.
    pub const ACCESSED_UNREADABLE: i32 = 1036;
    /// The database is shutting down or its storage failed.
    pub const OPERATION_FAILED: i32 = 1000;
    /// `get_versionstamp` on a transaction that wrote nothing.
    pub const NO_COMMIT_VERSION: i32 = 2021;
    /// A versionstamp offset points outside the key or value.
    pub const CLIENT_INVALID_OPERATION: i32 = 2000;
    /// An argument is invalid (for example a range whose end precedes its begin).
    pub const INVERTED_RANGE: i32 = 2005;
    /// The transaction's size exceeds 10,000,000 bytes.
    pub const TRANSACTION_TOO_LARGE: i32 = 2101;
    /// A key exceeds 10,000 bytes.
    pub const KEY_TOO_LARGE: i32 = 2102;
    /// A value exceeds 100,000 bytes.
    pub const VALUE_TOO_LARGE: i32 = 2103;
    /// The transaction was already committed.
    pub const USED_DURING_COMMIT: i32 = 2017;
}

impl FdbError {
    /// An error with the given FDB code.
    pub const fn from_code(code: i32) -> Self {
        Self { code }
    }

    /// The FDB error code.
    pub const fn code(self) -> i32 {
        self.code
    }

    /// True when FDB's `on_error` would retry the transaction.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self.code,
            codes::TRANSACTION_TOO_OLD
                | codes::FUTURE_VERSION
                | codes::NOT_COMMITTED
                | codes::COMMIT_UNKNOWN_RESULT
        )
    }

    /// True when the transaction may have committed although it reported an error.
    pub const fn is_maybe_committed(self) -> bool {
        self.code == codes::COMMIT_UNKNOWN_RESULT
    }

    /// True when a retry cannot have applied the transaction twice without the caller knowing.
    pub const fn is_retryable_not_committed(self) -> bool {
        self.is_retryable() && !self.is_maybe_committed()
    }

    /// FDB's name for the error.
    pub const fn name(self) -> &'static str {
        match self.code {
            codes::OPERATION_FAILED => "operation_failed",
            codes::TRANSACTION_TOO_OLD => "transaction_too_old",
            codes::FUTURE_VERSION => "future_version",
            codes::NOT_COMMITTED => "not_committed",
            codes::COMMIT_UNKNOWN_RESULT => "commit_unknown_result",
            codes::TRANSACTION_CANCELLED => "transaction_cancelled",
            codes::TRANSACTION_TIMED_OUT => "transaction_timed_out",
            codes::TOO_MANY_WATCHES => "too_many_watches",
            codes::ACCESSED_UNREADABLE => "accessed_unreadable",
            codes::CLIENT_INVALID_OPERATION => "client_invalid_operation",
            codes::INVERTED_RANGE => "inverted_range",
            codes::USED_DURING_COMMIT => "used_during_commit",
            codes::NO_COMMIT_VERSION => "no_commit_version",
            codes::TRANSACTION_TOO_LARGE => "transaction_too_large",
            codes::KEY_TOO_LARGE => "key_too_large",
            codes::VALUE_TOO_LARGE => "value_too_large",
            _ => "unknown_error",
        }
    }
}

impl fmt::Debug for FdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FdbError({} {})", self.code, self.name())
    }
}

impl fmt::Display for FdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code)
    }
}

impl std::error::Error for FdbError {}

/// An error type a retry loop can look inside for an FDB error to retry.
pub trait RetryableError: From<FdbError> {
    /// The FDB error inside, if this error is one.
    fn as_fdb(&self) -> Option<FdbError>;
}

impl RetryableError for FdbError {
    fn as_fdb(&self) -> Option<FdbError> {
        Some(*self)
    }
}
