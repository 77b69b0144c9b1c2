//! Deterministic simulation of the Sekai world with fault injection.
