//! kubelet: flags -> Config -> kubelet::run (`kubelet hollow`: kubelet::run_hollow;
//! `kubelet images import` builds and imports an image, since no registry is reachable).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use kubelet::config_file::KubeletConfiguration;
use kubelet::server::auth::AuthConfig;
use kubelet::{Config, Runtime, parse_labels};

#[derive(Parser, Debug)]
#[command(
    name = "kubelet",
    version,
    about = "The Kubernetes node agent: registers the node with the apiserver, renews its Lease, reports its status, and runs its pods through the container runtime's CRI (containerd)."
)]
struct Flags {
    #[command(subcommand)]
    command: Option<Commands>,
    /// A KubeletConfiguration file (kubelet.config.k8s.io/v1beta1): its clusterDNS,
    /// clusterDomain, resolvConf, staticPodPath, address, port, healthz and TLS fields,
    /// certificate rotation and authentication/authorization set what the matching flags
    /// set; a flag on the command line wins.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Path to a kubeconfig with the apiserver's address and credentials.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A kubeconfig with bootstrap credentials (a bootstrap token). When --kubeconfig does not
    /// exist, the kubelet asks for a client certificate with it (a CertificateSigningRequest
    /// the controller-manager approves and signs), then writes --kubeconfig to use it.
    #[arg(long)]
    bootstrap_kubeconfig: Option<PathBuf>,
    /// The node's name (default: the machine's hostname, lowercased).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The node's InternalIP address.
    #[arg(long)]
    node_ip: Option<String>,
    /// Labels to add when registering, as key=value pairs separated by commas.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// The container runtime: "remote" (CRI at --container-runtime-endpoint) or "hollow"
    /// (simulated: nothing runs; kubemark's hollow node).
    #[arg(long, default_value = "remote", value_parser = ["remote", "hollow"])]
    runtime: String,
    /// The container runtime's CRI endpoint.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    container_runtime_endpoint: String,
    /// The kubelet's state directory.
    #[arg(long, default_value = "/var/lib/kubelet")]
    root_dir: PathBuf,
    /// A directory of static pod manifests the kubelet runs on its own (read every 20 s),
    /// shown in the API as mirror pods.
    #[arg(long)]
    pod_manifest_path: Option<PathBuf>,
    /// Where container logs go (/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log).
    #[arg(long, default_value = "/var/log/pods")]
    pod_log_dir: PathBuf,
    /// Address of the /healthz and /metrics server.
    #[arg(long, default_value = "127.0.0.1")]
    healthz_bind_address: IpAddr,
    /// Port of the /healthz and /metrics server (0 turns it off).
    #[arg(long, default_value_t = 10248)]
    healthz_port: u16,
    /// The port of the kubelet API (HTTPS; announced in the Node's daemonEndpoints).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// The address the kubelet API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// The kubelet API's serving certificate (default: a self-signed one in --cert-dir).
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file.
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// Where the self-signed serving certificate and the client certificate from TLS
    /// bootstrapping are kept (default: <root-dir>/pki).
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// CA certificates for client certificates of the kubelet API: a client presenting one
    /// they signed is the user of its CommonName, in the groups of its Organizations.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Requests to the kubelet API without credentials are system:anonymous (which
    /// --authorization-mode then judges); false answers them 401 Unauthorized.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Bearer tokens to the kubelet API are checked with a TokenReview to the apiserver.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    authentication_token_webhook: bool,
    /// How long TokenReview answers are cached.
    #[arg(long, default_value = "2m", value_parser = common::flags::parse_duration)]
    authentication_token_webhook_cache_ttl: std::time::Duration,
    /// Who may do what on the kubelet API: AlwaysAllow (anyone authenticated, anonymous
    /// included) or Webhook (a SubjectAccessReview to the apiserver per request, on the
    /// Node's subresources: nodes/proxy, nodes/stats, nodes/metrics, nodes/log, ...).
    #[arg(long, default_value = "AlwaysAllow")]
    authorization_mode: kubelet::server::auth::Mode,
    /// How long allowed SubjectAccessReview answers are cached.
    #[arg(long, default_value = "5m", value_parser = common::flags::parse_duration)]
    authorization_webhook_cache_authorized_ttl: std::time::Duration,
    /// How long denied SubjectAccessReview answers are cached.
    #[arg(long, default_value = "30s", value_parser = common::flags::parse_duration)]
    authorization_webhook_cache_unauthorized_ttl: std::time::Duration,
    /// Renew the client certificate (in --cert-dir, kubelet-client-current.pem) through a
    /// CertificateSigningRequest at a random 70-90% of its lifetime, without a restart.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    rotate_certificates: bool,
    /// Serve the kubelet API with a certificate from the cluster CA (signer
    /// kubernetes.io/kubelet-serving, for the Node's names and addresses) instead of a
    /// self-signed one, renewed like the client certificate; --tls-cert-file is then unused.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    rotate_server_certificates: bool,
    /// The cluster DNS servers' addresses, comma-separated: pods with dnsPolicy
    /// ClusterFirst resolve names through them (kubeadm's kube-dns Service).
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster's domain: pods search <namespace>.svc.<domain>, svc.<domain> and <domain>.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The resolver configuration pods with dnsPolicy Default get, and whose search list
    /// ClusterFirst pods add to theirs (empty: the runtime's default).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: String,
    /// Log verbosity (0-5); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 2)]
    verbosity: u8,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run many hollow nodes (kubemark's): the kubelet's node and pod logic over a
    /// simulated runtime, to test and benchmark the control plane at scale.
    Hollow(HollowFlags),
    /// Build and import images into containerd (no registry is reachable).
    Images {
        #[command(subcommand)]
        command: ImageCommands,
    },
}

#[derive(clap::Args, Debug)]
struct HollowFlags {
    /// How many hollow nodes to run in this process.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Node names are this prefix followed by the node's index.
    #[arg(long, default_value = "hollow-node-")]
    name_prefix: String,
    /// How long a started container takes to run.
    #[arg(long, default_value = "100ms", value_parser = common::flags::parse_duration)]
    start_delay: std::time::Duration,
    /// How often to log this process's memory and CPU use (0 turns it off).
    #[arg(long, default_value = "30s", value_parser = common::flags::parse_duration)]
    report_every: std::time::Duration,
}

#[derive(Subcommand, Debug)]
enum ImageCommands {
    /// Build an image from busybox-static (default) or a root filesystem directory and
    /// import it into containerd's k8s.io namespace under NAME.
    Import {
        #[command(flatten)]
        image: kubelet::images::ImportArgs,
        /// containerd's socket.
        #[arg(long, default_value = "/run/containerd/containerd.sock")]
        address: PathBuf,
    },
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let matches = Flags::command().get_matches();
    let flags = Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    common::logging::init(flags.verbosity);
    let flags = with_config_file(flags, &matches);
    common::component::main("kubelet", flags, run).await;
}

/// The flags with what --config's file sets for those not given on the command line.
fn with_config_file(mut flags: Flags, matches: &ArgMatches) -> kubelet::Result<Flags> {
    let Some(path) = flags.config.clone() else {
        return Ok(flags);
    };
    let file = KubeletConfiguration::load(&path)?;
    let ignored = file.ignored_fields();
    if !ignored.is_empty() {
        tracing::warn!(file = %path.display(), ?ignored, "fields this kubelet does not act on");
    }
    let unset = |id: &str| matches.value_source(id) != Some(ValueSource::CommandLine);
    let duration = |field: &str, value: &str| {
        common::flags::parse_duration(value)
            .map_err(|e| kubelet::Error::Invalid(format!("{}: {field}: {e}", path.display())))
    };
    macro_rules! set {
        ($flag:ident, $value:expr) => {
            if let Some(v) = $value
                && unset(stringify!($flag))
            {
                flags.$flag = v;
            }
        };
    }
    set!(cluster_dns, file.cluster_dns);
    set!(cluster_domain, file.cluster_domain);
    set!(resolv_conf, file.resolv_conf);
    set!(pod_manifest_path, file.static_pod_path.map(Some));
    set!(address, file.address);
    set!(port, file.port);
    set!(healthz_bind_address, file.healthz_bind_address);
    set!(healthz_port, file.healthz_port);
    set!(tls_cert_file, file.tls_cert_file.map(Some));
    set!(tls_private_key_file, file.tls_private_key_file.map(Some));
    set!(rotate_certificates, file.rotate_certificates);
    set!(rotate_server_certificates, file.server_tls_bootstrap);
    let authn = file.authentication;
    set!(client_ca_file, authn.x509.client_ca_file.map(Some));
    set!(anonymous_auth, authn.anonymous.enabled);
    set!(authentication_token_webhook, authn.webhook.enabled);
    if let Some(ttl) = &authn.webhook.cache_ttl {
        set!(
            authentication_token_webhook_cache_ttl,
            Some(duration("authentication.webhook.cacheTTL", ttl)?)
        );
    }
    let authz = file.authorization;
    if let Some(mode) = &authz.mode {
        let mode = mode.parse().map_err(|e: String| {
            kubelet::Error::Invalid(format!("{}: authorization.mode: {e}", path.display()))
        })?;
        set!(authorization_mode, Some(mode));
    }
    if let Some(ttl) = &authz.webhook.cache_authorized_ttl {
        set!(
            authorization_webhook_cache_authorized_ttl,
            Some(duration("authorization.webhook.cacheAuthorizedTTL", ttl)?)
        );
    }
    if let Some(ttl) = &authz.webhook.cache_unauthorized_ttl {
        set!(
            authorization_webhook_cache_unauthorized_ttl,
            Some(duration("authorization.webhook.cacheUnauthorizedTTL", ttl)?)
        );
    }
    Ok(flags)
}

async fn run(flags: Flags, shutdown: common::component::Signal) -> kubelet::Result<()> {
    match flags.command {
        Some(Commands::Images {
            command: ImageCommands::Import { image, address },
        }) => image.run(&address),
        Some(Commands::Hollow(h)) => {
            let mut config = kubelet::hollow::HollowConfig::new(h.nodes);
            config.name_prefix = h.name_prefix;
            config.start_delay = h.start_delay;
            config.labels = parse_labels(&flags.node_labels)?;
            let kubeconfig = flags.kubeconfig.as_deref();
            kubelet::run_hollow(kubeconfig, config, h.report_every, shutdown).await
        }
        None => {
            let config = Config {
                node_labels: parse_labels(&flags.node_labels)?,
                kubeconfig: flags.kubeconfig,
                bootstrap_kubeconfig: flags.bootstrap_kubeconfig,
                hostname_override: flags.hostname_override,
                node_ip: flags.node_ip,
                runtime: match flags.runtime.as_str() {
                    "hollow" => Runtime::Hollow,
                    _ => Runtime::Remote,
                },
                container_runtime_endpoint: flags.container_runtime_endpoint,
                root_dir: flags.root_dir,
                pod_manifest_path: flags.pod_manifest_path,
                pod_log_dir: flags.pod_log_dir,
                healthz_bind_address: flags.healthz_bind_address,
                healthz_port: flags.healthz_port,
                address: flags.address,
                port: flags.port,
                tls_cert_file: flags.tls_cert_file,
                tls_private_key_file: flags.tls_private_key_file,
                cert_dir: flags.cert_dir,
                client_ca_file: flags.client_ca_file,
                rotate_certificates: flags.rotate_certificates,
                rotate_server_certificates: flags.rotate_server_certificates,
                cluster_dns: flags.cluster_dns,
                cluster_domain: flags.cluster_domain,
                resolv_conf: (!flags.resolv_conf.is_empty()).then(|| flags.resolv_conf.into()),
                auth: AuthConfig {
                    anonymous: flags.anonymous_auth,
                    token_webhook: flags.authentication_token_webhook,
                    token_cache_ttl: flags.authentication_token_webhook_cache_ttl,
                    mode: flags.authorization_mode,
                    authorized_ttl: flags.authorization_webhook_cache_authorized_ttl,
                    unauthorized_ttl: flags.authorization_webhook_cache_unauthorized_ttl,
                },
            };
            kubelet::run(config, shutdown).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_with(file: &str, args: &[&str]) -> kubelet::Result<Flags> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, file).unwrap();
        let path = path.display().to_string();
        let mut argv = vec!["kubelet", "--config", &path];
        argv.extend_from_slice(args);
        let matches = Flags::command().try_get_matches_from(argv).unwrap();
        with_config_file(Flags::from_arg_matches(&matches).unwrap(), &matches)
    }

    const FILE: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
        clusterDNS: [10.96.0.10, 10.96.0.11]\nclusterDomain: example.org\nport: 11250\n\
        authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n    cacheTTL: 1m30s\n\
        authorization:\n  mode: Webhook\n";

    #[test]
    fn the_file_sets_what_the_command_line_leaves_alone() {
        let flags = flags_with(FILE, &["--cluster-domain", "cli.example"]).unwrap();
        assert_eq!(flags.cluster_dns.len(), 2);
        assert_eq!(flags.cluster_domain, "cli.example", "the flag wins");
        assert_eq!(flags.port, 11250);
        assert!(!flags.anonymous_auth);
        assert!(flags.authentication_token_webhook);
        assert_eq!(flags.authentication_token_webhook_cache_ttl.as_secs(), 90);
        assert_eq!(
            flags.authorization_mode,
            kubelet::server::auth::Mode::Webhook
        );
        // Fields the file does not name keep the flags' defaults.
        assert_eq!(flags.healthz_port, 10248);
        assert_eq!(flags.resolv_conf, "/etc/resolv.conf");
        let flags = flags_with(FILE, &["--anonymous-auth=true", "--port", "10250"]).unwrap();
        assert!(flags.anonymous_auth);
        assert_eq!(flags.port, 10250);
    }

    #[test]
    fn a_bad_file_stops_the_kubelet_with_a_reason() {
        let e = flags_with(&FILE.replace("Webhook", "Sometimes"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("authorization.mode"), "{e}");
        let e = flags_with(&FILE.replace("1m30s", "soon"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cacheTTL"), "{e}");
        let e = flags_with("kind: Pod\n", &[]).unwrap_err().to_string();
        assert!(e.contains("failed to load Kubelet config file"), "{e}");
    }
}
