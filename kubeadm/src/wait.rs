//! Waiting with progress: init and join wait for the apiserver, the node and the kubelet's
//! serving certificate while telling the user what they wait for, and fail with the end of
//! the relevant log when the supervisor is gone or the time is up.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Layout;

/// Prints a line every 10 s while waiting; fails after `limit`.
pub struct Progress {
    started: Instant,
    last: Instant,
    limit: Duration,
}

impl Progress {
    pub fn new(limit: Duration) -> Progress {
        Progress {
            started: Instant::now(),
            last: Instant::now(),
            limit,
        }
    }

    pub fn tick(&mut self, what: &str) -> anyhow::Result<()> {
        if self.started.elapsed() > self.limit {
            anyhow::bail!("timed out after {:?} waiting for {what}", self.limit);
        }
        if self.last.elapsed() >= Duration::from_secs(10) {
            println!(
                "[wait] still waiting for {what} ({}s)",
                self.started.elapsed().as_secs()
            );
            self.last = Instant::now();
        }
        Ok(())
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.split_whitespace()
            .nth(2)
            .is_some_and(|state| state != "Z")
    })
}

/// Fails with the end of the supervisor's log when it is gone.
pub fn check_supervisor(layout: &Layout, pid: u32) -> anyhow::Result<()> {
    if alive(pid) {
        return Ok(());
    }
    let log = layout.logs().join("kubeadm.log");
    anyhow::bail!(
        "the supervisor exited; the end of {}:\n{}",
        log.display(),
        tail(&log, 20)
    )
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until the kubelet at `ip`:10250 serves a certificate the cluster CA (`layout`'s
/// pki/ca.crt) issued for that address, as the apiserver checks it
/// (--kubelet-certificate-authority): until then `kubectl logs` and `exec` fail.
pub async fn kubelet_serving(
    layout: &Layout,
    ip: std::net::IpAddr,
    pid: u32,
) -> anyhow::Result<()> {
    let tls = common::tls::client_config(Some(&layout.pki().join("ca.crt")), None)?;
    let mut progress = Progress::new(Duration::from_secs(120));
    loop {
        check_supervisor(layout, pid)?;
        if common::tls::handshake_succeeds(tls.clone(), (ip, 10250).into()).await {
            return Ok(());
        }
        progress
            .tick("the kubelet's serving certificate")
            .map_err(|e| e.context(tail(&layout.logs().join("kubelet.log"), 20)))?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
