//! Container probes as upstream's prober runs them: exec (CRI ExecSync), httpGet,
//! tcpSocket and grpc (grpc.health.v1), with initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and
//! failureThreshold. Startup gates the other two; liveness failing restarts the container;
//! readiness decides the container's (and so the pod's) Ready.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cri::Cri;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

/// One probe's running tally.
#[derive(Clone, Debug)]
struct Tally {
    last_run: Option<Instant>,
    successes: i32,
    failures: i32,
    /// The settled result: true once successThreshold successes, false once
    /// failureThreshold failures.
    result: Option<bool>,
}

/// Probe state for every running container, by container id.
#[derive(Default)]
pub struct Prober {
    tallies: Mutex<HashMap<(String, Kind), Tally>>,
}

/// What the probes say about one container now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub started: bool,
    pub ready: bool,
    /// Liveness (or startup) failed: restart the container.
    pub kill: bool,
}

fn settings(p: &Probe) -> (Duration, Duration, Duration, i32, i32) {
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    (
        secs(p.initial_delay_seconds, 0),
        secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        p.success_threshold.unwrap_or(1).max(1),
        p.failure_threshold.unwrap_or(3).max(1),
    )
}

/// Runs one probe once; true on success. A probe that outlives its timeoutSeconds fails
/// (the runtime bounds an exec itself, this bounds a runtime that does not answer).
pub async fn run_probe(
    cri: &Cri,
    container_id: &str,
    c: &Container,
    probe: &Probe,
    pod_ip: &str,
) -> bool {
    let (_, _, timeout, _, _) = settings(probe);
    let deadline = timeout + Duration::from_secs(1);
    let run = probe_once(cri, container_id, c, probe, pod_ip);
    match tokio::time::timeout(deadline, run).await {
        Ok(ok) => ok,
        Err(_) => {
            tracing::debug!(container = %c.name, "probe timed out after {deadline:?}");
            false
        }
    }
}

async fn probe_once(
    cri: &Cri,
    container_id: &str,
    c: &Container,
    probe: &Probe,
    pod_ip: &str,
) -> bool {
    if cri.simulated() {
        return true;
    }
    let (_, _, timeout, _, _) = settings(probe);
    if let Some(exec) = &probe.exec {
        let cmd: Vec<&str> = exec.command.iter().flatten().map(String::as_str).collect();
        return matches!(
            cri.exec_sync(container_id, &cmd, timeout).await,
            Ok((0, _, _))
        );
    }
    let port_of = |p: &IntOrString| -> Option<u16> {
        match p {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .and_then(|cp| u16::try_from(cp.container_port).ok()),
        }
    };
    if let Some(http) = &probe.http_get {
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_owned());
        let Some(port) = port_of(&http.port) else {
            return false;
        };
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .ok()?;
            let mut req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
            );
            for h in http.http_headers.iter().flatten() {
                req.push_str(&format!("{}: {}\r\n", h.name, h.value));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut head = vec![0u8; 64];
            let n = s.read(&mut head).await.ok()?;
            let line = String::from_utf8_lossy(&head[..n]).into_owned();
            let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some((200..400).contains(&code))
        };
        return tokio::time::timeout(timeout, attempt)
            .await
            .ok()
            .flatten()
            .unwrap_or(false);
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_owned());
        let Some(port) = port_of(&tcp.port) else {
            return false;
        };
        return matches!(
            tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), port))
            )
            .await,
            Ok(Ok(_))
        );
    }
    if let Some(g) = &probe.grpc {
        let Ok(port) = u16::try_from(g.port) else {
            return false;
        };
        let service = g.service.clone().unwrap_or_default();
        return tokio::time::timeout(timeout, grpc_serving(pod_ip, port, service))
            .await
            .unwrap_or(false);
    }
    // A probe with no handler fails.
    false
}

/// grpc.health.v1.Health/Check on `host:port`: true when the service is SERVING.
async fn grpc_serving(host: &str, port: u16, service: String) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))
    else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest { service })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}

impl Prober {
    /// Runs the probes that are due for a running container and answers what they say.
    /// `running_for` is how long the container has been running.
    pub async fn check(
        &self,
        cri: &Cri,
        container_id: &str,
        c: &Container,
        running_for: Duration,
        pod_ip: &str,
    ) -> Verdict {
        let mut v = Verdict {
            started: true,
            ready: true,
            kill: false,
        };
        if let Some(p) = &c.startup_probe {
            match self
                .step(cri, container_id, c, p, Kind::Startup, running_for, pod_ip)
                .await
            {
                Some(true) => {}
                Some(false) => {
                    return Verdict {
                        started: false,
                        ready: false,
                        kill: true,
                    };
                }
                None => {
                    return Verdict {
                        started: false,
                        ready: false,
                        kill: false,
                    };
                }
            }
        }
        if let Some(p) = &c.liveness_probe
            && self
                .step(cri, container_id, c, p, Kind::Liveness, running_for, pod_ip)
                .await
                == Some(false)
        {
            v.kill = true;
        }
        if let Some(p) = &c.readiness_probe {
            v.ready = self
                .step(
                    cri,
                    container_id,
                    c,
                    p,
                    Kind::Readiness,
                    running_for,
                    pod_ip,
                )
                .await
                == Some(true);
        }
        v
    }

    /// Advances one probe if it is due; answers its settled result.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        cri: &Cri,
        id: &str,
        c: &Container,
        p: &Probe,
        kind: Kind,
        running_for: Duration,
        pod_ip: &str,
    ) -> Option<bool> {
        let (delay, period, _, success_threshold, failure_threshold) = settings(p);
        let key = (id.to_owned(), kind);
        let due = {
            let tallies = self.tallies.lock();
            let t = tallies.get(&key);
            if kind == Kind::Startup && t.and_then(|t| t.result) == Some(true) {
                // A startup probe stops once it has succeeded.
                return Some(true);
            }
            running_for >= delay
                && t.and_then(|t| t.last_run)
                    .is_none_or(|at| at.elapsed() >= period)
        };
        if due {
            let ok = run_probe(cri, id, c, p, pod_ip).await;
            let mut tallies = self.tallies.lock();
            let t = tallies.entry(key.clone()).or_insert(Tally {
                last_run: None,
                successes: 0,
                failures: 0,
                result: None,
            });
            t.last_run = Some(Instant::now());
            if ok {
                t.successes += 1;
                t.failures = 0;
                if t.successes >= success_threshold {
                    t.result = Some(true);
                }
            } else {
                t.failures += 1;
                t.successes = 0;
                if t.failures >= failure_threshold {
                    t.result = Some(false);
                }
            }
        }
        let tallies = self.tallies.lock();
        let result = tallies.get(&key).and_then(|t| t.result);
        // Liveness counts as passing until it has failed failureThreshold times.
        match (kind, result) {
            (Kind::Liveness, None) => Some(true),
            _ => result,
        }
    }

    /// Forgets a container's probes (it was replaced or removed).
    pub fn forget(&self, container_id: &str) {
        self.tallies.lock().retain(|(id, _), _| id != container_id);
    }
}
