//! What an operator sees of a running demo: `/metrics`, the map's HTTP endpoints, and the map
//! itself drawn live in headless Chromium.
//!
//! The test starts `sekai demo` (the real binary) with a few bots and the map on a free port,
//! reads the map's URL from its output, then:
//! - checks `/metrics` has at least ten `sekai_*` series and that counters move, `/state` holds
//!   the world, `/events` starts with a snapshot, and unknown paths are 404;
//! - when `chromium` is installed, opens the page in headless Chromium through the DevTools
//!   protocol, waits until the page says it drew entities (its title, `entities: N players: P
//!   updates: U`), takes a screenshot of the canvas, waits until at least 2 s passed and the
//!   page applied more updates, takes another, and checks that players are drawn and that
//!   pixels changed where players are (they moved). Without chromium it prints "skipped:
//!   chromium not installed".
//!
//! Waits are bounded by deadlines (a failure when exceeded); no duration is asserted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The longest any one wait of this test may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `probe` every 200 ms until it gives a value; panics with `what` after [`DEADLINE`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts `sekai demo` with the map on a free port; returns the child and the map's base URL
/// (`http://127.0.0.1:PORT`).
fn start_demo(out: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sekai"))
        .args([
            "demo",
            "--bots",
            "16",
            "--seconds",
            "600",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--out")
        .arg(out)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sekai demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Reads every line (the pipe must not fill), handing the map's URL over.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("map: ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(DEADLINE)
        .expect("the demo prints its map's URL");
    (child, url)
}

/// `host:port` of an `http://host:port...` URL.
fn host_of(url: &str) -> &str {
    let rest = url.trim_start_matches("http://");
    rest.split('/').next().unwrap_or(rest)
}

/// A GET over HTTP/1.1 with `Connection: close`: (status, body as sent, chunked or not). Reads
/// until the server closes or `enough` says the bytes so far suffice.
fn get(url_base: &str, path: &str, enough: impl Fn(&[u8]) -> bool) -> (u16, String) {
    let host = host_of(url_base);
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if enough(&raw) || complete(&raw) {
                    break;
                }
            }
            Err(error) => panic!("reading {path}: {error}"),
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// True when `raw` holds a whole response with a `Content-Length` (some servers keep the
/// connection open despite `Connection: close`).
fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .is_some_and(|length| body.len() >= length)
}

/// The `sekai_*` samples of a Prometheus text: (series with labels, value).
fn sekai_samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with("sekai_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric_names(samples: &[(String, f64)]) -> std::collections::BTreeSet<String> {
    samples
        .iter()
        .map(|(s, _)| s.split(['{', ' ']).next().unwrap_or(s).to_string())
        .collect()
}

fn value_of(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

/// Checks the HTTP endpoints of a running demo.
fn check_http(url: &str) {
    let metrics = || sekai_samples(&get(url, "/metrics", |_| false).1);
    // Wait until bots play: inputs acknowledged, and the stages after the ack seen too (a frame
    // committed, a fan-out pass delivered it), since a scrape between an ack and its frame sees
    // the first without the others. Then until the counters move.
    let after_ack = ["sekai_frames_total", "sekai_fanout_lag_seconds_bucket"];
    let first = wait_for(
        "acked inputs, a frame and a fan-out pass in /metrics",
        || {
            let samples = metrics();
            let names = metric_names(&samples);
            let played = after_ack.iter().all(|name| names.contains(*name));
            value_of(&samples, "sekai_edge_inputs_acked_total")
                .filter(|v| *v > 0.0 && played)
                .map(|_| samples)
        },
    );
    let names = metric_names(&first);
    assert!(
        names.len() >= 10,
        "only {} sekai_* series: {names:?}",
        names.len()
    );
    for expected in [
        "sekai_edge_inputs_received_total",
        "sekai_frames_total",
        "sekai_kv_commit_seconds_bucket",
        "sekai_fanout_lag_seconds_bucket",
        "sekai_edge_sessions",
        "sekai_fanout_outbox_bytes",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    // Inputs are stored by T1, or directly by the frames of this process's processors.
    assert!(
        names.contains("sekai_edge_t1_commits_total")
            || names.contains("sekai_edge_direct_inputs_total"),
        "no stored inputs counted in {names:?}"
    );
    let acked = |s: &[(String, f64)]| value_of(s, "sekai_edge_inputs_acked_total").unwrap_or(0.0);
    let before = acked(&first);
    wait_for("sekai_edge_inputs_acked_total to move", || {
        (acked(&metrics()) > before).then_some(())
    });

    let (status, body) = get(url, "/state", |_| false);
    assert_eq!(status, 200);
    let state: Value = serde_json::from_str(&body).expect("/state is JSON");
    assert_eq!(state["type"], "snapshot");
    assert_eq!(state["world"]["regions"].as_array().map(Vec::len), Some(4));
    assert!(state["entities"].as_array().is_some_and(|e| !e.is_empty()));

    let (status, body) = get(url, "/events", |raw| {
        String::from_utf8_lossy(raw).contains("data: {")
    });
    assert_eq!(status, 200);
    assert!(body.contains("data: {\"type\":\"snapshot\""), "{body:.200}");

    let (status, _) = get(url, "/no/such/page", |_| false);
    assert_eq!(status, 404);
    let (status, page) = get(url, "/", |_| false);
    assert_eq!(status, 200);
    assert!(page.contains("<canvas"));
}

/// The chromium executable, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A DevTools protocol connection to one page.
struct DevTools {
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

impl DevTools {
    /// Connects to the page of `chromium` (started with `--remote-debugging-port=0` and
    /// `--user-data-dir=profile`) whose URL starts with `url`.
    fn connect(profile: &Path, url: &str) -> Self {
        let port: u16 = wait_for("chromium's DevToolsActivePort", || {
            let text = std::fs::read_to_string(profile.join("DevToolsActivePort")).ok()?;
            text.lines().next()?.trim().parse().ok()
        });
        let base = format!("http://127.0.0.1:{port}");
        let ws_url = wait_for("the map's page target", || {
            let (status, body) = get(&base, "/json/list", |_| false);
            if status != 200 {
                return None;
            }
            let body = dechunk(&body);
            let targets: Value = serde_json::from_str(&body).ok()?;
            targets.as_array()?.iter().find_map(|t| {
                let page = t["type"] == "page" && t["url"].as_str()?.starts_with(url);
                page.then(|| t["webSocketDebuggerUrl"].as_str().map(str::to_string))?
            })
        });
        let host = host_of(ws_url.trim_start_matches("ws://")).to_string();
        let stream = TcpStream::connect(&host).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (socket, _) = tungstenite::client(ws_url.as_str(), stream).expect("DevTools handshake");
        Self { socket, next_id: 0 }
    }

    /// Calls `method` and returns its result (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(request.to_string()))
            .expect("send to DevTools");
        loop {
            let message = self.socket.read().expect("read from DevTools");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(reply) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method} failed: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// A PNG screenshot of `clip` (x, y, width, height in CSS pixels), decoded to RGBA rows.
    fn screenshot(&mut self, clip: [f64; 4], save: &Path) -> (u32, u32, Vec<u8>) {
        let result = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "clip": {
                "x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1
            }}),
        );
        let data = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        std::fs::write(save, &data).expect("screenshot saved");
        let mut decoder = png::Decoder::new(std::io::Cursor::new(data));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("screenshot is a PNG");
        let mut pixels = vec![0; reader.output_buffer_size().expect("PNG size")];
        let info = reader.next_frame(&mut pixels).expect("PNG frame");
        pixels.truncate(info.buffer_size());
        let rgba: Vec<u8> = match info.color_type {
            png::ColorType::Rgba => pixels,
            png::ColorType::Rgb => pixels
                .chunks(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
            other => panic!("unexpected PNG colour type {other:?}"),
        };
        (info.width, info.height, rgba)
    }
}

/// The body of a chunked HTTP/1.1 response, or `body` itself when it is not chunked.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    if out.is_empty() {
        body.to_string()
    } else {
        out
    }
}

/// The numbers after `entities:`, `players:` and `updates:` in the page's title.
fn title_counts(title: &str) -> Option<(u64, u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let start = title.find(name)? + name.len();
        title[start..].split_whitespace().next()?.parse().ok()
    };
    Some((field("entities:")?, field("players:")?, field("updates:")?))
}

/// Opens the map in headless Chromium and checks that it is drawn and moves.
fn check_in_chromium(chromium: &Path, url: &str, shots: &Path) {
    let profile = tempfile::tempdir().expect("a Chromium profile directory");
    let _browser = Killed(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("{url}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts"),
    );
    let mut page = DevTools::connect(profile.path(), url);
    let (entities, players, updates) = wait_for("the page to draw players", || {
        let title = page.eval("document.title");
        title_counts(title.as_str()?).filter(|(_, players, _)| *players > 0)
    });
    eprintln!("drawn: {entities} entities, {players} players, {updates} updates");
    assert!(entities > players, "resources are drawn too");
    let rect = page.eval(
        "(() => { const r = document.getElementById('map').getBoundingClientRect(); \
         return [r.x, r.y, r.width, r.height]; })()",
    );
    let clip: Vec<f64> = rect
        .as_array()
        .expect("the canvas's rectangle")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let clip = [clip[0], clip[1], clip[2], clip[3]];
    assert!(clip[2] >= 100.0 && clip[3] >= 100.0, "canvas {clip:?}");

    let first_path = shots.join("map-1.png");
    let second_path = shots.join("map-2.png");
    let (width, height, first) = page.screenshot(clip, &first_path);
    let (_, _, updates_at_first) = wait_for("the title after the first screenshot", || {
        title_counts(page.eval("document.title").as_str()?)
    });
    let taken = Instant::now();
    wait_for("bots to move on the map", || {
        let (_, _, now) = title_counts(page.eval("document.title").as_str()?)?;
        (taken.elapsed() >= Duration::from_secs(2) && now >= updates_at_first + 50).then_some(())
    });
    let (width2, height2, second) = page.screenshot(clip, &second_path);
    assert_eq!((width, height), (width2, height2));

    let changed = first
        .chunks(4)
        .zip(second.chunks(4))
        .filter(|(a, b)| a != b)
        .count();
    // Players are drawn in one colour and never removed: where that colour is differs only if
    // players moved on the map (harvested resources vanishing changes other pixels too).
    let player = |p: &[u8]| p[..3] == [0x4f, 0xc3, 0xf7];
    let player_pixels = second.chunks(4).filter(|p| player(p)).count();
    let players_moved = first
        .chunks(4)
        .zip(second.chunks(4))
        .filter(|(a, b)| player(a) != player(b))
        .count();
    eprintln!(
        "screenshots {} and {}: {width}x{height}, {changed} pixels changed, {player_pixels} \
         player-coloured pixels, {players_moved} of them moved",
        first_path.display(),
        second_path.display()
    );
    assert!(player_pixels > 0, "no player is drawn");
    assert!(changed > 0, "the map did not change while bots moved");
    assert!(
        players_moved > 0,
        "no player moved on the map while bots moved"
    );
}

#[test]
fn an_operator_sees_metrics_and_a_live_map() {
    let out = tempfile::tempdir().expect("an output directory");
    let (_demo, url) = start_demo(out.path());
    check_http(&url);
    match chromium() {
        Some(chromium) => {
            let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            check_in_chromium(&chromium, &url, &shots);
        }
        None => println!("skipped: chromium not installed"),
    }
}
