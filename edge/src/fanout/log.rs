//! Reading a region's change log for the fan-out: whole commits, merged across regions.
//!
//! Invariants:
//! - a page never splits one commit: entries of one commit share a 10-byte versionstamp (they
//!   differ only in user version), and a cursor resumes strictly after a whole versionstamp, so a
//!   page that stops inside a commit is cut before it;
//! - [`merge`] groups the entries of several regions by versionstamp, in commit order.

use std::collections::BTreeMap;

use sekai_layer::kv::{RangeOption, Transaction};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::model::Delta;
use sekai_layer::world::query::changelog_after;
use sekai_schema::{RegionId, WorldKeys};

pub use sekai_layer::world::local_log::Stamp;

/// Largest page asked of the database when one commit does not fit a smaller one.
const MAX_PAGE: usize = 100_000;

/// A region's log after `after` (from the start when `None`), whole commits only, until the log
/// ends (`true`) or at least `limit` entries were read (`false`: more may follow).
pub async fn read_log<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    after: Option<Stamp>,
    page: usize,
    limit: usize,
) -> Result<(Vec<(Stamp, Delta)>, bool), WorldError> {
    let mut out = Vec::new();
    let mut cursor = after;
    let mut page = page.max(1);
    loop {
        let (mut batch, more) = changelog_after(trx, keys, region, cursor, page, true).await?;
        if more {
            let last = batch.last().map(|(stamp, _)| *stamp);
            let keep = batch
                .iter()
                .rposition(|(stamp, _)| Some(*stamp) != last)
                .map_or(0, |i| i + 1);
            if keep == 0 && page < MAX_PAGE {
                page = (page * 2).min(MAX_PAGE);
                continue;
            }
            if keep > 0 {
                batch.truncate(keep);
            }
        }
        cursor = batch.last().map(|(stamp, _)| *stamp).or(cursor);
        out.extend(batch);
        if !more {
            return Ok((out, true));
        }
        if out.len() >= limit {
            return Ok((out, false));
        }
    }
}

/// The versionstamp of the newest commit in a region's log, if any.
pub async fn last_stamp<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Option<Stamp>, WorldError> {
    let (begin, end) = keys.changelog_range(region);
    let page = trx
        .get_range(&RangeOption::new(begin, end).limit(1).rev(), true)
        .await?;
    let Some(kv) = page.kvs.first() else {
        return Ok(None);
    };
    let (_, stamp) = keys.decode_changelog(&kv.key)?;
    let mut commit = [0u8; 10];
    commit.copy_from_slice(&stamp.as_bytes()[..10]);
    Ok(Some(commit))
}

/// Groups entries of any regions by commit, in commit order.
pub fn merge(entries: impl IntoIterator<Item = (Stamp, Delta)>) -> BTreeMap<Stamp, Vec<Delta>> {
    let mut commits: BTreeMap<Stamp, Vec<Delta>> = BTreeMap::new();
    for (stamp, delta) in entries {
        commits.entry(stamp).or_default().push(delta);
    }
    commits
}
