//! The kube-scheduler process: [`Config`] (what its flags say) and [`run`], which main.rs,
//! the tests and the benches start it with.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use common::component::Component;
use common::delegated_auth::ServingFlags;
use common::flags::LeaderElectionFlags;

use crate::client::KubeClient;
use crate::config::KubeSchedulerConfiguration;
use crate::framework::Registry;
use crate::{Scheduler, informers};

/// What kube-scheduler's flags ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The apiserver's address and credentials; the configuration's clientConnection, then
    /// the in-cluster configuration or ~/.kube/config when absent.
    pub kubeconfig: Option<PathBuf>,
    /// Profiles, plugins and the rest (--config, or the defaults).
    pub configuration: KubeSchedulerConfiguration,
    /// Whether to elect is the configuration's leaderElection.leaderElect when it says.
    pub leader_election: LeaderElectionFlags,
    pub serving: ServingFlags,
    /// The HTTPS /healthz and /metrics server; port 0 turns it off.
    pub bind_address: IpAddr,
    pub secure_port: u16,
}

/// Schedules until `shutdown` resolves; fails on a bad configuration, when the apiserver
/// cannot be reached, or when leadership is lost.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let Config {
        kubeconfig,
        configuration: mut sched_config,
        leader_election,
        serving,
        bind_address,
        secure_port,
    } = config;
    let kubeconfig = kubeconfig.or_else(|| {
        sched_config
            .client_connection
            .as_ref()
            .map(|c| PathBuf::from(&c.kubeconfig))
            .filter(|p| !p.as_os_str().is_empty())
    });
    // Check the profiles (plugin names, args, weights) before connecting anywhere.
    Scheduler::new(
        &sched_config,
        &Registry::in_tree(),
        Arc::new(crate::client::NoopClient),
        tokio::runtime::Handle::current(),
    )?;
    let mut component = Component::new("kube-scheduler", shutdown);
    let client = common::client::client(kubeconfig.as_deref()).await?;
    let leader_elect = sched_config
        .leader_election
        .as_ref()
        .and_then(|l| l.leader_elect)
        .unwrap_or(leader_election.leader_elect);
    if sched_config.profiles.is_empty() {
        sched_config.profiles.push(Default::default());
    }
    let names: Vec<&str> = sched_config
        .profiles
        .iter()
        .map(|p| p.scheduler_name())
        .collect();
    let kube_client = KubeClient::new(client.clone(), names[0]);
    let sched = Scheduler::new(
        &sched_config,
        &Registry::in_tree(),
        kube_client,
        tokio::runtime::Handle::current(),
    )?;
    tracing::info!(profiles = ?names, "kube-scheduler starting");

    if secure_port != 0 {
        let health = sched.clone();
        let health = common::health::Health {
            check: Box::new(|| Ok(())),
            metrics: Box::new(move || {
                health.update_gauges();
                crate::metrics::render()
            }),
        };
        let addr = SocketAddr::new(bind_address, secure_port);
        component
            .serve_secure(addr, &serving, kubeconfig.as_deref(), health)
            .await?;
    }
    if leader_elect
        && !component
            .elect(leader_election.election("kube-scheduler"), client.clone())
            .await?
    {
        return Ok(());
    }

    let Some(_informers) = component
        .run_until(informers::start(client, sched.clone()))
        .await?
    else {
        return Ok(());
    };
    tracing::info!("caches synced; scheduling");
    let worker = sched.clone();
    let thread = std::thread::Builder::new()
        .name("scheduling-cycle".into())
        .spawn(move || worker.run())
        .map_err(crate::Error::Thread)?;

    let stopped = component.run_until(std::future::pending::<()>()).await;
    sched.queue.close();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    stopped?;
    tracing::info!("kube-scheduler stopped");
    Ok(())
}
