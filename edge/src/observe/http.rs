//! The operator's HTTP server (axum): the live map page and its event stream, and `/metrics`.
//!
//! Routes (GET only; anything else is 404 or 405):
//! - `/`, `/map.js`: the page, embedded in the binary (no build step);
//! - `/events`: Server-Sent Events, one JSON message per event (see `json`): a `snapshot` first,
//!   then `delta` and `stats` messages live;
//! - `/state`: the current `snapshot` message;
//! - `/metrics`: the Prometheus text exposition, when the recorder is installed.
//!
//! Invariants: no handler panics or reads a request body; at most [`MAX_MAP_CLIENTS`] event
//! streams are open at once (more get 503), so browsers cannot grow the server's memory without
//! bound; every event stream ends when the server is told to stop, so a graceful shutdown
//! completes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::stream::Stream;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};

use super::map::MapHub;
use super::metrics::MAP_CLIENTS;
use crate::server::GaugeGuard;

/// The most browsers following the map at once.
pub const MAX_MAP_CLIENTS: usize = 32;

/// The page.
pub const PAGE_HTML: &str = include_str!("page.html");
/// The page's script.
pub const PAGE_JS: &str = include_str!("page.js");

/// What the handlers share.
#[derive(Clone)]
struct App {
    map: Option<MapHub>,
    metrics: Option<PrometheusHandle>,
    clients: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

/// The router: the map's routes when `map` is given, `/metrics` when `metrics` is.
fn router(
    map: Option<MapHub>,
    metrics: Option<PrometheusHandle>,
    stop: watch::Receiver<bool>,
) -> Router {
    let app = App {
        map,
        metrics,
        clients: Arc::new(Semaphore::new(MAX_MAP_CLIENTS)),
        stop,
    };
    Router::new()
        .route("/", get(page))
        .route("/map.js", get(script))
        .route("/events", get(events))
        .route("/state", get(state))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(app)
}

/// Binds `addr` and serves until `stop` turns true; returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    map: Option<MapHub>,
    metrics: Option<PrometheusHandle>,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on http://{addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("http://{addr}: {e}"))?;
    let app = router(map, metrics, stop.clone());
    let mut until = stop;
    let task = tokio::spawn(async move {
        let stopped = async move {
            while !*until.borrow() {
                if until.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(%error, "the HTTP server stopped");
        }
    });
    Ok((bound, task))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn no_map() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no map here: start the server with --http to serve it\n",
    )
        .into_response()
}

async fn page(State(app): State<App>) -> Response {
    if app.map.is_none() {
        return no_map();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE_HTML,
    )
        .into_response()
}

async fn script(State(app): State<App>) -> Response {
    if app.map.is_none() {
        return no_map();
    }
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        PAGE_JS,
    )
        .into_response()
}

async fn state(State(app): State<App>) -> Response {
    match &app.map {
        Some(map) => ([(header::CONTENT_TYPE, "application/json")], map.snapshot()).into_response(),
        None => no_map(),
    }
}

async fn metrics_text(State(app): State<App>) -> Response {
    match &app.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are off: start the server with --metrics ADDR\n",
        )
            .into_response(),
    }
}

async fn events(State(app): State<App>) -> Response {
    let Some(map) = app.map.clone() else {
        return no_map();
    };
    let Ok(permit) = app.clients.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many map clients; try again later\n",
        )
            .into_response();
    };
    Sse::new(follow(map, permit, app.stop.clone()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One browser's stream: the hub's snapshot, then its messages; a fresh snapshot after falling
/// behind; the end when the hub or the server stops.
struct Follower {
    map: MapHub,
    first: Option<String>,
    rx: broadcast::Receiver<Arc<str>>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    _gauge: GaugeGuard,
}

fn follow(
    map: MapHub,
    permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (first, rx) = map.follow();
    let follower = Follower {
        map,
        first: Some(first),
        rx,
        stop,
        _permit: permit,
        _gauge: GaugeGuard::new(MAP_CLIENTS),
    };
    futures::stream::unfold(follower, |mut f| async move {
        let message: String = match f.first.take() {
            Some(first) => first,
            None => loop {
                if *f.stop.borrow() {
                    return None;
                }
                let received = tokio::select! {
                    received = f.rx.recv() => received,
                    changed = f.stop.changed() => match changed {
                        Ok(()) => continue,
                        Err(_) => return None,
                    },
                };
                match received {
                    Ok(message) => break message.to_string(),
                    Err(RecvError::Lagged(_)) => {
                        let (snapshot, rx) = f.map.follow();
                        f.rx = rx;
                        break snapshot;
                    }
                    Err(RecvError::Closed) => return None,
                }
            },
        };
        Some((Ok(Event::default().data(message)), f))
    })
}
