//! The kube-controller-manager process: [`Config`] (what its flags say) and [`run`], which
//! main.rs and the tests start it with.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use common::component::Component;
use common::delegated_auth::ServingFlags;
use common::flags::LeaderElectionFlags;

use crate::controllers;
use crate::error::Error;
use crate::runtime::{Options, metrics};

/// What kube-controller-manager's flags ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The apiserver's address and credentials; the in-cluster configuration or
    /// ~/.kube/config when absent.
    pub kubeconfig: Option<PathBuf>,
    /// '*' runs those on by default, 'foo' turns foo on, '-foo' turns it off.
    pub controllers: Vec<String>,
    pub leader_election: LeaderElectionFlags,
    pub serving: ServingFlags,
    /// The HTTPS /healthz and /metrics server; port 0 turns it off.
    pub bind_address: IpAddr,
    pub secure_port: u16,
    /// The controllers' settings (concurrency, CIDRs, signing, ...).
    pub options: Options,
}

/// Runs the controllers until `shutdown` resolves; fails on an unknown controller, when the
/// apiserver cannot be reached, or when leadership is lost.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    // Check the flags before connecting anywhere.
    let enabled = controllers::enabled(&config.controllers)?;
    let mut component = Component::new("kube-controller-manager", shutdown);
    let client = common::client::client(config.kubeconfig.as_deref())
        .await
        .map_err(Error::component)?;
    tracing::info!(controllers = ?enabled.iter().map(|d| d.name).collect::<Vec<_>>(), "kube-controller-manager starting");

    if config.secure_port != 0 {
        let addr = SocketAddr::new(config.bind_address, config.secure_port);
        let health = common::health::Health {
            check: Box::new(|| Ok(())),
            metrics: Box::new(metrics::render),
        };
        // Bind before electing, so that probes see a live process while it waits.
        component
            .serve_secure(addr, &config.serving, config.kubeconfig.as_deref(), health)
            .await
            .map_err(Error::component)?;
    }
    if config.leader_election.leader_elect {
        let election = config.leader_election.election("kube-controller-manager");
        if !component
            .elect(election, client.clone())
            .await
            .map_err(Error::component)?
        {
            return Ok(());
        }
        metrics::LEADER.set(&["kube-controller-manager"], 1.0);
    }

    let started = component
        .run_until(crate::start(client, config.options, &enabled))
        .await;
    let stopped = match started {
        Ok(Some(running)) => {
            let running = running?;
            let stopped = component.run_until(std::future::pending::<()>()).await;
            drop(running);
            stopped.map(|_| ()).map_err(Error::component)
        }
        Ok(None) => Ok(()),
        Err(e) => Err(Error::component(e)),
    };
    if config.leader_election.leader_elect {
        metrics::LEADER.set(&["kube-controller-manager"], 0.0);
    }
    stopped?;
    tracing::info!("kube-controller-manager stopped");
    Ok(())
}
