//! `sekai bench edge`: players per server core, Sekai against a raw quinn baseline, measured the
//! way a user would: the server in one process pinned to core 0, the load generator in another
//! pinned to core 1 (`taskset`), CPU from `/proc`, latencies from hdrhistogram.
//!
//! For each bot count the command runs `sekai serve` (16 regions, one edge worker) with
//! `sekai bots`, then the raw baseline (`sekai bench raw-server` with `sekai bench raw-clients`)
//! carrying the same connections, input rate and delivered messages per input as Sekai's run,
//! one datagram per message, `--repeat` times (3 by default, interleaved), and keeps the median
//! run by p99: the machine is shared and noisy, so one run decides nothing. **Capacity** is the
//! largest count whose median p99 input→delta latency is at most 11 ms with every client
//! connected and the server at most one core. Then Sekai runs at
//! four times its capacity (the overload entry). Sekai's runs also report the inputs applied per
//! frame committed (`inputs_per_frame`, from the server's `--stats` lines): how far the work a
//! frame does once is shared between inputs. The last line is JSON; the same JSON goes to
//! `<out>/bench-edge.json` and every run's latency CDF to `<out>/bench-edge-latency-cdf.svg`.
//!
//! Invariants: every child is killed when its run ends (also on error); a run that cannot start
//! or report is an error naming the command, never a made-up figure.

pub mod raw;
pub mod reconnect;
pub mod soak;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::commands::{json_number, BotsReport, CDF_LINE};
use crate::plot::Cdf;
use crate::proc_stats::{cpu_seconds, rss_mib};

/// A VR frame: the latency budget of one input, in microseconds.
pub const FRAME_BUDGET_US: u64 = 11_100;

/// `sekai bench edge` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchEdgeArgs {
    /// Bot counts to sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,200,400,800")]
    pub bots: Vec<usize>,
    /// Seconds of each measured window.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 20.0)]
    pub seconds: f64,
    /// Seconds of play before each window.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 3.0)]
    pub warmup: f64,
    /// Regions per side of the world (4: 16 regions).
    #[arg(long, default_value_t = 4)]
    pub regions_per_side: i32,
    /// `serve --workers`: threads serving connections (0: the whole server on one thread beside
    /// the store's committer). The server has one core, so 0: in interleaved pairs of runs
    /// against 1 (2026-11-30, server on core 0, bots on core 1) it used 1-9 % less CPU at 400
    /// bots in 6 of 7 pairs (a lower p99 in 6), and at 800 applied more inputs with a lower p99
    /// in 5 of 7.
    #[arg(long, default_value_t = 0)]
    pub server_workers: usize,
    /// Runs at each bot count (Sekai and raw interleaved); each count reports its median run by
    /// p99, and capacity is judged on those medians. 1 gives one run per count.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Skip the raw baseline (Sekai only).
    #[arg(long)]
    pub no_raw: bool,
    /// Skip the overload run.
    #[arg(long)]
    pub no_overload: bool,
    /// Seed of the world and the bots.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `sekai bots --area-radius`: each bot's area of interest, in metres. The raw baseline
    /// sends as many deltas per input as Sekai delivered entity updates, so a larger area costs
    /// it one datagram per extra update, while Sekai folds a frame's updates into one message.
    #[arg(long, default_value_t = crate::bots::BOT_AREA_RADIUS, value_parser = crate::flags::area_radius)]
    pub area_radius: f32,
    /// Directory the JSON report and the latency CDF plot (SVG) are written to.
    #[arg(long, default_value = crate::plot::REPORT_DIR)]
    pub out: PathBuf,
}

/// The largest share of inputs a run may shed and still count toward capacity.
pub const MAX_SHED_SHARE: f64 = 0.001;

/// One measured run (Sekai or raw) at one bot count.
#[derive(Clone, Debug, Default)]
pub struct RunFigures {
    /// What the load generator measured.
    pub bots: BotsReport,
    /// Server CPU cores used in the window.
    pub server_cores: f64,
    /// Server CPU per applied input, microseconds.
    pub server_cpu_us_per_input: f64,
    /// Server resident memory at the window's end, MiB.
    pub server_rss_mb: f64,
    /// Outbox coalescings per second (Sekai only).
    pub coalesced_per_sec: f64,
    /// Inputs applied per frame committed in the window (Sekai only; 0 for the raw baseline,
    /// which has no frames): how far per-frame work is shared between inputs.
    pub inputs_per_frame: f64,
}

/// The server's counters the benchmark follows, from its `--stats` lines.
#[derive(Debug, Default)]
struct ServerCounters {
    coalesced: AtomicU64,
    frames: AtomicU64,
    inputs_applied: AtomicU64,
}

impl ServerCounters {
    /// Takes the counters of one `--stats` line (JSON); other lines change nothing.
    fn update(&self, line: &str) {
        for (name, counter) in [
            ("coalesced", &self.coalesced),
            ("frames", &self.frames),
            ("inputs_applied", &self.inputs_applied),
        ] {
            if let Some(value) = json_number(line, name) {
                counter.store(value as u64, Ordering::Relaxed);
            }
        }
    }

    /// The counters now: coalescings, frames, inputs applied.
    fn read(&self) -> [u64; 3] {
        [&self.coalesced, &self.frames, &self.inputs_applied].map(|c| c.load(Ordering::Relaxed))
    }
}

impl RunFigures {
    /// Whether this run fits the budget: all connected, p99 ≤ one frame, ≤ one server core, and
    /// (nearly) every input taken: a server that sheds more than [`MAX_SHED_SHARE`] of the inputs
    /// is past its capacity, however fast the ones it takes are.
    pub fn within_budget(&self) -> bool {
        self.bots.connected as usize == self.bots.bots
            && self.bots.stopped == 0
            && self.bots.p99_us <= FRAME_BUDGET_US
            && self.server_cores <= 1.05
            && self.bots.shed_per_sec <= MAX_SHED_SHARE * self.bots.inputs_per_sec
    }

    fn to_json(&self) -> String {
        format!(
            "{{{},\"server_cores\":{:.3},\"server_cpu_us_per_input\":{:.1},\"bot_cores\":{:.3},\
             \"shed_per_sec\":{:.1},\"inputs_per_frame\":{:.2}}}",
            self.bots.traffic_json(),
            self.server_cores,
            self.server_cpu_us_per_input,
            self.bots.bot_cores,
            self.bots.shed_per_sec,
            self.inputs_per_frame
        )
    }
}

/// Runs the benchmark and prints its tables and the JSON line.
pub async fn bench_edge(args: BenchEdgeArgs) -> Result<(), String> {
    let pin = Pinning::detect();
    println!("{}", pin.describe());
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut runs = Vec::new();
    let mut raw_runs = Vec::new();
    for &bots in &args.bots {
        let (mut sekai_tries, mut raw_tries) = (Vec::new(), Vec::new());
        for attempt in 1..=args.repeat {
            let tag = |what: &str| match args.repeat {
                1 => what.to_string(),
                n => format!("{what} {attempt}/{n}"),
            };
            let sekai = run_sekai(&exe, &pin, &args, bots).await?;
            print_run(&tag("sekai"), &sekai);
            if !args.no_raw {
                let per_input = sekai.bots.updates_per_sec / sekai.bots.inputs_per_sec.max(1.0);
                let fanout = per_input.max(1.0);
                let raw = run_raw(&exe, &pin, &args, bots, fanout).await?;
                print_run(&tag(&format!("raw (fanout {fanout:.1})")), &raw);
                raw_tries.push(raw);
            }
            sekai_tries.push(sekai);
        }
        runs.push(median_of("sekai", sekai_tries));
        if !raw_tries.is_empty() {
            raw_runs.push(median_of("raw", raw_tries));
        }
    }
    let capacity = |list: &[RunFigures]| {
        list.iter()
            .filter(|r| r.within_budget())
            .map(|r| r.bots.bots)
            .max()
            .unwrap_or(0)
    };
    let (sekai_capacity, raw_capacity) = (capacity(&runs), capacity(&raw_runs));
    let overload = if args.no_overload {
        None
    } else {
        let bots = 4 * sekai_capacity.max(args.bots.first().copied().unwrap_or(100));
        let run = run_sekai(&exe, &pin, &args, bots).await?;
        print_run("sekai overload", &run);
        Some(run)
    };
    let ratio = if raw_capacity > 0 {
        sekai_capacity as f64 / raw_capacity as f64
    } else {
        0.0
    };
    println!(
        "capacity (median of {} runs: p99 <= {:.1} ms, server <= 1 core): sekai {sekai_capacity}, \
         raw {raw_capacity}, ratio {ratio:.2}",
        args.repeat,
        FRAME_BUDGET_US as f64 / 1e3
    );
    let list = |runs: &[RunFigures]| runs.iter().map(RunFigures::to_json).collect::<Vec<_>>();
    let overload_json = overload.as_ref().map_or("null".to_string(), |o| {
        format!(
            "{{\"bots\":{},\"connected\":{},\"errors\":{},\"p99_us\":{},\"coalesced_per_sec\":{:.1},\
             \"server_rss_mb\":{:.1},\"inputs_per_sec\":{:.1},\"shed_per_sec\":{:.1}}}",
            o.bots.bots,
            o.bots.connected,
            o.bots.errors,
            o.bots.p99_us,
            o.coalesced_per_sec,
            o.server_rss_mb,
            o.bots.inputs_per_sec,
            o.bots.shed_per_sec
        )
    });
    let json = format!(
        "{{\"repeat\":{},\"area_radius\":{},\"runs\":[{}],\"raw_runs\":[{}],\"capacity\":{{\"sekai\":{sekai_capacity},\"raw\":{raw_capacity},\
         \"ratio\":{ratio:.3}}},\"overload\":{overload_json}}}",
        args.repeat,
        args.area_radius,
        list(&runs).join(","),
        list(&raw_runs).join(",")
    );
    let mut series: Vec<Cdf> = Vec::new();
    for (what, list) in [("sekai", &runs), ("raw", &raw_runs)] {
        for run in list {
            series.push(run_cdf(&format!("{what} {} bots", run.bots.bots), run));
        }
    }
    if let Some(run) = &overload {
        series.push(run_cdf(
            &format!("sekai overload {} bots", run.bots.bots),
            run,
        ));
    }
    let (json_path, svg_path) = crate::plot::write_report(
        &args.out,
        "bench-edge",
        &json,
        "sekai bench edge: input -> delta latency CDF",
        &series,
    )?;
    println!("report: {}", json_path.display());
    println!("latency CDF plot: {}", svg_path.display());
    println!("{json}");
    Ok(())
}

/// [`median_run`] of `what`'s runs at one bot count, printed when there were several.
fn median_of(what: &str, tries: Vec<RunFigures>) -> RunFigures {
    let several = tries.len() > 1;
    let median = median_run(tries);
    if several {
        print_run(&format!("{what} median"), &median);
    }
    median
}

/// The median of runs at one bot count, by p99 (the upper median of an even count, the more
/// cautious one): a whole run, so the figures reported together were measured together.
fn median_run(mut tries: Vec<RunFigures>) -> RunFigures {
    debug_assert!(!tries.is_empty(), "every bot count runs at least once");
    tries.sort_by_key(|run| run.bots.p99_us);
    tries.swap_remove(tries.len() / 2)
}

/// A run's latency CDF under `label`.
fn run_cdf(label: &str, run: &RunFigures) -> Cdf {
    Cdf {
        label: label.to_string(),
        points: run.bots.cdf.clone(),
    }
}

fn print_run(what: &str, run: &RunFigures) {
    let b = &run.bots;
    println!(
        "{what:>20} bots {:>5} connected {:>5} inputs/s {:>7.0} updates/s {:>8.0} datagrams/s {:>8.0} \
         p50 {:>6.2} ms p99 {:>7.2} ms p999 {:>7.2} ms server {:.2} cores ({:.0} us/input) bots {:.2} cores \
         shed {:.0}/s{}",
        b.bots,
        b.connected,
        b.inputs_per_sec,
        b.updates_per_sec,
        b.datagrams_per_sec,
        b.p50_us as f64 / 1e3,
        b.p99_us as f64 / 1e3,
        b.p999_us as f64 / 1e3,
        run.server_cores,
        run.server_cpu_us_per_input,
        b.bot_cores,
        b.shed_per_sec,
        if run.inputs_per_frame > 0.0 {
            format!(" inputs/frame {:.2}", run.inputs_per_frame)
        } else {
            String::new()
        }
    );
}

/// Where the server and the load generator run.
pub struct Pinning {
    taskset: bool,
}

impl Pinning {
    pub(crate) fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = cores >= 2
            && std::process::Command::new("taskset")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        Self { taskset }
    }

    pub(crate) fn describe(&self) -> &'static str {
        if self.taskset {
            "server pinned to core 0, load generator to core 1 (taskset)"
        } else {
            "NOT pinned: fewer than 2 cores or no taskset; server and load generator share cores"
        }
    }

    pub(crate) fn command(&self, core: usize, exe: &Path) -> Command {
        if self.taskset {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(core.to_string()).arg(exe);
            command
        } else {
            Command::new(exe)
        }
    }
}

/// A child that is killed when dropped.
pub(crate) struct Guarded(pub(crate) Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Spawns `command` with piped stdout and waits for a stdout line starting with `ready`;
/// returns the child, the rest of that line and the stdout reader.
pub(crate) async fn spawn_until(
    mut command: Command,
    what: &str,
    ready: &str,
) -> Result<
    (
        Guarded,
        String,
        tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    ),
    String,
> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = Guarded(
        command
            .spawn()
            .map_err(|e| format!("starting {what}: {e}"))?,
    );
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| format!("{what}: no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Duration::from_secs(120);
    let found = tokio::time::timeout(deadline, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix(ready) {
                return Some(rest.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| format!("{what} did not print `{ready}` within {deadline:?}"))?;
    Ok((child, found, lines))
}

/// The address in a `... quic://ADDR ...` line.
pub(crate) fn quic_address(line: &str) -> Result<String, String> {
    let start = line.find("quic://").ok_or("no quic:// address")? + "quic://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c == ';' || c.is_whitespace())
        .unwrap_or(rest.len());
    Ok(rest[..end].to_string())
}

/// Runs Sekai (`serve` + `bots`) with `bots` bots.
async fn run_sekai(
    exe: &Path,
    pin: &Pinning,
    args: &BenchEdgeArgs,
    bots: usize,
) -> Result<RunFigures, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut serve = pin.command(0, exe);
    serve
        .arg("serve")
        .arg("--dir")
        .arg(dir.path())
        .args(["--secret", "bench-secret", "--listen", "127.0.0.1:0"])
        .arg("--workers")
        .arg(args.server_workers.to_string())
        .arg("--stats")
        .arg("--regions-per-side")
        .arg(args.regions_per_side.to_string())
        .arg("--seed")
        .arg(args.seed.to_string())
        .env("RUST_LOG", "warn");
    let (server, line, server_out) = spawn_until(serve, "sekai serve", "edge on ").await?;
    let address = quic_address(&line)?;
    let cert = dir.path().join(sekai_edge::tls::CERT_FILE);
    let mut load = pin.command(1, exe);
    load.arg("bots")
        .args(["--connect", &address, "--secret", "bench-secret"])
        .arg("--cert")
        .arg(&cert)
        .arg("--area-radius")
        .arg(args.area_radius.to_string())
        .args(common_load_args(args, bots));
    measure(server, Some(server_out), load, "sekai bots").await
}

/// Runs the raw baseline with `bots` clients and `fanout` deltas per input.
async fn run_raw(
    exe: &Path,
    pin: &Pinning,
    args: &BenchEdgeArgs,
    bots: usize,
    fanout: f64,
) -> Result<RunFigures, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let cert: PathBuf = dir.path().join("raw-cert.der");
    let mut serve = pin.command(0, exe);
    serve
        .args(["bench", "raw-server", "--listen", "127.0.0.1:0"])
        .arg("--cert")
        .arg(&cert)
        .arg("--fanout")
        .arg(format!("{fanout:.3}"))
        .env("RUST_LOG", "warn");
    let (server, line, _) = spawn_until(serve, "raw server", "raw edge on ").await?;
    let address = quic_address(&line)?;
    let mut load = pin.command(1, exe);
    load.args(["bench", "raw-clients", "--connect", &address])
        .arg("--cert")
        .arg(&cert)
        .args(common_load_args(args, bots));
    measure(server, None, load, "raw clients").await
}

fn common_load_args(args: &BenchEdgeArgs, bots: usize) -> Vec<String> {
    vec![
        "--bots".into(),
        bots.to_string(),
        "--seconds".into(),
        args.seconds.to_string(),
        "--warmup".into(),
        args.warmup.to_string(),
        "--threads".into(),
        "1".into(),
        "--seed".into(),
        args.seed.to_string(),
    ]
}

/// Starts the load generator, samples the server's CPU at its window's edges, and gathers the
/// figures.
async fn measure(
    server: Guarded,
    server_out: Option<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>,
    mut load: Command,
    what: &str,
) -> Result<RunFigures, String> {
    let server_pid = server
        .0
        .id()
        .ok_or_else(|| format!("{what}: the server exited"))?;
    let counters = Arc::new(ServerCounters::default());
    let reader = server_out.map(|mut lines| {
        let counters = counters.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                counters.update(&line);
            }
        })
    });
    load.env("RUST_LOG", "warn");
    let (mut bots, _, mut lines) = spawn_until(load, what, "window start")
        .await
        .map_err(|e| format!("{e} (the server or the load generator failed)"))?;
    let cpu_start = cpu_seconds(server_pid).ok_or("server CPU unreadable")?;
    let counters_start = counters.read();
    let window_start = std::time::Instant::now();
    let mut report: Option<BotsReport> = None;
    let mut cdf = Vec::new();
    let mut window = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("window end") {
            let cpu_end = cpu_seconds(server_pid).ok_or("server CPU unreadable")?;
            let rss = rss_mib(server_pid).unwrap_or(0.0);
            let counters_end = counters.read();
            let [coalesced, frames, applied] =
                [0, 1, 2].map(|i| counters_end[i].saturating_sub(counters_start[i]));
            window = Some((
                cpu_end - cpu_start,
                window_start.elapsed().as_secs_f64(),
                rss,
                coalesced,
                applied as f64 / frames.max(1) as f64,
            ));
        } else if let Some(points) = line.strip_prefix(CDF_LINE) {
            cdf = Cdf::from_points_json("", points).map_or_else(Vec::new, |c| c.points);
        } else if line.starts_with('{') {
            if let Some(parsed) = BotsReport::from_json(&line) {
                report = Some(parsed);
            }
        }
    }
    let _ = bots.0.wait().await;
    drop(server);
    if let Some(reader) = reader {
        reader.abort();
    }
    let (cpu, elapsed, rss, coalesced, inputs_per_frame) =
        window.ok_or_else(|| format!("{what}: no window end"))?;
    let mut bots = report.ok_or_else(|| format!("{what}: no JSON report"))?;
    bots.cdf = cdf;
    Ok(RunFigures {
        server_cores: cpu / elapsed,
        server_cpu_us_per_input: cpu * 1e6 / (bots.inputs_per_sec * elapsed).max(1.0),
        server_rss_mb: rss,
        coalesced_per_sec: coalesced as f64 / elapsed,
        inputs_per_frame,
        bots,
    })
}

/// `sekai bench raw-server`: the raw baseline's server.
#[derive(Clone, Debug, clap::Args)]
pub struct RawServerArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Where to write the server's certificate (DER) for the clients to pin.
    #[arg(long)]
    pub cert: PathBuf,
    /// Deltas sent per input (mean): to the sender and the connections after it.
    #[arg(long, default_value_t = 20.0)]
    pub fanout: f64,
}

/// Runs the raw baseline's server until the process is killed.
pub async fn raw_server_command(args: RawServerArgs) -> Result<(), String> {
    raw::raw_server(args.listen, &args.cert, args.fanout.max(1.0)).await
}

/// `sekai bench raw-clients`: the raw baseline's load generator.
#[derive(Clone, Debug, clap::Args)]
pub struct RawClientsArgs {
    /// The raw server's UDP address.
    #[arg(long)]
    pub connect: std::net::SocketAddr,
    /// The raw server's certificate (DER).
    #[arg(long)]
    pub cert: PathBuf,
    /// The load.
    #[command(flatten)]
    pub load: crate::commands::LoadArgs,
}

/// Runs the raw clients for one measured window and prints their report (last line JSON).
pub async fn raw_clients_command(args: RawClientsArgs) -> Result<(), String> {
    let cert =
        std::fs::read(&args.cert).map_err(|e| format!("reading {}: {e}", args.cert.display()))?;
    let certificate = rustls::pki_types::CertificateDer::from(cert);
    let stats = std::sync::Arc::new(crate::bots::BotStats::default());
    let runner = {
        let (stats, load) = (stats.clone(), args.load.clone());
        std::thread::Builder::new()
            .name("sekai-raw-clients".into())
            .spawn(move || -> Result<(), String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &runtime,
                    raw::raw_clients(args.connect, certificate, load.bots, load.seed, stats),
                )
            })
            .map_err(|e| format!("cannot start the client thread: {e}"))?
    };
    let report = crate::commands::measure_window(&stats, &args.load).await;
    let _ = tokio::task::spawn_blocking(move || runner.join()).await;
    crate::commands::print_load_report(&report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_counters_follow_its_stats_lines_only() {
        let counters = ServerCounters::default();
        counters.update(
            r#"{"sessions":2,"t1_commits":0,"inputs_stored":9,"frames":4,"inputs_applied":7,"passes":3,"coalesced":1}"#,
        );
        assert_eq!(counters.read(), [1, 4, 7]);
        counters.update("2026-12-01T00:00:00Z  WARN sekai_edge: a log line");
        assert_eq!(counters.read(), [1, 4, 7]);
    }

    fn run_with_p99(p99_us: u64, server_cores: f64) -> RunFigures {
        RunFigures {
            bots: BotsReport {
                p99_us,
                ..BotsReport::default()
            },
            server_cores,
            ..RunFigures::default()
        }
    }

    #[test]
    fn the_median_run_is_the_middle_one_by_p99_and_kept_whole() {
        let runs = vec![
            run_with_p99(30_000, 0.9),
            run_with_p99(9_000, 0.7),
            run_with_p99(12_000, 0.8),
        ];
        let median = median_run(runs);
        assert_eq!(median.bots.p99_us, 12_000);
        assert_eq!(
            median.server_cores, 0.8,
            "the figures come from the same run"
        );
    }

    #[test]
    fn an_even_count_takes_the_upper_median() {
        let runs = vec![run_with_p99(11_000, 0.7), run_with_p99(10_000, 0.7)];
        assert_eq!(median_run(runs).bots.p99_us, 11_000);
        assert_eq!(median_run(vec![run_with_p99(5, 0.1)]).bots.p99_us, 5);
    }

    #[test]
    fn a_run_that_sheds_inputs_is_past_capacity() {
        let mut run = run_with_p99(5_000, 0.5);
        run.bots.inputs_per_sec = 4_000.0;
        assert!(run.within_budget());
        run.bots.shed_per_sec = 400.0;
        assert!(!run.within_budget(), "fast only because it refused a tenth");
    }
}
