//! What an operator sees of a running server: Prometheus metrics and a live map of the world.
//!
//! - [`metrics`]: the edge's `sekai_*` series and their help texts (the layer's are in
//!   `sekai_layer::telemetry`); values are recorded where the counters live;
//! - [`exporter`]: the process-wide Prometheus recorder;
//! - [`map`]: the map's hub, fed by the edge's fan-out; [`json`]: its messages;
//! - [`http`]: the HTTP server (the page, its event stream, `/state`, `/metrics`).
//!
//! Both are off unless asked for ([`ObserveConfig`]). Invariants: the recorder is installed
//! only when metrics or the map are on; [`Observer::shutdown`] stops the hub and the servers and
//! waits for them; a failure to bind an address is an error of [`Observer::start`], never a
//! silent absence.

pub mod exporter;
pub mod http;
pub mod json;
pub mod map;
pub mod metrics;

use std::net::SocketAddr;

use sekai_layer::kv::Database;
use sekai_schema::{RegionId, WorldKeys};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fanout::Fanout;
use map::MapHub;

/// What to serve.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveConfig {
    /// Address of the live map (which also answers `/metrics`).
    pub http: Option<SocketAddr>,
    /// Address of a Prometheus endpoint (`/metrics`).
    pub metrics: Option<SocketAddr>,
}

/// The running map and metrics servers.
pub struct Observer {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    map_url: Option<String>,
    metrics_url: Option<String>,
    map: Option<MapHub>,
}

impl Observer {
    /// Starts what `config` asks for, for the world of `regions` served by `fanout`.
    pub async fn start<D: Database>(
        config: ObserveConfig,
        db: &D,
        keys: &WorldKeys,
        fanout: &Fanout,
        regions: Vec<RegionId>,
    ) -> Result<Self, String> {
        let (stop, stopped) = watch::channel(false);
        let mut observer = Self {
            stop,
            tasks: Vec::new(),
            map_url: None,
            metrics_url: None,
            map: None,
        };
        if config.http.is_none() && config.metrics.is_none() {
            return Ok(observer);
        }
        let handle = exporter::install()?;
        if let Some(addr) = config.metrics {
            let (bound, task) = http::serve(addr, None, Some(handle.clone()), stopped.clone())
                .await
                .inspect_err(|_| observer.stop_now())?;
            observer.tasks.push(task);
            observer.metrics_url = Some(format!("http://{bound}/metrics"));
        }
        if let Some(addr) = config.http {
            let hub = MapHub::new(regions);
            let (bound, task) = http::serve(addr, Some(hub.clone()), Some(handle), stopped.clone())
                .await
                .inspect_err(|_| observer.stop_now())?;
            observer.tasks.push(task);
            observer.tasks.push(tokio::spawn(hub.clone().run(
                db.clone(),
                keys.clone(),
                fanout.clone(),
                stopped,
            )));
            observer.map_url = Some(format!("http://{bound}/"));
            observer
                .metrics_url
                .get_or_insert(format!("http://{bound}/metrics"));
            observer.map = Some(hub);
        }
        Ok(observer)
    }

    /// The map's URL, when it is served.
    pub fn map_url(&self) -> Option<&str> {
        self.map_url.as_deref()
    }

    /// The URL of the Prometheus text, when metrics are on.
    pub fn metrics_url(&self) -> Option<&str> {
        self.metrics_url.as_deref()
    }

    /// The map's hub, when the map is served.
    pub fn map(&self) -> Option<&MapHub> {
        self.map.as_ref()
    }

    fn stop_now(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the hub and the servers (ending every event stream) and waits for them.
    pub async fn shutdown(self) {
        self.stop_now();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
