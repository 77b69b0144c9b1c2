//! The Sekai edge node.
