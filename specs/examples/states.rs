//! Prints the twin's state count at the bounds of a TLC `.cfg` file (its `CONSTANTS`), for
//! comparison with TLC's `distinct states found` (see `specs/ci.sh`).
//!
//! ```sh
//! cargo run -p sekai-specs --example states -- specs/WorldProtocolCI.cfg
//! ```
//!
//! The last line is `twin: <distinct> distinct states, <generated> generated, depth <d>`.
//! Exits 1 if the cfg cannot be read or a safety property fails.

use sekai_specs::check::property_names;
use sekai_specs::{check, Bounds, WorldModel};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: states <WorldProtocol .cfg>");
        std::process::exit(2);
    };
    let bounds = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| Bounds::from_tlc_cfg(&text))
    {
        Ok(bounds) => bounds,
        Err(error) => {
            eprintln!("states: {path}: {error}");
            std::process::exit(1);
        }
    };
    println!("bounds: {bounds}");
    let model = WorldModel::new(bounds);
    let failures = property_names(&model, true);
    let start = std::time::Instant::now();
    let report = check(model, None);
    let violated: Vec<_> = failures.iter().filter(|n| report.found(n)).collect();
    if !violated.is_empty() {
        eprintln!("states: violated: {violated:?}");
        std::process::exit(1);
    }
    println!(
        "twin: {} distinct states, {} generated, depth {} ({:.1?})",
        report.unique_states,
        report.total_states,
        report.max_depth,
        start.elapsed()
    );
}
