//! The raw baseline of `sekai bench edge`: a plain quinn echo server and clients with no
//! database and no RPC, carrying the same traffic as Sekai, one QUIC datagram per message
//! (the naive transport a game server without batching would use).
//!
//! A client sends 10 inputs per second (a bot's 10 Hz clock: nine moves and one action). For
//! each input the server sends an acknowledgement back and a "delta" to about `fanout`
//! connections: the sender itself and the connections after it (a fractional fanout sends one
//! more with the fraction's probability, so the mean matches Sekai's measured updates per input). The sender's latency runs from its send to
//! the arrival of its own delta, as a bot's does.
//!
//! Invariants: nothing here panics on what the network delivers (short or unknown datagrams are
//! ignored); messages are fixed-size: kind (1 byte), client (4), seq (4), sent (8 ns), padding.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rustls::pki_types::CertificateDer;

use crate::bots::BotStats;
use sekai_edge::tls::{
    server_config, server_endpoint, TlsSource, DEFAULT_IDLE_TIMEOUT, SELF_SIGNED_NAME,
};

/// Bytes of every raw message (about a small input or entity update).
pub const MESSAGE_BYTES: usize = 48;
const INPUT: u8 = 0;
const ACK: u8 = 1;
const DELTA: u8 = 2;

fn message(kind: u8, client: u32, seq: u32, sent_ns: u64) -> Bytes {
    let mut out = vec![0u8; MESSAGE_BYTES];
    out[0] = kind;
    out[1..5].copy_from_slice(&client.to_le_bytes());
    out[5..9].copy_from_slice(&seq.to_le_bytes());
    out[9..17].copy_from_slice(&sent_ns.to_le_bytes());
    Bytes::from(out)
}

/// (kind, client, sent_ns) of a message, `None` when it is too short.
fn parse(bytes: &[u8]) -> Option<(u8, u32, u64)> {
    let kind = *bytes.first()?;
    let client = u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
    let sent = u64::from_le_bytes(bytes.get(9..17)?.try_into().ok()?);
    Some((kind, client, sent))
}

/// Runs the raw server on `listen` until the process ends; writes its certificate to `cert`
/// and prints `raw edge on quic://ADDR`.
pub async fn raw_server(listen: SocketAddr, cert: &Path, fanout: f64) -> Result<(), String> {
    let tls = TlsSource::default();
    let tls = server_config(&tls, listen, DEFAULT_IDLE_TIMEOUT).map_err(|e| e.to_string())?;
    std::fs::write(cert, tls.certificate.as_ref())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let endpoint = server_endpoint(tls, listen).map_err(|e| e.to_string())?;
    println!(
        "raw edge on quic://{}",
        endpoint.local_addr().map_err(|e| e.to_string())?
    );
    let peers: Arc<Mutex<Vec<quinn::Connection>>> = Arc::default();
    let mut seeds = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    while let Some(incoming) = endpoint.accept().await {
        let peers = peers.clone();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seeds.gen());
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                return;
            };
            let index = {
                let mut list = peers.lock().unwrap_or_else(|e| e.into_inner());
                list.push(connection.clone());
                list.len() - 1
            };
            while let Ok(datagram) = connection.read_datagram().await {
                if parse(&datagram).is_none_or(|(kind, _, _)| kind != INPUT) {
                    continue;
                }
                let mut ack = datagram.to_vec();
                ack[0] = ACK;
                let _ = connection.send_datagram(Bytes::from(ack));
                let mut delta = datagram.to_vec();
                delta[0] = DELTA;
                let delta = Bytes::from(delta);
                let count = fanout.floor() as usize + usize::from(rng.gen_bool(fanout.fract()));
                let targets: Vec<quinn::Connection> = {
                    let list = peers.lock().unwrap_or_else(|e| e.into_inner());
                    (0..count.min(list.len()))
                        .filter_map(|j| list.get((index + j) % list.len()).cloned())
                        .collect()
                };
                for target in targets {
                    let _ = target.send_datagram(delta.clone());
                }
            }
        });
    }
    Ok(())
}

/// Runs `bots` raw clients against `server` for as long as `stats` is not stopped; the
/// latency histogram and counters land in `stats` like a bot run's.
pub async fn raw_clients(
    server: SocketAddr,
    certificate: CertificateDer<'static>,
    bots: usize,
    seed: u64,
    stats: Arc<BotStats>,
) -> Result<(), String> {
    let bind: SocketAddr = "127.0.0.1:0"
        .parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())?;
    let endpoint = crate::bots::shared_endpoint(bind, &certificate).map_err(|e| e.to_string())?;
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..bots {
        let (endpoint, stats) = (endpoint.clone(), stats.clone());
        tasks.push(tokio::task::spawn_local(async move {
            if let Err(error) =
                raw_client(&endpoint, server, client as u32, seed, epoch, &stats).await
            {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.stopped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(client, %error, "raw client stopped");
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn raw_client(
    endpoint: &quinn::Endpoint,
    server: SocketAddr,
    me: u32,
    seed: u64,
    epoch: Instant,
    stats: &Arc<BotStats>,
) -> Result<(), String> {
    let connection = endpoint
        .connect(server, SELF_SIGNED_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let receiver = {
        let (connection, stats) = (connection.clone(), stats.clone());
        tokio::task::spawn_local(async move {
            while let Ok(datagram) = connection.read_datagram().await {
                match parse(&datagram) {
                    Some((ACK, _, _)) => {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((DELTA, client, sent)) => {
                        stats.updates.fetch_add(1, Ordering::Relaxed);
                        if client == me {
                            let now = epoch.elapsed().as_nanos() as u64;
                            let micros = now.saturating_sub(sent) / 1_000;
                            stats.applied.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut h) = stats.total.lock() {
                                let _ = h.record(micros.max(1));
                            }
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ u64::from(me));
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seq, mut datagrams_seen) = (0u32, 0u64);
    while !stats.is_stopped() {
        tick.tick().await;
        seq = seq.wrapping_add(1);
        let sent = epoch.elapsed().as_nanos() as u64;
        stats.sent.fetch_add(1, Ordering::Relaxed);
        connection
            .send_datagram(message(INPUT, me, seq, sent))
            .map_err(|e| e.to_string())?;
        let datagrams = connection.stats().udp_rx.datagrams;
        stats
            .datagrams
            .fetch_add(datagrams.saturating_sub(datagrams_seen), Ordering::Relaxed);
        datagrams_seen = datagrams;
    }
    connection.close(0u32.into(), b"done");
    receiver.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_short_ones_are_ignored() {
        let m = message(DELTA, 7, 9, 123_456);
        assert_eq!(m.len(), MESSAGE_BYTES);
        assert_eq!(parse(&m), Some((DELTA, 7, 123_456)));
        assert_eq!(parse(&m[..10]), None);
        assert_eq!(parse(&[]), None);
    }
}
