//! The server under test: a `sekai serve` child process that can be SIGKILLed, stopped cleanly
//! (SIGINT) and restarted on the same address and directory.
//!
//! Invariants: a [`ServeChild`] is killed when dropped; its stdout is drained by a task so the
//! child never blocks on a full pipe; its stderr goes to `<dir>/serve.log` (appended across
//! restarts) for post-mortems.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::world_setup::WorldShape;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A loopback UDP address free right now (the server binds it on every restart).
pub fn free_udp_address() -> Result<SocketAddr, String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("UDP bind: {e}"))?;
    socket.local_addr().map_err(|e| format!("UDP address: {e}"))
}

/// A running `sekai serve`.
pub struct ServeChild {
    child: Child,
}

/// The certificate a `serve` on `dir` keeps (and its clients pin).
pub fn kept_certificate(dir: &Path) -> Result<CertificateDer<'static>, String> {
    std::fs::read(dir.join(sekai_edge::tls::CERT_FILE))
        .map(CertificateDer::from)
        .map_err(|e| format!("reading the edge certificate: {e}"))
}

impl ServeChild {
    /// Starts `exe serve` on `dir` and `listen` with `extra` arguments; returns once it prints
    /// its address.
    pub async fn start(
        exe: &Path,
        dir: &Path,
        listen: SocketAddr,
        secret: &str,
        shape: &WorldShape,
        extra: &[String],
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .map_err(|e| format!("serve.log: {e}"))?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .args(["--secret", secret, "--workers", "1"])
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--regions-per-side")
            .arg(shape.regions_per_side.to_string())
            .arg("--seed")
            .arg(shape.seed.to_string())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting sekai serve: {e}"))?;
        let stdout = child.stdout.take().ok_or("sekai serve: no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("edge on ") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !ready {
            let _ = child.start_kill();
            return Err(format!(
                "sekai serve did not start within {START_TIMEOUT:?} (see {})",
                dir.join("serve.log").display()
            ));
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child })
    }

    /// The child's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The child's exit status once it has exited (reaping it); `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILLs the server and waits until the OS has reaped it.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Asks the server to stop (SIGINT, its Ctrl-C) and waits up to 30 s, then kills it.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("sekai serve did not stop within 30 s of SIGINT; killing it");
            self.kill().await;
        }
    }
}
