//! kubeadm: flags -> one of init, join, reset, certs, token, images, supervise.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kubeadm::token::Token;

/// Brings a tetsu cluster up in one command: `kubeadm init` on the first machine (a
/// secure control plane and a node), `kubeadm join` on each worker, `kubeadm reset` to
/// remove everything again.
#[derive(Parser, Debug)]
#[command(name = "kubeadm", version, about, long_about = None)]
struct Flags {
    #[command(subcommand)]
    command: Commands,
    /// Log verbosity of kubeadm and the components it starts (0-5); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 2, global = true)]
    verbosity: u8,
}

const DATA_DIR: &str = "/var/lib/tetsu";

#[derive(Subcommand, Debug)]
enum Commands {
    /// Set up a control-plane node: PKI, kubeconfigs, containerd, the control plane, the
    /// kubelet and kube-proxy under a supervisor that keeps running after init returns.
    /// Secrets are encrypted at rest, and every request is audited: the log is
    /// <data-dir>/audit/audit.log (JSON lines, rotated at 100 MB, 10 backups), the policy
    /// <data-dir>/pki/audit-policy.yaml.
    Init(InitFlags),
    /// Join this machine to a cluster as a worker node.
    Join(JoinFlags),
    /// Stop the node and remove everything kubeadm created on this machine.
    Reset {
        /// The node's data directory.
        #[arg(long, default_value = DATA_DIR)]
        data_dir: PathBuf,
        /// Reset the node without prompting for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Commands related to handling the cluster's certificates: when they expire, renewal.
    Certs {
        #[command(subcommand)]
        command: CertsCommands,
    },
    /// Manage bootstrap tokens (what `kubeadm join` authenticates with).
    Token {
        #[command(subcommand)]
        command: TokenCommands,
        /// The kubeconfig to manage tokens with (default: <data-dir>/admin.conf).
        #[arg(long, global = true)]
        kubeconfig: Option<PathBuf>,
        #[arg(long, default_value = DATA_DIR, global = true)]
        data_dir: PathBuf,
    },
    /// Build images and import them into the node's containerd (no registry is reachable).
    Images {
        #[command(subcommand)]
        command: ImageCommands,
    },
    /// Run the node's processes in the foreground (what init and join start in the
    /// background), restarting any that exits, until SIGTERM or Ctrl-C.
    Supervise {
        #[arg(long, default_value = DATA_DIR)]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct InitFlags {
    /// Where the cluster's state lives: PKI, kubeconfigs, the store, containerd, logs, and
    /// the apiserver's audit log (<data-dir>/audit/audit.log).
    #[arg(long, default_value = DATA_DIR)]
    data_dir: PathBuf,
    /// The range of pod IP addresses; each node gets a /24 of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    pod_network_cidr: String,
    /// The range of Service cluster IPs.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    service_dns_domain: String,
    /// The address the apiserver advertises (default: the default route's interface).
    #[arg(long)]
    apiserver_advertise_address: Option<IpAddr>,
    /// The apiserver's port.
    #[arg(long, default_value_t = kubeadm::config::API_PORT)]
    apiserver_bind_port: u16,
    /// More names and addresses for the apiserver's serving certificate, comma separated.
    #[arg(long, value_delimiter = ',')]
    apiserver_cert_extra_sans: Vec<String>,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// etcd endpoints to store the cluster in, comma separated (default: the embedded store).
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// A running CRI runtime's socket to use instead of the containerd kubeadm starts.
    #[arg(long)]
    cri_socket: Option<String>,
    /// The bootstrap token to create (default: a random one), [a-z0-9]{6}.[a-z0-9]{16}.
    #[arg(long)]
    token: Option<Token>,
    /// How long the token is valid; 0 never expires.
    #[arg(long, default_value = "24h", value_parser = common::flags::parse_duration)]
    token_ttl: Duration,
    /// Where kube-apiserver, kubelet and the other binaries are (default: beside kubeadm).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Checks whose errors become warnings, comma separated (e.g. Port-6443), or "all".
    #[arg(long, value_delimiter = ',')]
    ignore_preflight_errors: Vec<String>,
    /// One more flag for a component, e.g.
    /// kube-controller-manager=--node-monitor-grace-period=20s (repeatable; upstream's
    /// ClusterConfiguration extraArgs).
    #[arg(long, value_parser = kubeadm::components::parse_component_arg)]
    component_arg: Vec<(String, String)>,
}

#[derive(clap::Args, Debug)]
struct JoinFlags {
    /// The apiserver, host:port, as `kubeadm init` printed it.
    api_server_endpoint: String,
    /// The bootstrap token.
    #[arg(long)]
    token: Token,
    /// The cluster CA's public key hash, sha256:<hex>, to pin the control plane with.
    #[arg(long)]
    discovery_token_ca_cert_hash: Vec<String>,
    /// Trust the control plane without --discovery-token-ca-cert-hash (insecure).
    #[arg(long)]
    discovery_token_unsafe_skip_ca_verification: bool,
    /// The node's data directory.
    #[arg(long, default_value = DATA_DIR)]
    data_dir: PathBuf,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's InternalIP (default: the default route's interface address).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// A running CRI runtime's socket to use instead of the containerd kubeadm starts.
    #[arg(long)]
    cri_socket: Option<String>,
    /// Where kubelet and kube-proxy are (default: beside kubeadm).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Checks whose errors become warnings, comma separated, or "all".
    #[arg(long, value_delimiter = ',')]
    ignore_preflight_errors: Vec<String>,
    /// One more flag for one of this node's components, e.g.
    /// kubelet=--resolv-conf=/run/systemd/resolve/resolv.conf (repeatable; upstream's
    /// nodeRegistration.kubeletExtraArgs).
    #[arg(long, value_parser = kubeadm::components::parse_component_arg)]
    component_arg: Vec<(String, String)>,
}

/// `--component-arg` flags by component, in order.
fn extra_args(args: Vec<(String, String)>) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_component = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (component, arg) in args {
        by_component.entry(component).or_default().push(arg);
    }
    by_component
}

#[derive(Subcommand, Debug)]
enum TokenCommands {
    /// Create a bootstrap token and print it.
    Create {
        /// The token (default: a random one).
        token: Option<Token>,
        /// How long it is valid; 0 never expires.
        #[arg(long, default_value = "24h", value_parser = common::flags::parse_duration)]
        ttl: Duration,
        #[arg(long, default_value = "")]
        description: String,
        /// Print the whole `kubeadm join` command.
        #[arg(long)]
        print_join_command: bool,
    },
    /// List the bootstrap tokens.
    List,
    /// Delete bootstrap tokens (by id or whole token).
    Delete {
        #[arg(required = true)]
        tokens: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CertsCommands {
    /// Check the expiration of the certificates kubeadm manages: the leaf certificates in
    /// <data-dir>/pki and those embedded in the control plane's kubeconfigs, and the CA.
    CheckExpiration {
        #[arg(long, default_value = DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Renew certificates from the existing CA, unconditionally (same subject, names, usages
    /// and key; valid a year): `all` or one of admin.conf, apiserver,
    /// apiserver-kubelet-client, controller-manager.conf, scheduler.conf, super-admin.conf.
    /// The components must be restarted to use them.
    Renew {
        /// `all` or a certificate's name.
        which: String,
        #[arg(long, default_value = DATA_DIR)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ImageCommands {
    /// Build an image from busybox-static (default) or a root filesystem directory and
    /// import it into the node's containerd under NAME.
    Import {
        #[command(flatten)]
        image: kubelet::images::ImportArgs,
        /// The node's data directory (whose containerd gets the image).
        #[arg(long, default_value = DATA_DIR)]
        data_dir: PathBuf,
    },
}

fn bin_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_else(|| ".".into())
    })
}

/// Absolute, so the supervisor and the components find it whatever their directory.
fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    let verbosity = flags.verbosity;
    // The API client logs every refused connection at ERROR while init waits for the
    // apiserver to come up; init reports progress itself.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},kube_client=off",
            common::logging::level_for(verbosity)
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let result = match flags.command {
        Commands::Init(f) => {
            kubeadm::init::run(kubeadm::init::InitOptions {
                data_dir: absolute(f.data_dir),
                node_name: f.node_name,
                advertise_address: f.apiserver_advertise_address,
                api_port: f.apiserver_bind_port,
                pod_network_cidr: f.pod_network_cidr,
                service_cidr: f.service_cidr,
                dns_domain: f.service_dns_domain,
                etcd_servers: f.etcd_servers,
                cri_socket: f.cri_socket,
                bin_dir: absolute(bin_dir(f.bin_dir)),
                token: f.token,
                token_ttl: f.token_ttl,
                apiserver_cert_extra_sans: f.apiserver_cert_extra_sans,
                ignore_preflight_errors: f.ignore_preflight_errors,
                extra_args: extra_args(f.component_arg),
                verbosity,
            })
            .await
        }
        Commands::Join(f) => {
            kubeadm::join::run(kubeadm::join::JoinOptions {
                api_server_endpoint: f.api_server_endpoint,
                token: f.token,
                ca_cert_hashes: f.discovery_token_ca_cert_hash,
                unsafe_skip_ca_verification: f.discovery_token_unsafe_skip_ca_verification,
                data_dir: absolute(f.data_dir),
                node_name: f.node_name,
                node_ip: f.node_ip,
                cri_socket: f.cri_socket,
                bin_dir: absolute(bin_dir(f.bin_dir)),
                ignore_preflight_errors: f.ignore_preflight_errors,
                extra_args: extra_args(f.component_arg),
                verbosity,
            })
            .await
        }
        Commands::Reset { data_dir, force } => {
            let stdin = std::io::stdin();
            if force || kubeadm::reset::confirm(&mut stdin.lock(), &mut std::io::stdout()) {
                kubeadm::reset::run(&absolute(data_dir)).await
            } else {
                Err(anyhow::anyhow!("aborted reset operation"))
            }
        }
        Commands::Certs { command } => certs(command),
        Commands::Token {
            command,
            kubeconfig,
            data_dir,
        } => {
            token(
                command,
                kubeconfig.unwrap_or_else(|| data_dir.join("admin.conf")),
            )
            .await
        }
        Commands::Images {
            command: ImageCommands::Import { image, data_dir },
        } => image
            .run(&kubeadm::config::Layout::new(&data_dir).containerd_socket())
            .map_err(anyhow::Error::from),
        Commands::Supervise { data_dir } => kubeadm::supervisor::run(&absolute(data_dir)).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn certs(command: CertsCommands) -> anyhow::Result<()> {
    match command {
        CertsCommands::CheckExpiration { data_dir } => {
            let now = chrono::Utc::now().timestamp_millis();
            print!("{}", kubeadm::certs::check_expiration(&data_dir, now)?);
        }
        CertsCommands::Renew { which, data_dir } => {
            let mut renewed = Vec::new();
            for leaf in kubeadm::certs::select(&which)? {
                if kubeadm::certs::renew(&data_dir, leaf)? {
                    println!("{} renewed", leaf.long_name);
                    renewed.push(leaf);
                } else if which != "all" {
                    anyhow::bail!("{} was not created on this node", leaf.name);
                }
            }
            match kubeadm::certs::restart_components(&data_dir, &renewed) {
                Some(restarted) => {
                    println!("\n{}", kubeadm::certs::restarted_message(&restarted))
                }
                None => println!("\n{}", kubeadm::certs::RESTART_HINT),
            }
        }
    }
    Ok(())
}

async fn token(command: TokenCommands, kubeconfig: PathBuf) -> anyhow::Result<()> {
    let client = common::client::client(Some(&kubeconfig)).await?;
    match command {
        TokenCommands::Create {
            token,
            ttl,
            description,
            print_join_command,
        } => kubeadm::tokens::create(&client, token, ttl, &description, print_join_command).await,
        TokenCommands::List => kubeadm::tokens::list(&client).await,
        TokenCommands::Delete { tokens } => kubeadm::tokens::delete(&client, &tokens).await,
    }
}
