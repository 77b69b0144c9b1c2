//! The Sekai edge node and the `sekai` command's library.

pub mod demo;
