//! What every component's `run` does around its own work: the /healthz and /metrics
//! servers, leader election when it is on, and stopping on the shutdown signal (or when
//! leadership is lost, or a server fails). A component's `run(config, shutdown)` makes a
//! [`Component`], starts its servers, elects if asked, then waits for its work with
//! [`Component::run_until`]; main.rs only parses flags and calls `run`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::delegated_auth::ServingFlags;
use crate::error::{BoxError, Error, describe};
use crate::health::Health;
use crate::leader_election::LeaderElection;

/// A shutdown signal that can be waited for any number of times.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Watches `signal` (on a task of its own).
    pub fn new(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Resolves once shutdown has been asked for (at once if it already has).
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            // A dropped sender means the runtime is going away: stop as well.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// One running component's shared parts. Dropping it stops its servers.
pub struct Component {
    name: &'static str,
    shutdown: Shutdown,
    servers: JoinSet<crate::Result<()>>,
    leading: Option<watch::Receiver<bool>>,
}

impl Component {
    /// `name` is the component's (kube-scheduler, ...): the certificate's, the Lease's.
    pub fn new(name: &'static str, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        Component {
            name,
            shutdown: Shutdown::new(shutdown),
            servers: JoinSet::new(),
            leading: None,
        }
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Serves /healthz and /metrics over plain HTTP on `addr` until shutdown.
    pub fn serve(&mut self, addr: SocketAddr, health: Health) {
        let stop = self.shutdown.requested();
        self.servers
            .spawn(async move { crate::health::serve(addr, health, stop).await });
    }

    /// Serves /healthz and /metrics over HTTPS on `addr` until shutdown, with the serving
    /// certificate and the delegated authentication and authorization of `serving`
    /// (through the apiserver of `kubeconfig`).
    pub async fn serve_secure(
        &mut self,
        addr: SocketAddr,
        serving: &ServingFlags,
        kubeconfig: Option<&Path>,
        health: Health,
    ) -> crate::Result<()> {
        let tls = serving.tls(self.name)?;
        let auth = Arc::new(serving.delegated(kubeconfig).await?);
        let stop = self.shutdown.requested();
        self.servers
            .spawn(async move { crate::health::serve_secure(addr, tls, auth, health, stop).await });
        Ok(())
    }

    /// Waits to lead `election`: true once leading (until [`Component::run_until`] sees
    /// the leadership lost), false if shutdown came first.
    pub async fn elect(
        &mut self,
        election: LeaderElection,
        client: kube::Client,
    ) -> crate::Result<bool> {
        match self.run_until(election.acquire(client)).await? {
            Some(leading) => {
                self.leading = Some(leading);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Runs `work` until it ends (`Some` of its output) or shutdown is asked for (`None`);
    /// fails when leadership is lost or a server fails.
    pub async fn run_until<T>(
        &mut self,
        work: impl Future<Output = T>,
    ) -> crate::Result<Option<T>> {
        let name = self.name;
        tokio::select! {
            out = work => Ok(Some(out)),
            _ = self.shutdown.requested() => {
                tracing::info!("{name} stopping");
                Ok(None)
            }
            e = server_failed(&mut self.servers) => Err(e),
            _ = crate::flags::leadership_lost(self.leading.as_mut()) => {
                Err(Error::LeadershipLost)
            }
        }
    }
}

/// Resolves with the first server's error; never while they all run.
async fn server_failed(servers: &mut JoinSet<crate::Result<()>>) -> Error {
    loop {
        match servers.join_next().await {
            None => std::future::pending().await,
            Some(Ok(Ok(()))) => continue,
            Some(Ok(Err(e))) => return e,
            // The server's task panicked or was cancelled.
            Some(Err(e)) => return Error::Component(Box::new(e)),
        }
    }
}

/// The shutdown signal a component's `run` gets from [`main`] or [`InProcess`].
pub type Signal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What every component's main does once its flags are parsed (and logging is set up):
/// runs `run` with `config` until SIGTERM or Ctrl-C; on an error (a bad `config`
/// included) logs it, prints it on stderr after the component's `name` and exits 1.
pub async fn main<C, E, F, Fut>(
    name: &str,
    config: Result<C, E>,
    run: impl FnOnce(C, Signal) -> Fut,
) where
    E: Into<BoxError>,
    F: Into<BoxError>,
    Fut: Future<Output = Result<(), F>>,
{
    let result: Result<(), BoxError> = match config {
        Ok(config) => run(config, Box::pin(crate::shutdown::signal()))
            .await
            .map_err(Into::into),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        let e = describe(&*e);
        tracing::error!("{e}");
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// The node's name: `hostname_override`, or the machine's hostname; lowercased.
pub fn node_name(hostname_override: Option<&str>) -> String {
    hostname_override
        .map(str::to_owned)
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .to_lowercase()
}

/// A component started in this process (tests, benchmarks) through its `run`: stopped as
/// SIGTERM stops the binary, by [`InProcess::stop`] or when dropped.
pub struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), BoxError>>,
}

impl InProcess {
    /// Spawns `run` (e.g. `|stop| scheduler::run(config, stop)`) with a shutdown signal of
    /// its own.
    pub fn spawn<F, Fut, E>(run: F) -> InProcess
    where
        F: FnOnce(Signal) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let signal: Signal = Box::pin(async move {
            let _ = stopped.await;
        });
        InProcess {
            stop: Some(stop),
            task: {
                let work = run(signal);
                tokio::spawn(async move { work.await.map_err(Into::into) })
            },
        }
    }

    /// Whether `run` has returned (it should not before it is stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the component to stop and waits for `run` to return.
    pub async fn stop(mut self) -> crate::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result.map_err(Error::Component),
            Err(panicked) => Err(Error::Component(Box::new(panicked))),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
