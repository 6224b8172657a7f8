//! kube-apiserver: flags -> Config -> server::run.

use std::net::IpAddr;
use std::path::PathBuf;

use apiserver::audit::AuditConfig;
use apiserver::audit::log::{Batch, LogConfig};
use apiserver::audit::truncate::Truncate;
use apiserver::audit::webhook::WebhookConfig;
use apiserver::auth::AuthConfig;
use apiserver::server::{Config, run};
use apiserver::services::{Cidr, PortRange};
use clap::Parser;

/// The Kubernetes API server of tetsu: serves the Kubernetes REST API (the built-in kinds of
/// v1.33) over an embedded SQLite store, or etcd with --etcd-servers.
#[derive(Parser, Debug)]
#[command(name = "kube-apiserver", version, about, long_about = None)]
struct Flags {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// The port on which to serve HTTPS; 0 turns HTTPS off.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Serve plain HTTP on 127.0.0.1:PORT without authentication. For local development only.
    #[arg(long)]
    insecure_port: Option<u16>,
    /// File with the x509 certificate for HTTPS (with intermediates after it). When absent, a
    /// self-signed certificate is generated under --data-dir.
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// File with the x509 private key matching --tls-cert-file.
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// Comma-separated etcd endpoints (http://host:port). When absent, the embedded store under
    /// --data-dir is used.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The prefix of every key in the store.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// An apiserver.config.k8s.io/v1 EncryptionConfiguration (YAML or JSON): the providers
    /// that encrypt resources (e.g. secrets) at rest.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Reload --encryption-provider-config when its content changes (checked every minute),
    /// instead of only at start.
    #[arg(long)]
    encryption_provider_config_automatic_reload: bool,
    /// Directory of the embedded store and of generated certificates.
    #[arg(long, default_value = "/var/lib/tetsu/apiserver")]
    data_dir: PathBuf,
    /// CIDR from which Service cluster IPs are allocated.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: Cidr,
    /// Port range reserved for Services of type NodePort.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: PortRange,
    /// The IP address published to the cluster in the `kubernetes` Endpoints. Detected from the
    /// default route when absent.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// The interval of compaction requests: history older than one interval is forgotten. 0
    /// disables compaction. A Go-style duration: 300s, 5m, 1h.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    etcd_compaction_interval: std::time::Duration,
    /// File with the CA certificates that sign client certificates. A client presenting one
    /// signed by them is the user named by the subject's CommonName, in the groups of its
    /// Organizations.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// File of static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Accept bootstrap tokens (Secrets of type bootstrap.kubernetes.io/token in kube-system)
    /// as bearer tokens, as `kubeadm join` uses them.
    #[arg(long)]
    enable_bootstrap_token_auth: bool,
    /// Let requests without credentials to health, version and discovery paths through as
    /// system:anonymous (authorization still decides). Resource requests without credentials
    /// get 401, unless --authorization-mode is AlwaysAllow alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Ordered authorizers: AlwaysAllow, AlwaysDeny, Node, RBAC. The first that allows or denies
    /// decides.
    #[arg(long, value_delimiter = ',', default_value = "AlwaysAllow")]
    authorization_mode: Vec<apiserver::auth::Mode>,
    /// The issuer (`iss`) of service-account tokens this server issues and accepts.
    #[arg(long)]
    service_account_issuer: Option<String>,
    /// Files with the keys (PEM, public or private) that verify service-account tokens.
    #[arg(long)]
    service_account_key_file: Vec<PathBuf>,
    /// The private key (PEM PKCS#8, ECDSA P-256) that signs service-account tokens.
    #[arg(long)]
    service_account_signing_key_file: Option<PathBuf>,
    /// Audiences a token must name; the issuer when not given.
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// The longest lifetime of a token the TokenRequest API issues (e.g. 24h); longer requests
    /// are shortened to it. Unlimited (up to 2^32 s) when not given.
    #[arg(long, value_parser = parse_duration)]
    service_account_max_token_expiration: Option<std::time::Duration>,
    /// Admission plugins to run besides the default ones (NamespaceLifecycle,
    /// ServiceAccount, DefaultTolerationSeconds, Priority, PodSecurity, ...). tetsu switches
    /// LimitRanger, ServiceAccount, Priority, PodSecurity and ResourceQuota; NodeRestriction
    /// and DefaultTolerationSeconds always run.
    #[arg(long, value_delimiter = ',')]
    enable_admission_plugins: Vec<String>,
    /// Default admission plugins not to run, e.g. ServiceAccount on a cluster without the
    /// controller-manager's serviceaccount controller.
    #[arg(long, value_delimiter = ',')]
    disable_admission_plugins: Vec<String>,
    /// An AdmissionConfiguration file; tetsu reads its PodSecurity entry (a
    /// PodSecurityConfiguration: defaults for unlabelled namespaces, exemptions).
    #[arg(long)]
    admission_control_config_file: Option<PathBuf>,
    /// The client certificate the apiserver presents to kubelets when it dials them for
    /// pods/log, exec, attach, portforward and nodes/proxy.
    #[arg(long)]
    kubelet_client_certificate: Option<PathBuf>,
    /// The private key of --kubelet-client-certificate.
    #[arg(long)]
    kubelet_client_key: Option<PathBuf>,
    /// CA certificates kubelets' serving certificates are checked against, for the address
    /// the apiserver dials; without it they are not checked (kubelets serve self-signed
    /// certificates unless --rotate-server-certificates).
    #[arg(long)]
    kubelet_certificate_authority: Option<PathBuf>,
    /// The deadline of a request that is not long-running (everything but watch, proxy, exec,
    /// attach, portforward and log), after which it is answered 504 Timeout. A request's
    /// `timeout` parameter may shorten it. A Go-style duration: 60s, 1m.
    #[arg(long, default_value = "1m0s", value_parser = parse_duration)]
    request_timeout: std::time::Duration,
    /// The minimum number of seconds a handler must keep a request open before timing it out.
    /// Currently only honored by the watch request handler, which picks a randomized value
    /// above this number (up to twice it) as the connection timeout, to spread out load.
    #[arg(long, default_value_t = 1800)]
    min_request_timeout: u64,
    /// The maximum number of non-mutating requests in flight at a given time. When the server
    /// exceeds this, it rejects requests (429, Retry-After: 1). Zero for no limit.
    /// Long-running requests and health checks do not count; system:masters is never refused.
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// The maximum number of mutating requests in flight at a given time. When the server
    /// exceeds this, it rejects requests (429, Retry-After: 1). Zero for no limit.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Path to the file that defines the audit policy (audit.k8s.io/v1 Policy, YAML or JSON).
    /// Without it nothing is audited.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// If set, all requests coming to the apiserver are logged to this file (as the policy
    /// says). '-' means standard out.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Format of saved audits: "json" (one Event per line) or "legacy" (one line of text).
    #[arg(long, default_value = "json")]
    audit_log_format: apiserver::audit::log::Format,
    /// The maximum number of days to retain old audit log files based on the timestamp encoded
    /// in their filename (0: no limit).
    #[arg(long, default_value_t = 0)]
    audit_log_maxage: u64,
    /// The maximum number of old audit log files to retain (0: no limit).
    #[arg(long, default_value_t = 0)]
    audit_log_maxbackup: usize,
    /// The maximum size in megabytes of the audit log file before it gets rotated (0: 100).
    #[arg(long, default_value_t = 0)]
    audit_log_maxsize: u64,
    /// Strategy for sending audit events: batch, blocking or blocking-strict. tetsu never holds
    /// a request on the disk: every mode queues events to a writer thread, at most
    /// --audit-log-batch-buffer-size of them; when full, events are dropped and counted in
    /// apiserver_audit_error_total{plugin="log"}.
    #[arg(long, default_value = "blocking", value_parser = ["batch", "blocking", "blocking-strict"])]
    audit_log_mode: String,
    /// The size of the buffer to store events before writing them.
    #[arg(long, default_value_t = 10000)]
    audit_log_batch_buffer_size: usize,
    /// In batch mode, the most events written at once (other modes write all that wait).
    #[arg(long, default_value_t = 1)]
    audit_log_batch_max_size: usize,
    /// Accepted for upstream's sake: the writer never waits for a batch to fill (it writes
    /// whatever has gathered every few milliseconds).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    audit_log_batch_max_wait: std::time::Duration,
    /// In batch mode, limit how often batches are written.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    audit_log_batch_throttle_enable: bool,
    /// Batches written per second at most, with the throttle on.
    #[arg(long, default_value_t = 0.0)]
    audit_log_batch_throttle_qps: f64,
    /// Batches written at once before the throttle's pace applies.
    #[arg(long, default_value_t = 0)]
    audit_log_batch_throttle_burst: usize,
    /// Gzip rotated audit log files.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    audit_log_compress: bool,
    /// Shorten events over --audit-log-truncate-max-event-size: their request and response
    /// objects are left out (annotated audit.k8s.io/truncated); one still too large is
    /// dropped.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    audit_log_truncate_enabled: bool,
    /// With truncation, the most bytes written in one batch.
    #[arg(long, default_value_t = 10485760)]
    audit_log_truncate_max_batch_size: usize,
    /// With truncation, the most bytes of one event.
    #[arg(long, default_value_t = 102400)]
    audit_log_truncate_max_event_size: usize,
    /// API group and version of the events written (only audit.k8s.io/v1 is served).
    #[arg(long, default_value = "audit.k8s.io/v1", value_parser = audit_version)]
    audit_log_version: String,
    /// Path to a kubeconfig file naming the remote service audit events are POSTed to (as
    /// EventList batches).
    #[arg(long)]
    audit_webhook_config_file: Option<PathBuf>,
    /// Strategy for sending audit events to the webhook: batch (blocking and blocking-strict
    /// are accepted and batch too: a request never waits for the receiver).
    #[arg(long, default_value = "batch", value_parser = ["batch", "blocking", "blocking-strict"])]
    audit_webhook_mode: String,
    /// The size of the buffer to store events before batching and sending.
    #[arg(long, default_value_t = 10000)]
    audit_webhook_batch_buffer_size: usize,
    /// The maximum number of events in a batch.
    #[arg(long, default_value_t = 400)]
    audit_webhook_batch_max_size: usize,
    /// The amount of time to wait before sending a batch that has not reached the max size.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    audit_webhook_batch_max_wait: std::time::Duration,
    /// The amount of time to wait before retrying the first failed request; each next retry
    /// waits 1.5 times more (5 attempts).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    audit_webhook_initial_backoff: std::time::Duration,
    /// Limit how often batches are sent to the webhook.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    audit_webhook_batch_throttle_enable: bool,
    /// Batches sent per second at most, with the throttle on.
    #[arg(long, default_value_t = 10.0)]
    audit_webhook_batch_throttle_qps: f64,
    /// Batches sent at once before the throttle's pace applies.
    #[arg(long, default_value_t = 15)]
    audit_webhook_batch_throttle_burst: usize,
    /// Shorten events over --audit-webhook-truncate-max-event-size (their objects are left
    /// out; one still too large is dropped) and split batches over
    /// --audit-webhook-truncate-max-batch-size.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    audit_webhook_truncate_enabled: bool,
    /// With truncation, the most bytes of events in one request to the webhook.
    #[arg(long, default_value_t = 10485760)]
    audit_webhook_truncate_max_batch_size: usize,
    /// With truncation, the most bytes of one event.
    #[arg(long, default_value_t = 102400)]
    audit_webhook_truncate_max_event_size: usize,
    /// API group and version of the events sent (only audit.k8s.io/v1 is served).
    #[arg(long, default_value = "audit.k8s.io/v1", value_parser = audit_version)]
    audit_webhook_version: String,
    /// Log verbosity, as klog's -v (0-3 info, 4-5 debug, 6+ trace). RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 2)]
    verbosity: u8,
}

/// Parses durations as Go's time.ParseDuration does: `90s`, `5m`, `1h`, `1m30s`, `0`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match common::flags::parse_go_duration(s)? {
        secs if secs < 0.0 => Err(format!("negative duration {s:?}")),
        secs => Ok(std::time::Duration::from_secs_f64(secs)),
    }
}

/// The audit event versions this apiserver writes.
fn audit_version(s: &str) -> Result<String, String> {
    if s == apiserver::audit::event::API_VERSION {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid audit version {s:?}, only {:?} is supported",
            apiserver::audit::event::API_VERSION
        ))
    }
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    tracing::debug!(
        log = %flags.audit_log_mode,
        webhook = %flags.audit_webhook_mode,
        "audit modes (every mode queues events; none holds a request)"
    );
    common::component::main("kube-apiserver", config(flags), run).await;
}

fn config(flags: Flags) -> apiserver::Result<Config> {
    Ok(Config {
        bind_address: flags.bind_address,
        secure_port: flags.secure_port,
        insecure_port: flags.insecure_port,
        tls_cert_file: flags.tls_cert_file,
        tls_private_key_file: flags.tls_private_key_file,
        etcd_servers: flags.etcd_servers,
        etcd_prefix: flags.etcd_prefix,
        encryption_provider_config: flags.encryption_provider_config,
        encryption_provider_config_automatic_reload: flags
            .encryption_provider_config_automatic_reload,
        data_dir: flags.data_dir,
        service_cluster_ip_range: flags.service_cluster_ip_range,
        service_node_port_range: flags.service_node_port_range,
        advertise_address: flags.advertise_address,
        compaction_interval: flags.etcd_compaction_interval,
        auth: AuthConfig {
            client_ca_file: flags.client_ca_file,
            token_auth_file: flags.token_auth_file,
            enable_bootstrap_token_auth: flags.enable_bootstrap_token_auth,
            anonymous_auth: flags.anonymous_auth,
            authorization_modes: flags.authorization_mode,
            service_account_issuer: flags.service_account_issuer,
            service_account_key_files: flags.service_account_key_file,
            service_account_signing_key_file: flags.service_account_signing_key_file,
            api_audiences: flags.api_audiences,
            service_account_max_token_expiration: flags.service_account_max_token_expiration,
        },
        admission: apiserver::admission::Plugins::from_flags(
            &flags.enable_admission_plugins,
            &flags.disable_admission_plugins,
        )
        .and_then(|p| p.with_config_file(flags.admission_control_config_file.as_deref()))
        .map_err(apiserver::Error::Invalid)?,
        kubelet_client_certificate: flags.kubelet_client_certificate,
        kubelet_certificate_authority: flags.kubelet_certificate_authority,
        kubelet_client_key: flags.kubelet_client_key,
        request_timeout: flags.request_timeout,
        min_request_timeout: std::time::Duration::from_secs(flags.min_request_timeout),
        max_requests_inflight: flags.max_requests_inflight,
        max_mutating_requests_inflight: flags.max_mutating_requests_inflight,
        audit: AuditConfig {
            policy_file: flags.audit_policy_file,
            log: flags.audit_log_path.map(|path| LogConfig {
                path,
                format: flags.audit_log_format,
                max_age_days: flags.audit_log_maxage,
                max_backups: flags.audit_log_maxbackup,
                max_size_mb: flags.audit_log_maxsize,
                buffer_size: flags.audit_log_batch_buffer_size,
                compress: flags.audit_log_compress,
                truncate: flags.audit_log_truncate_enabled.then_some(Truncate {
                    max_event_bytes: flags.audit_log_truncate_max_event_size,
                    max_batch_bytes: flags.audit_log_truncate_max_batch_size,
                }),
                batch: (flags.audit_log_mode == "batch").then_some(Batch {
                    max_size: flags.audit_log_batch_max_size,
                    throttle_enable: flags.audit_log_batch_throttle_enable,
                    throttle_qps: flags.audit_log_batch_throttle_qps,
                    throttle_burst: flags.audit_log_batch_throttle_burst,
                }),
            }),
            webhook: flags
                .audit_webhook_config_file
                .map(|config_file| WebhookConfig {
                    config_file,
                    initial_backoff: flags.audit_webhook_initial_backoff,
                    buffer_size: flags.audit_webhook_batch_buffer_size,
                    max_batch_size: flags.audit_webhook_batch_max_size,
                    max_batch_wait: flags.audit_webhook_batch_max_wait,
                    throttle_enable: flags.audit_webhook_batch_throttle_enable,
                    throttle_qps: flags.audit_webhook_batch_throttle_qps,
                    throttle_burst: flags.audit_webhook_batch_throttle_burst,
                    truncate: flags.audit_webhook_truncate_enabled.then_some(Truncate {
                        max_event_bytes: flags.audit_webhook_truncate_max_event_size,
                        max_batch_bytes: flags.audit_webhook_truncate_max_batch_size,
                    }),
                }),
        },
        ..Config::default()
    })
}
