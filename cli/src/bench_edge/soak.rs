//! `sekai bench soak`: the demo's load for a long time, watched minute by minute.
//!
//! A `sekai serve` child (the demo's world: 2×2 regions; pinned to core 0 where there are two
//! cores) and a `sekai bots` child (core 1) that reports each period's own latency (histograms
//! reset every period, so a figure is never an average over the whole run). At every report the
//! server's resident memory and the size of its data directory are sampled. The result: a line
//! per period, the slopes (MB per minute, least squares over the second half, after warm-up),
//! an SVG of RSS, store size and p99 over time, and a JSON last line.
//!
//! Invariants: figures come from `/proc` and the file system of the running child; a run whose
//! load generator stops early is reported as such, never extrapolated.

use std::path::Path;
use std::time::Instant;

use super::{quic_address, spawn_until, Pinning};
use crate::commands::json_number;
use crate::proc_stats::rss_mib;

/// `sekai bench soak` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchSoakArgs {
    /// Minutes of load.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 30.0)]
    pub minutes: f64,
    /// Bots (the demo's 300 by default).
    #[arg(long, default_value_t = 300)]
    pub bots: usize,
    /// Seconds per reported period.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 60.0)]
    pub period: f64,
    /// Where the plot and the JSON go.
    #[arg(long, default_value = "sekai-reports")]
    pub out: std::path::PathBuf,
}

/// One reported period.
#[derive(Clone, Copy, Debug)]
struct Sample {
    minutes: f64,
    rss_mb: f64,
    store_mb: f64,
    p99_ms: f64,
    inputs_per_sec: f64,
}

/// Runs the soak and prints its report.
pub async fn bench_soak(args: BenchSoakArgs) -> Result<(), String> {
    let pin = Pinning::detect();
    println!("{}", pin.describe());
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut serve = pin.command(0, &exe);
    serve
        .arg("serve")
        .arg("--dir")
        .arg(dir.path())
        .args(["--secret", "soak-secret", "--listen", "127.0.0.1:0"])
        .args(["--workers", "1", "--regions-per-side", "2"])
        .env("RUST_LOG", "warn");
    let (server, line, _server_out) = spawn_until(serve, "sekai serve", "edge on ").await?;
    let server_pid = server.0.id().ok_or("the server exited")?;
    let address = quic_address(&line)?;
    let mut load = pin.command(1, &exe);
    load.arg("bots")
        .args(["--connect", &address, "--secret", "soak-secret"])
        .arg("--cert")
        .arg(dir.path().join(sekai_edge::tls::CERT_FILE))
        .args(["--threads", "1", "--warmup", "2"])
        .arg("--bots")
        .arg(args.bots.to_string())
        .arg("--seconds")
        .arg((args.minutes * 60.0).to_string())
        .arg("--report-every")
        .arg(args.period.to_string())
        .env("RUST_LOG", "warn");
    let (mut bots, _, mut lines) = spawn_until(load, "sekai bots", "window start").await?;
    let started = Instant::now();
    let mut samples = Vec::new();
    println!("minute   rss MB   store MB   p99 ms   inputs/s");
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(json) = line.strip_prefix("soak ") else {
            continue;
        };
        let sample = Sample {
            minutes: started.elapsed().as_secs_f64() / 60.0,
            rss_mb: rss_mib(server_pid).unwrap_or(0.0),
            store_mb: dir_bytes(dir.path()) as f64 / (1024.0 * 1024.0),
            p99_ms: json_number(json, "p99_us").unwrap_or(0.0) / 1e3,
            inputs_per_sec: json_number(json, "inputs_per_sec").unwrap_or(0.0),
        };
        println!(
            "{:>6.1} {:>8.1} {:>10.1} {:>8.2} {:>10.0}",
            sample.minutes, sample.rss_mb, sample.store_mb, sample.p99_ms, sample.inputs_per_sec
        );
        samples.push(sample);
    }
    let _ = bots.0.wait().await;
    drop(server);
    let half = &samples[samples.len() / 2..];
    let rss_slope = slope(half.iter().map(|s| (s.minutes, s.rss_mb)));
    let store_slope = slope(half.iter().map(|s| (s.minutes, s.store_mb)));
    let (first, last) = (samples.first(), samples.last());
    let p99 = |s: Option<&Sample>| s.map_or(0.0, |s| s.p99_ms);
    println!(
        "second half: RSS {rss_slope:+.2} MB/min, store {store_slope:+.2} MB/min; p99 {:.2} ms \
         in the first period, {:.2} ms in the last",
        p99(first),
        p99(last)
    );
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let plot = args.out.join("soak.svg");
    let series = |f: fn(&Sample) -> f64| samples.iter().map(|s| (s.minutes, f(s))).collect();
    crate::plot::write_timeline_svg(
        &plot,
        &format!("soak: {} bots, {:.0} min", args.bots, args.minutes),
        &[
            ("server RSS (MB)", series(|s| s.rss_mb)),
            ("store (MB)", series(|s| s.store_mb)),
            ("p99 input->delta (ms)", series(|s| s.p99_ms)),
        ],
    )?;
    println!("plot: {}", plot.display());
    println!(
        "{{\"minutes\":{:.1},\"bots\":{},\"periods\":{},\"rss_slope_mb_per_min\":{rss_slope:.3},\
         \"store_slope_mb_per_min\":{store_slope:.3},\"p99_first_ms\":{:.2},\"p99_last_ms\":{:.2},\
         \"rss_last_mb\":{:.1},\"store_last_mb\":{:.1}}}",
        args.minutes,
        args.bots,
        samples.len(),
        p99(first),
        p99(last),
        last.map_or(0.0, |s| s.rss_mb),
        last.map_or(0.0, |s| s.store_mb)
    );
    Ok(())
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The least-squares slope of `points` (0 with fewer than two).
fn slope(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let points: Vec<(f64, f64)> = points.collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let num: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_are_least_squares() {
        assert_eq!(slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)].into_iter()), 2.0);
        assert_eq!(slope([(1.0, 4.0)].into_iter()), 0.0);
    }
}
