//! Half-open key ranges `[begin, end)` and the set operations conflict tracking needs.

use crate::kv::key_after;

/// A half-open key range `[begin, end)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRange {
    /// First key in the range.
    pub begin: Vec<u8>,
    /// First key after the range.
    pub end: Vec<u8>,
}

impl KeyRange {
    /// `[begin, end)`.
    pub fn new(begin: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self {
            begin: begin.into(),
            end: end.into(),
        }
    }

    /// The single key `[key, key + \x00)`.
    pub fn point(key: &[u8]) -> Self {
        Self::new(key, key_after(key))
    }

    /// True when the range holds no key.
    pub fn is_empty(&self) -> bool {
        self.begin >= self.end
    }

    /// True when `key` lies inside.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.begin.as_slice() <= key && key < self.end.as_slice()
    }

    /// True when the two ranges share a key.
    pub fn intersects(&self, other: &KeyRange) -> bool {
        self.begin < other.end && other.begin < self.end
    }

    /// The parts of `self` outside every range of `holes` (which need not be sorted).
    pub fn subtract(&self, holes: &[KeyRange]) -> Vec<KeyRange> {
        let mut sorted: Vec<&KeyRange> = holes.iter().filter(|h| h.intersects(self)).collect();
        sorted.sort();
        let mut parts = Vec::new();
        let mut cursor = self.begin.clone();
        for hole in sorted {
            if hole.begin > cursor {
                parts.push(KeyRange::new(cursor.clone(), hole.begin.clone()));
            }
            if hole.end > cursor {
                cursor = hole.end.clone();
            }
        }
        if cursor < self.end {
            parts.push(KeyRange::new(cursor, self.end.clone()));
        }
        parts
    }

    /// Bytes this range counts toward the transaction size limit.
    pub fn size(&self) -> usize {
        self.begin.len() + self.end.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(b: &str, e: &str) -> KeyRange {
        KeyRange::new(b.as_bytes(), e.as_bytes())
    }

    #[test]
    fn subtract_leaves_the_gaps() {
        let parts = r("a", "z").subtract(&[r("c", "d"), r("b", "c"), r("x", "zz")]);
        assert_eq!(parts, vec![r("a", "b"), r("d", "x")]);
        assert_eq!(r("a", "b").subtract(&[]), vec![r("a", "b")]);
        assert!(r("b", "c").subtract(&[r("a", "z")]).is_empty());
    }

    #[test]
    fn intersection_is_half_open() {
        assert!(!r("a", "b").intersects(&r("b", "c")));
        assert!(r("a", "b\0").intersects(&r("b", "c")));
        assert!(KeyRange::point(b"k").contains(b"k"));
        assert!(!KeyRange::point(b"k").contains(b"k\0"));
    }
}
