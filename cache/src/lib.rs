//! Version-validated caches of hot world state (moka), never trusted without proof of currency.
