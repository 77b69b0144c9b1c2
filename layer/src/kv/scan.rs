//! Reading a whole range inside one transaction, page by page.
//!
//! Invariant: pages continue from `RangeOption::next_range`, so every pair in the range is
//! returned exactly once, in key order, all at the transaction's one read version. Use it for
//! ranges known to be small enough for one transaction (5 s, 10 MB); longer scans page across
//! transactions from a continuation instead.

use super::options::{KeyValue, RangeOption};
use super::traits::Transaction;
use super::FdbResult;

/// Pairs per page.
pub const PAGE: usize = 1_000;

/// Every pair in `[begin, end)`, in pages of [`PAGE`], within `trx`.
pub async fn get_range_all<T: Transaction>(
    trx: &T,
    begin: Vec<u8>,
    end: Vec<u8>,
    snapshot: bool,
) -> FdbResult<Vec<KeyValue>> {
    let mut out = Vec::new();
    let mut next = Some(RangeOption::new(begin, end).limit(PAGE));
    while let Some(range) = next {
        let page = trx.get_range(&range, snapshot).await?;
        next = range.next_range(&page);
        out.extend(page.kvs);
    }
    Ok(out)
}
