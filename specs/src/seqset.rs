//! A small set of input sequence numbers (1..=8), stored as a bit mask so states hash fast.

/// A set of sequence numbers in `1..=8`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqSet(u8);

impl SeqSet {
    /// The largest sequence number the set can hold.
    pub const MAX: u8 = 8;

    /// The bit for `seq`, or `None` when `seq` is outside `1..=MAX`.
    fn bit(seq: u8) -> Option<u8> {
        if (1..=Self::MAX).contains(&seq) {
            Some(1 << (seq - 1))
        } else {
            None
        }
    }

    /// Whether `seq` is in the set.
    pub fn contains(self, seq: u8) -> bool {
        Self::bit(seq).is_some_and(|b| self.0 & b != 0)
    }

    /// Adds `seq`; returns `None` (and changes nothing) when `seq` is out of range.
    pub fn insert(&mut self, seq: u8) -> Option<()> {
        self.0 |= Self::bit(seq)?;
        Some(())
    }

    /// Removes `seq` if present.
    pub fn remove(&mut self, seq: u8) {
        if let Some(b) = Self::bit(seq) {
            self.0 &= !b;
        }
    }

    /// The members in increasing order.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (1..=Self::MAX).filter(move |&s| self.contains(s))
    }
}

#[cfg(test)]
mod tests {
    use super::SeqSet;

    #[test]
    fn insert_contains_remove() {
        let mut set = SeqSet::default();
        assert_eq!(set.insert(3), Some(()));
        assert_eq!(set.insert(1), Some(()));
        assert_eq!(set.insert(9), None);
        assert!(set.contains(3) && set.contains(1) && !set.contains(2));
        set.remove(3);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![1]);
    }
}
