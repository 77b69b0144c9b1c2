//! A transaction's own writes, for read-your-writes and for FDB's conflict exemptions.
//!
//! Invariants:
//! - a key is `Known` when the transaction alone determines its value (set, clear, or an atomic
//!   op on a key it set or cleared): reads of it touch no storage and add no read conflict;
//! - a key is `Pending` when atomic ops wait on a value only storage knows: reads of it combine
//!   the stored value with the ops and do add a read conflict;
//! - a key inside a cleared range and absent from `keys` is known to be absent.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::key_range::KeyRange;
use crate::kv::{atomic, MutationType};

/// What the transaction's writes say about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWrite {
    /// The value is decided by this transaction (`None`: cleared).
    Known(Option<Vec<u8>>),
    /// Atomic ops to apply, in order, to whatever storage holds.
    Pending(Vec<(MutationType, Vec<u8>)>),
}

impl KeyWrite {
    /// The value this write leaves given the stored value `base`.
    pub fn resolve(&self, base: Option<&[u8]>) -> Option<Vec<u8>> {
        match self {
            KeyWrite::Known(value) => value.clone(),
            KeyWrite::Pending(ops) => ops.iter().fold(base.map(<[u8]>::to_vec), |acc, (op, p)| {
                atomic::apply(*op, acc.as_deref(), p)
            }),
        }
    }
}

/// The writes of one transaction.
#[derive(Clone, Debug, Default)]
pub struct WriteMap {
    keys: BTreeMap<Vec<u8>, KeyWrite>,
    cleared: Vec<KeyRange>,
}

impl WriteMap {
    /// Records `set(key, value)`.
    pub fn set(&mut self, key: &[u8], value: &[u8]) {
        self.keys
            .insert(key.to_vec(), KeyWrite::Known(Some(value.to_vec())));
    }

    /// Records `clear(key)`.
    pub fn clear(&mut self, key: &[u8]) {
        self.keys.insert(key.to_vec(), KeyWrite::Known(None));
    }

    /// Records `clear_range(begin, end)`.
    pub fn clear_range(&mut self, range: &KeyRange) {
        let doomed: Vec<Vec<u8>> = self.range_keys(range).map(|(k, _)| k.clone()).collect();
        for key in doomed {
            self.keys.remove(&key);
        }
        self.cleared.push(range.clone());
    }

    /// Records an atomic op.
    pub fn atomic(&mut self, key: &[u8], op: MutationType, param: &[u8]) {
        let next = match self.keys.remove(key) {
            Some(KeyWrite::Known(value)) => {
                KeyWrite::Known(atomic::apply(op, value.as_deref(), param))
            }
            Some(KeyWrite::Pending(mut ops)) => {
                ops.push((op, param.to_vec()));
                KeyWrite::Pending(ops)
            }
            None if self.is_cleared(key) => KeyWrite::Known(atomic::apply(op, None, param)),
            None => KeyWrite::Pending(vec![(op, param.to_vec())]),
        };
        self.keys.insert(key.to_vec(), next);
    }

    /// Forgets any write to `key` (its value is now unreadable until commit).
    pub fn forget(&mut self, key: &[u8]) {
        self.keys.remove(key);
    }

    /// What the writes say about `key`: `None` when only storage knows.
    pub fn lookup(&self, key: &[u8]) -> Option<KeyWrite> {
        match self.keys.get(key) {
            Some(write) => Some(write.clone()),
            None if self.is_cleared(key) => Some(KeyWrite::Known(None)),
            None => None,
        }
    }

    /// True when a `clear_range` of this transaction covers `key`.
    pub fn is_cleared(&self, key: &[u8]) -> bool {
        self.cleared.iter().any(|r| r.contains(key))
    }

    /// The written keys inside `range`, in key order.
    pub fn range_keys<'a>(
        &'a self,
        range: &KeyRange,
    ) -> impl DoubleEndedIterator<Item = (&'a Vec<u8>, &'a KeyWrite)> + 'a {
        // A range that ends before it begins is empty (`BTreeMap::range` would panic on it).
        let end = range.end.as_slice().max(range.begin.as_slice());
        self.keys.range::<[u8], _>((
            Bound::Included(range.begin.as_slice()),
            Bound::Excluded(end),
        ))
    }

    /// The parts of `range` whose values storage decides: `range` minus cleared ranges and keys
    /// with known values. FDB adds read conflicts only for these.
    pub fn unknown_parts(&self, range: KeyRange) -> Vec<KeyRange> {
        let mut known: Vec<KeyRange> = self
            .cleared
            .iter()
            .filter(|cleared| cleared.intersects(&range))
            .cloned()
            .collect();
        known.extend(
            self.range_keys(&range)
                .filter(|(_, w)| matches!(w, KeyWrite::Known(_)))
                .map(|(k, _)| KeyRange::point(k)),
        );
        if known.is_empty() {
            // The common case (a read of keys this transaction has not written): no copies.
            return vec![range];
        }
        range.subtract(&known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_on_cleared_key_is_known() {
        let mut w = WriteMap::default();
        w.clear_range(&KeyRange::new(b"a".to_vec(), b"c".to_vec()));
        w.atomic(b"b", MutationType::Add, &[1]);
        assert_eq!(w.lookup(b"b"), Some(KeyWrite::Known(Some(vec![1]))));
        w.atomic(b"x", MutationType::Add, &[1]);
        assert!(matches!(w.lookup(b"x"), Some(KeyWrite::Pending(_))));
        assert_eq!(w.lookup(b"y"), None);
    }

    #[test]
    fn unknown_parts_skip_known_keys_but_not_pending_ones() {
        let mut w = WriteMap::default();
        w.set(b"b", b"1");
        w.atomic(b"d", MutationType::Add, &[1]);
        let parts = w.unknown_parts(KeyRange::new(b"a".to_vec(), b"z".to_vec()));
        assert_eq!(
            parts,
            vec![
                KeyRange::new(b"a".to_vec(), b"b".to_vec()),
                KeyRange::new(b"b\0".to_vec(), b"z".to_vec())
            ]
        );
    }
}
