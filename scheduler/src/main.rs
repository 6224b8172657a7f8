//! kube-scheduler: flags -> Config -> scheduler::run.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use common::flags::LeaderElectionFlags;
use scheduler::Config;
use scheduler::config::KubeSchedulerConfiguration;

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

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    common::component::main("kube-scheduler", config(flags), scheduler::run).await;
}

fn config(flags: Flags) -> anyhow::Result<Config> {
    Ok(Config {
        configuration: match &flags.config {
            Some(path) => KubeSchedulerConfiguration::load(path)?,
            None => KubeSchedulerConfiguration::default_config(),
        },
        kubeconfig: flags.kubeconfig,
        leader_election: flags.leader_election,
        serving: flags.serving,
        bind_address: flags.bind_address,
        secure_port: flags.secure_port,
    })
}
