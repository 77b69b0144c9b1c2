//! `sekai chaos` at CI size: three SIGKILLs of a real `sekai serve` under 20 bots, then the
//! store must hold every acknowledged input exactly once, in order (the command exits non-zero
//! otherwise). No timing is asserted.

use std::process::Command;

#[test]
fn three_kills_under_twenty_bots_lose_no_acknowledged_input() {
    let output = Command::new(env!("CARGO_BIN_EXE_sekai"))
        .args(["chaos", "--kills", "3", "--bots", "20", "--seed", "14"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sekai chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sekai chaos failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let field = |name: &str| sekai_cli::commands::json_number(last, name);
    assert_eq!(field("kills"), Some(3.0), "{last}");
    assert_eq!(field("lost"), Some(0.0), "{last}");
    assert!(field("acked").is_some_and(|acked| acked > 0.0), "{last}");
}
