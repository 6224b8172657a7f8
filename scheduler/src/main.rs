//! kube-scheduler: watches unscheduled pods and binds each to a node chosen by the
//! configured profiles.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use common::flags::LeaderElectionFlags;
use scheduler::client::KubeClient;
use scheduler::config::KubeSchedulerConfiguration;
use scheduler::framework::Registry;
use scheduler::{Scheduler, informers};

#[derive(Parser, Debug)]
#[command(
    name = "kube-scheduler",
    version,
    about = "The Kubernetes scheduler: assigns each pod without a node to the best node that can run it, using upstream's scheduling framework and default plugins."
)]
struct Flags {
    /// Path to a kubeconfig with the apiserver's address and credentials. Without it the
    /// in-cluster configuration or ~/.kube/config is used.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Path to a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file: profiles,
    /// plugins, weights, pluginConfig, percentageOfNodesToScore, parallelism.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    leader_election: LeaderElectionFlags,
    #[command(flatten)]
    serving: common::delegated_auth::ServingFlags,
    /// Address of the /healthz and /metrics server.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Port of the HTTPS /healthz and /metrics server (0 turns it off).
    #[arg(long, default_value_t = 10259)]
    secure_port: u16,
    /// Log verbosity (0-5); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 2)]
    verbosity: u8,
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    if let Err(e) = run(flags).await {
        tracing::error!("{e:#}");
        eprintln!("kube-scheduler: {e:#}");
        std::process::exit(1);
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let mut config = match &flags.config {
        Some(path) => KubeSchedulerConfiguration::load(path)?,
        None => KubeSchedulerConfiguration::default_config(),
    };
    let kubeconfig = flags.kubeconfig.clone().or_else(|| {
        config
            .client_connection
            .as_ref()
            .map(|c| PathBuf::from(&c.kubeconfig))
            .filter(|p| !p.as_os_str().is_empty())
    });
    // Check the profiles (plugin names, args, weights) before connecting anywhere.
    Scheduler::new(
        &config,
        &Registry::in_tree(),
        std::sync::Arc::new(scheduler::client::NoopClient),
        tokio::runtime::Handle::current(),
    )?;
    let client = common::client::client(kubeconfig.as_deref()).await?;
    let leader_elect = config
        .leader_election
        .as_ref()
        .and_then(|l| l.leader_elect)
        .unwrap_or(flags.leader_election.leader_elect);
    if config.profiles.is_empty() {
        config.profiles.push(Default::default());
    }
    let names: Vec<&str> = config.profiles.iter().map(|p| p.scheduler_name()).collect();
    let kube_client = KubeClient::new(client.clone(), names[0]);
    let sched = Scheduler::new(
        &config,
        &Registry::in_tree(),
        kube_client,
        tokio::runtime::Handle::current(),
    )?;
    tracing::info!(profiles = ?names, "kube-scheduler starting");

    let health = sched.clone();
    if flags.secure_port != 0 {
        let addr = SocketAddr::new(flags.bind_address, flags.secure_port);
        let listener_check = common::health::Health {
            check: Box::new(|| Ok(())),
            metrics: Box::new(move || {
                health.update_gauges();
                scheduler::metrics::render()
            }),
        };
        let tls = flags.serving.tls("kube-scheduler")?;
        let auth = std::sync::Arc::new(flags.serving.delegated(kubeconfig.as_deref()).await?);
        tokio::spawn(async move {
            let shutdown = common::shutdown::signal();
            if let Err(e) =
                common::health::serve_secure(addr, tls, auth, listener_check, shutdown).await
            {
                tracing::error!("{e:#}");
                std::process::exit(1);
            }
        });
    }

    let mut leading = None;
    if leader_elect {
        let election = flags.leader_election.election("kube-scheduler");
        let acquired = tokio::select! {
            rx = election.acquire(client.clone()) => rx,
            _ = common::shutdown::signal() => return Ok(()),
        };
        leading = Some(acquired);
    }

    let _informers = informers::start(client, sched.clone()).await;
    tracing::info!("caches synced; scheduling");
    let worker = sched.clone();
    let thread = std::thread::Builder::new()
        .name("scheduling-cycle".into())
        .spawn(move || worker.run())?;

    let lost = common::flags::leadership_lost(leading.as_mut());
    tokio::select! {
        _ = common::shutdown::signal() => {}
        _ = lost => {
            sched.queue.close();
            anyhow::bail!("leaderelection lost");
        }
    }
    sched.queue.close();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    tracing::info!("kube-scheduler stopped");
    Ok(())
}
