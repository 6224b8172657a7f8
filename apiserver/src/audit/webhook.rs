//! The webhook backend (`--audit-webhook-config-file`): events gathered into EventList batches
//! (up to `max_size` events, or whatever came within `max_wait` of the first) and POSTed to
//! the server the kubeconfig names, retried with exponential backoff; a batch that still fails
//! is dropped and counted. Batches are throttled and events truncated as the flags say
//! ([`super::truncate`]).

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::event::API_VERSION;
use super::queue::{self, Queue, Receiver};
use super::truncate::{self, Throttle, Truncate};

/// The `--audit-webhook-*` flags.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// A kubeconfig: its current context's cluster is the receiver, its user the credentials.
    pub config_file: PathBuf,
    /// The wait before the first retry of a failed batch; each next one waits 1.5 times more.
    pub initial_backoff: Duration,
    pub buffer_size: usize,
    pub max_batch_size: usize,
    pub max_batch_wait: Duration,
    /// `--audit-webhook-batch-throttle-enable`, `-qps` and `-burst`.
    pub throttle_enable: bool,
    pub throttle_qps: f64,
    pub throttle_burst: usize,
    /// With `--audit-webhook-truncate-enabled`.
    pub truncate: Option<Truncate>,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            config_file: PathBuf::new(),
            initial_backoff: Duration::from_secs(10),
            buffer_size: 10_000,
            max_batch_size: 400,
            max_batch_wait: Duration::from_secs(30),
            throttle_enable: true,
            throttle_qps: 10.0,
            throttle_burst: 15,
            truncate: None,
        }
    }
}

/// Attempts per batch, as upstream's webhook backoff (5 steps).
const ATTEMPTS: u32 = 5;

/// Reads the kubeconfig (a bad one stops startup) and starts the sender task.
pub async fn start(config: &WebhookConfig) -> crate::Result<Queue> {
    let shown = config.config_file.display().to_string();
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        crate::Error::Invalid(format!("{what} {shown}: {e}"))
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&config.config_file)
        .map_err(|e| invalid("reading the audit webhook kubeconfig", &e))?;
    let mut client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| invalid("the audit webhook kubeconfig", &e))?;
    // The server's path is the receiver's: requests name it whole, on the bare authority.
    let server = client_config.cluster_url.clone();
    let target = server
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut authority = axum::http::uri::Parts::default();
    authority.scheme = server.scheme().cloned();
    authority.authority = server.authority().cloned();
    authority.path_and_query = Some(axum::http::uri::PathAndQuery::from_static("/"));
    client_config.cluster_url = axum::http::Uri::from_parts(authority)
        .map_err(|e| crate::Error::Invalid(format!("the audit webhook server {server}: {e}")))?;
    let client = kube::Client::try_from(client_config)
        .map_err(|e| invalid("the audit webhook kubeconfig", &e))?;
    let (queue, events) = queue::bounded("webhook", config.buffer_size);
    tokio::spawn(send_batches(
        events,
        Sender {
            client,
            target,
            initial_backoff: config.initial_backoff,
        },
        config.clone(),
    ));
    Ok(queue)
}

struct Sender {
    client: kube::Client,
    target: String,
    initial_backoff: Duration,
}

async fn send_batches(mut events: Receiver, sender: Sender, config: WebhookConfig) {
    let max_size = config.max_batch_size.max(1);
    let mut throttle = Throttle::new(
        config.throttle_enable,
        config.throttle_qps,
        config.throttle_burst,
    );
    let mut open = true;
    while open {
        let Some(first) = events.recv().await else {
            return;
        };
        let deadline = Instant::now() + config.max_batch_wait;
        let mut batch = vec![first];
        while batch.len() < max_size {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        let count = batch.len();
        let encoded: Vec<Vec<u8>> = batch
            .iter()
            .filter_map(|e| truncate::encode(e, config.truncate.as_ref()))
            .collect();
        events.failed(count - encoded.len());
        let lists = match &config.truncate {
            Some(t) => truncate::split(encoded, t.max_batch_bytes),
            None => vec![encoded],
        };
        for list in lists {
            if let Some(throttle) = &mut throttle {
                throttle.wait().await;
            }
            if let Err(e) = sender.send(&list).await {
                tracing::error!(error = %e, events = list.len(), "the audit webhook refused a batch; dropped");
                events.failed(list.len());
            }
        }
    }
}

impl Sender {
    /// Posts one batch, retrying with backoff; the last failure, to be logged.
    async fn send(&self, batch: &[Vec<u8>]) -> Result<(), String> {
        let body = event_list(batch);
        let mut backoff = self.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.post(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "the audit webhook failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.mul_f64(1.5);
                    attempt += 1;
                }
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let request = axum::http::Request::post(self.target.as_str())
            .header("content-type", "application/json")
            .body(kube::client::Body::from(body))
            .map_err(|e| e.to_string())?;
        let response = self.client.send(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the receiver answered {status}"));
        }
        Ok(())
    }
}

/// `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[...]}` of
/// events already encoded.
pub fn event_list(batch: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        format!(r#"{{"kind":"EventList","apiVersion":"{API_VERSION}","metadata":{{}},"items":["#)
            .into_bytes();
    for (i, event) in batch.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event);
    }
    out.extend_from_slice(b"]}");
    out
}
