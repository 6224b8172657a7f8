//! The DNS server process: [`Config`] (what its flags say) and [`run`], which main.rs and
//! the tests start it with.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::component::Component;
use parking_lot::RwLock;

use crate::forward::Forwarder;
use crate::server::{Handler, Running};
use crate::zone::Zone;

/// What the server's flags ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The apiserver's address and credentials; the in-cluster configuration or
    /// ~/.kube/config when absent.
    pub kubeconfig: Option<PathBuf>,
    /// The cluster's domain (cluster.local).
    pub cluster_domain: String,
    /// Where DNS is served, UDP and TCP.
    pub dns_address: SocketAddr,
    /// The TTL of the cluster's records.
    pub ttl: u32,
    /// The upstream resolvers for other names (empty: other names are refused).
    pub upstream: Vec<SocketAddr>,
    /// /health: alive (None turns it off).
    pub health_address: Option<SocketAddr>,
    /// /ready: the zone has listed the cluster (None turns it off).
    pub ready_address: Option<SocketAddr>,
    /// /metrics (None turns it off).
    pub metrics_address: Option<SocketAddr>,
}

/// Serves the cluster's names until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let mut component = Component::new("kube-dns", shutdown);
    let zone = Arc::new(RwLock::new(Zone::new(&config.cluster_domain, config.ttl)?));
    let ready = Arc::new(AtomicBool::new(false));
    let upstream = match config.upstream.as_slice() {
        [] => None,
        servers => Some(Forwarder::new(servers)?),
    };
    let server = Running::start(
        Handler::new(zone.clone(), upstream, ready.clone()),
        config.dns_address,
    )
    .await?;
    tracing::info!(
        addr = %server.addr,
        domain = %config.cluster_domain,
        upstream = ?config.upstream,
        "serving DNS"
    );
    let alive = || common::health::Health {
        check: Box::new(|| Ok(())),
        metrics: Box::new(crate::metrics::render),
    };
    if let Some(addr) = config.health_address {
        component.serve(addr, alive());
    }
    if let Some(addr) = config.metrics_address {
        component.serve(addr, alive());
    }
    if let Some(addr) = config.ready_address {
        let r = ready.clone();
        let check = move || match r.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err("the cluster's Services are not listed yet".to_owned()),
        };
        component.serve(
            addr,
            common::health::Health {
                check: Box::new(check),
                metrics: Box::new(crate::metrics::render),
            },
        );
    }
    let (feeding, failed) = feed(config.kubeconfig.clone(), zone, ready)?;
    let work = async {
        Err::<(), _>(match failed.await {
            Ok(e) => e,
            // Its sender is dropped when the feed ends: before it is told to, only by a panic.
            Err(_) => crate::Error::Io("the zone's feed stopped".into()),
        })
    };
    let result = component.run_until(work).await;
    drop(feeding);
    server.shutdown().await;
    result?.transpose()?;
    Ok(())
}

/// Watches the cluster into `zone` on a thread of its own, until the returned sender is
/// dropped; the receiver hears of a failure to reach the apiserver at the start.
///
/// The zone is the only long-lived memory of the process, and its writers are this
/// thread's alone: its entries and the lists they are decoded from share one malloc
/// arena instead of being scattered over every worker's (measured: about 0.8 MiB less
/// resident for 10,000 Services), and decoding a list of thousands never holds up a worker
/// answering questions.
fn feed(
    kubeconfig: Option<PathBuf>,
    zone: Arc<RwLock<Zone>>,
    ready: Arc<AtomicBool>,
) -> crate::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<crate::Error>,
)> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (fail, failed) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Io(format!("starting the zone's feed: {e}")))?;
    let work = async move {
        // The client's connections are tasks of the runtime it is made on: this one.
        let client = match common::client::client(kubeconfig.as_deref()).await {
            Ok(client) => client,
            Err(e) => return drop(fail.send(e.into())),
        };
        let _watching = crate::watch::watch(client, zone, ready).await;
        let _ = stopped.await;
    };
    std::thread::Builder::new()
        .name("zone-feed".into())
        .spawn(move || runtime.block_on(work))
        .map_err(|e| crate::Error::Io(format!("starting the zone's feed: {e}")))?;
    Ok((stop, failed))
}
