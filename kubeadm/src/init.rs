//! `kubeadm init`: preflight, certs, kubeconfig, then the node's processes under a
//! supervisor that keeps running after init returns, then the phases that write into the
//! new cluster, and finally the admin kubeconfig's path and the `kubeadm join` command.
//! On a data dir that already holds a cluster, init brings that cluster back.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::config::{Layout, NodeConfig, Role};
use crate::kubeconfig;
use crate::pki::{Pki, PkiConfig};
use crate::token::{self, Token};
use crate::{bootstrap, preflight, supervisor, wait};

/// What `kubeadm init` was asked for.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub node_name: Option<String>,
    pub advertise_address: Option<IpAddr>,
    pub api_port: u16,
    pub pod_network_cidr: String,
    pub service_cidr: String,
    pub dns_domain: String,
    pub etcd_servers: Vec<String>,
    pub cri_socket: Option<String>,
    pub bin_dir: PathBuf,
    pub token: Option<Token>,
    pub token_ttl: Duration,
    pub apiserver_cert_extra_sans: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    pub extra_args: std::collections::BTreeMap<String, Vec<String>>,
    pub verbosity: u8,
}

/// How long init waits for the apiserver and then the node (upstream: 4 minutes).
const WAIT: Duration = Duration::from_secs(240);

pub async fn run(opts: InitOptions) -> anyhow::Result<()> {
    let layout = Layout::new(&opts.data_dir);
    if let Some(pid) = supervisor::running_supervisor(&layout) {
        anyhow::bail!(
            "a cluster is already running from {} (supervisor pid {pid}); `kubeadm reset --data-dir {}` removes it",
            opts.data_dir.display(),
            opts.data_dir.display()
        );
    }
    let existing = layout.config().exists();
    let cfg = if existing {
        println!(
            "[init] Found a cluster in {}: bringing it back with its configuration and data",
            opts.data_dir.display()
        );
        NodeConfig::load(&opts.data_dir)?
    } else {
        new_config(&opts)?
    };
    if cfg.role != Role::ControlPlane {
        anyhow::bail!(
            "{} holds a worker node (joined to {}): `kubeadm supervise --data-dir` runs it again, `kubeadm reset` removes it",
            opts.data_dir.display(),
            cfg.api_server
        );
    }
    println!("[init] Using Kubernetes version: v1.33.0");
    println!("[preflight] Running pre-flight checks");
    let mut ignore = opts.ignore_preflight_errors.clone();
    if existing {
        ignore.push("DirAvailable--data-dir".into());
    }
    let failures = preflight::check(&cfg, &layout, &ignore);
    if !failures.is_empty() {
        return Err(preflight::report(&failures));
    }
    cfg.save(&opts.data_dir)?;

    let pki = Pki::new(&layout.pki());
    println!("[certs] Using certificateDir folder {:?}", layout.pki());
    let written = pki.create(&PkiConfig {
        node_name: cfg.node_name.clone(),
        advertise_address: cfg.advertise_address,
        service_cidr: cfg.service_cidr.clone(),
        dns_domain: cfg.dns_domain.clone(),
        extra_sans: opts.apiserver_cert_extra_sans.clone(),
    })?;
    for f in &written {
        println!("[certs] Generated {}", f.display());
    }
    if crate::audit::write_policy(&layout)? {
        println!(
            "[audit] Generated the audit policy {}",
            layout.audit_policy().display()
        );
    }
    println!(
        "[audit] The apiserver's audit log is {}",
        layout.audit_log().display()
    );
    println!("[kubeconfig] Using kubeconfig folder {:?}", layout.root);
    kubeconfig::write_all(&pki, &layout.root, &cfg.api_server, &cfg.node_name)?;
    kubeconfig::write(
        &pki,
        &layout.root,
        "kube-proxy.conf",
        &cfg.api_server,
        "system:kube-proxy",
        &[],
    )?;

    println!(
        "[control-plane] Starting containerd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy (logs in {})",
        layout.logs().display()
    );
    let supervisor_pid = supervisor::spawn_detached(&layout)?;
    let started = Instant::now();
    let admin = layout.kubeconfig("super-admin.conf");
    println!(
        "[wait-control-plane] Waiting for the API server at {} to be healthy (up to {WAIT:?})",
        cfg.api_server
    );
    let client = wait_api(&admin, &layout, supervisor_pid).await?;
    println!(
        "[api-check] The API server is healthy after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    println!("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles");
    bootstrap::rbac(&client).await?;
    let ca = std::fs::read_to_string(pki.path("ca.crt"))?;
    bootstrap::cluster_info(&client, &cfg, &ca).await?;
    let token = opts.token.clone().unwrap_or_else(Token::generate);
    bootstrap::create_token(
        &client,
        &token,
        opts.token_ttl,
        "The default bootstrap token generated by 'kubeadm init'.",
    )
    .await?;
    println!("[bootstrap-token] Using token: {}", token.id);

    for (name, port) in [
        ("kube-controller-manager", 10257),
        ("kube-scheduler", 10259),
    ] {
        println!("[control-plane-check] Checking {name} at https://127.0.0.1:{port}/healthz");
        wait_healthz(name, port, &layout, supervisor_pid).await?;
    }
    println!(
        "[kubelet-check] Waiting for node {} to register and become Ready (up to {WAIT:?})",
        cfg.node_name
    );
    wait_node_ready(&client, &cfg.node_name, &layout, supervisor_pid).await?;
    println!(
        "[kubelet-finalize] Waiting for the kubelet's serving certificate from the cluster CA"
    );
    wait::kubelet_serving(&layout, cfg.advertise_address, supervisor_pid).await?;
    println!(
        "[mark-control-plane] Marking the node {} as control-plane by adding the label \"node-role.kubernetes.io/control-plane=''\"",
        cfg.node_name
    );
    bootstrap::mark_control_plane(&client, &cfg.node_name).await?;
    crate::addons::dns(&client, &cfg).await?;
    println!(
        "[addons] Applied essential addon: cluster DNS (kube-system/coredns, Service kube-dns at {})",
        cfg.cluster_dns()?
    );

    let hash = token::ca_cert_hash(&ca)?;
    let admin_conf = layout.kubeconfig("admin.conf");
    println!(
        "\nYour Kubernetes control-plane has initialized successfully! ({:.1}s)\n\n\
To start using your cluster:\n\n  export KUBECONFIG={admin}\n  kubectl get nodes\n\n\
The components run under a supervisor (pid {supervisor_pid}) and log to {logs}.\n\
`kubeadm reset --data-dir {dir}` stops everything and removes what kubeadm created.\n\n\
Then you can join any number of worker nodes by running the following on each as root:\n\n\
{join}\n",
        started.elapsed().as_secs_f64(),
        admin = admin_conf.display(),
        logs = layout.logs().display(),
        dir = layout.root.display(),
        join = join_command(&cfg.api_server, &token, &hash),
    );
    Ok(())
}

/// The command a worker runs to join.
pub fn join_command(api_server: &str, token: &Token, ca_hash: &str) -> String {
    format!(
        "kubeadm join {} --token {token} \\\n\t--discovery-token-ca-cert-hash {ca_hash}",
        api_server.trim_start_matches("https://")
    )
}

fn new_config(opts: &InitOptions) -> anyhow::Result<NodeConfig> {
    let address = match opts.advertise_address {
        Some(a) => a,
        None => default_address()?,
    };
    let node_name = opts.node_name.clone().unwrap_or_else(hostname);
    Ok(NodeConfig {
        role: Role::ControlPlane,
        api_server: format!("https://{}", socket_host(address, opts.api_port)),
        api_port: opts.api_port,
        node_name,
        advertise_address: address,
        pod_network_cidr: opts.pod_network_cidr.clone(),
        service_cidr: opts.service_cidr.clone(),
        dns_domain: opts.dns_domain.clone(),
        etcd_servers: opts.etcd_servers.clone(),
        cri_socket: opts.cri_socket.clone(),
        bin_dir: opts.bin_dir.clone(),
        extra_args: opts.extra_args.clone(),
        verbosity: opts.verbosity,
    })
}

fn socket_host(address: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

/// The machine's hostname, lowercased (a node name must be a DNS subdomain).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_else(|_| "localhost".into())
        .trim()
        .to_lowercase()
}

/// The address of the default route's interface, as upstream picks the advertise address;
/// without a default route, the first global IPv4 address.
pub fn default_address() -> anyhow::Result<IpAddr> {
    let run = |args: &[&str]| -> String {
        std::process::Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let route = run(&["-4", "route", "get", "1.1.1.1"]);
    let mut words = route.split_whitespace();
    if words.by_ref().any(|w| w == "src")
        && let Some(Ok(a)) = words.next().map(str::parse)
    {
        return Ok(a);
    }
    let addrs = run(&["-4", "-o", "addr", "show", "scope", "global"]);
    for line in addrs.lines() {
        let mut words = line.split_whitespace();
        if words.by_ref().any(|w| w == "inet")
            && let Some(Ok(a)) = words
                .next()
                .and_then(|c| c.split('/').next())
                .map(str::parse)
        {
            return Ok(a);
        }
    }
    anyhow::bail!(
        "no address to advertise: this host has no global IPv4 address; pass --apiserver-advertise-address"
    )
}

async fn wait_api(admin: &Path, layout: &Layout, pid: u32) -> anyhow::Result<kube::Client> {
    let mut progress = wait::Progress::new(WAIT);
    loop {
        wait::check_supervisor(layout, pid)?;
        if let Ok(client) = common::client::client(Some(admin)).await
            && let Ok(body) = client
                .request_text(http::Request::get("/healthz").body(Vec::new())?)
                .await
            && body.trim() == "ok"
        {
            return Ok(client);
        }
        progress.tick("the API server").map_err(|e| {
            e.context(format!(
                "the apiserver's log ends with:\n{}",
                wait::tail(&layout.logs().join("kube-apiserver.log"), 20)
            ))
        })?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until a component's /healthz on this host answers 200 "ok".
async fn wait_healthz(name: &str, port: u16, layout: &Layout, pid: u32) -> anyhow::Result<()> {
    let mut progress = wait::Progress::new(WAIT);
    loop {
        wait::check_supervisor(layout, pid)?;
        if healthz(port).await {
            return Ok(());
        }
        progress
            .tick(&format!("{name} to be healthy"))
            .map_err(|e| e.context(wait::tail(&layout.logs().join(format!("{name}.log")), 20)))?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One HTTPS GET of /healthz, the component's certificate not verified (as upstream's
/// control-plane check: the components serve self-signed certificates).
async fn healthz(port: u16) -> bool {
    let client = common::tls::insecure_client();
    let attempt = common::health::https_get(port, "/healthz", client, None);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok((200, body))) if body == "ok"
    )
}

async fn wait_node_ready(
    client: &kube::Client,
    name: &str,
    layout: &Layout,
    pid: u32,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut progress = wait::Progress::new(WAIT);
    loop {
        wait::check_supervisor(layout, pid)?;
        if let Ok(Some(node)) = nodes.get_opt(name).await
            && node_ready(&node)
        {
            return Ok(());
        }
        progress
            .tick(&format!("node {name} to be Ready"))
            .map_err(|e| {
                e.context(format!(
                    "the kubelet's log ends with:\n{}",
                    wait::tail(&layout.logs().join("kubelet.log"), 20)
                ))
            })?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
