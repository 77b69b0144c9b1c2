//! A small set of [`Numbered`] inputs (seq and input number both in `1..=8`), stored as a bit
//! mask so states hash fast.

use crate::state::Numbered;

/// A set of `(seq, input)` pairs with both numbers in `1..=8`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InputSet(u64);

impl InputSet {
    /// The largest seq or input number the set can hold.
    pub const MAX: u8 = 8;

    /// The bit for `n`, or `None` when a number is outside `1..=MAX`.
    fn bit(n: Numbered) -> Option<u64> {
        let range = 1..=Self::MAX;
        if range.contains(&n.seq) && range.contains(&n.input) {
            Some(1 << ((n.seq - 1) * Self::MAX + (n.input - 1)))
        } else {
            None
        }
    }

    /// Whether `n` is in the set.
    pub fn contains(self, n: Numbered) -> bool {
        Self::bit(n).is_some_and(|b| self.0 & b != 0)
    }

    /// Adds `n`; returns `None` (and changes nothing) when a number is out of range.
    pub fn insert(&mut self, n: Numbered) -> Option<()> {
        self.0 |= Self::bit(n)?;
        Some(())
    }

    /// Removes `n` if present.
    pub fn remove(&mut self, n: Numbered) {
        if let Some(b) = Self::bit(n) {
            self.0 &= !b;
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, by seq and then input number.
    pub fn iter(self) -> impl Iterator<Item = Numbered> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let index = u8::try_from(bits.trailing_zeros()).ok()?;
            bits &= bits - 1;
            Some(Numbered {
                seq: index / Self::MAX + 1,
                input: index % Self::MAX + 1,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::InputSet;
    use crate::state::Numbered;

    const fn n(seq: u8, input: u8) -> Numbered {
        Numbered { seq, input }
    }

    #[test]
    fn insert_contains_remove() {
        let mut set = InputSet::default();
        assert_eq!(set.insert(n(3, 1)), Some(()));
        assert_eq!(set.insert(n(1, 2)), Some(()));
        assert_eq!(set.insert(n(9, 1)), None);
        assert_eq!(set.insert(n(1, 0)), None);
        assert!(set.contains(n(3, 1)) && set.contains(n(1, 2)) && !set.contains(n(1, 1)));
        set.remove(n(3, 1));
        assert_eq!(set.insert(n(8, 8)), Some(()));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![n(1, 2), n(8, 8)]);
        set.remove(n(8, 8));
        set.remove(n(1, 2));
        assert!(set.is_empty());
    }
}
