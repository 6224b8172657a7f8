//! kube-controller-manager: the control loops that drive the cluster's objects toward
//! their spec. `runtime` holds the machinery every controller shares (informers, queues,
//! workers); `controllers` holds one module per upstream controller.

pub mod component;
pub mod controllers;
pub mod error;
pub mod runtime;

pub use component::{Config, run};
pub use error::{Error, Result};

use std::sync::Arc;

use runtime::{Context, Options, SharedInformers};

/// Controllers running in this process; dropping it stops them and their informers.
pub struct Running {
    pub informers: Arc<SharedInformers>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts `controllers` over `client`: registers each on the shared informers, starts the
/// informers, waits until they have listed once, then runs the workers.
pub async fn start(
    client: kube::Client,
    options: Options,
    controllers: &[&controllers::Descriptor],
) -> crate::Result<Running> {
    let informers = Arc::new(SharedInformers::new(Some(client.clone())));
    let ctx = Context {
        client,
        informers: informers.clone(),
        options: Arc::new(options),
    };
    let mut runs = Vec::new();
    for d in controllers {
        tracing::info!(controller = d.name, "starting controller");
        runs.push((d.start)(&ctx)?);
    }
    informers.start();
    informers.wait_for_sync().await;
    tracing::info!("caches synced; controllers running");
    let tasks = runs.into_iter().map(tokio::spawn).collect();
    Ok(Running { informers, tasks })
}
