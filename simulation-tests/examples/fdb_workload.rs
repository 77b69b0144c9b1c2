//! The cdylib fdbserver loads for the Sekai simulation workload (feature `fdb-sim`):
//! `cargo build -p sekai-simulation --release --features fdb-sim --example fdb_workload`, then
//! `fdbserver -r simulation -f simulation-tests/fdb/sekai.toml` (see `simulation-tests/README.md`).

use foundationdb_simulation::register_workload;
use sekai_simulation::fdb_workload::SekaiWorkload;

register_workload!(SekaiWorkload);
