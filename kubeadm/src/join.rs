//! `kubeadm join`: token discovery as upstream does it, then a worker node. Discovery reads
//! the public `cluster-info` ConfigMap over TLS it cannot verify yet, checks the token's
//! JWS signature on it (proof the apiserver knows the token's secret) and the CA against
//! the --discovery-token-ca-cert-hash pins, then reads it again over TLS verified by that
//! CA. The kubelet then bootstraps its own certificate with the token (a CSR the
//! controller-manager approves and signs), and kube-proxy follows.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::Api;

use crate::config::{Layout, NodeConfig, Role};
use crate::token::{self, Token};
use crate::{preflight, supervisor, wait};

#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// host:port of the apiserver.
    pub api_server_endpoint: String,
    pub token: Token,
    pub ca_cert_hashes: Vec<String>,
    pub unsafe_skip_ca_verification: bool,
    pub data_dir: PathBuf,
    pub node_name: Option<String>,
    pub node_ip: Option<IpAddr>,
    pub cri_socket: Option<String>,
    pub bin_dir: PathBuf,
    pub ignore_preflight_errors: Vec<String>,
    /// More flags for the node's components, by name (--component-arg).
    pub extra_args: std::collections::BTreeMap<String, Vec<String>>,
    pub verbosity: u8,
}

const WAIT: Duration = Duration::from_secs(240);

pub async fn run(opts: JoinOptions) -> anyhow::Result<()> {
    if opts.ca_cert_hashes.is_empty() && !opts.unsafe_skip_ca_verification {
        anyhow::bail!(
            "discovery-token-ca-cert-hash is required unless discovery-token-unsafe-skip-ca-verification is set: \
             an attacker could otherwise impersonate the control plane (`kubeadm token create --print-join-command` on the control plane prints it)"
        );
    }
    let layout = Layout::new(&opts.data_dir);
    println!("[preflight] Running pre-flight checks");
    let address = match opts.node_ip {
        Some(a) => a,
        None => crate::init::default_address()?,
    };
    let mut cfg = NodeConfig {
        role: Role::Worker,
        node_name: opts.node_name.clone().unwrap_or_else(crate::init::hostname),
        advertise_address: address,
        api_server: format!("https://{}", opts.api_server_endpoint),
        api_port: 0,
        pod_network_cidr: String::new(),
        service_cidr: String::new(),
        dns_domain: String::new(),
        etcd_servers: Vec::new(),
        cri_socket: opts.cri_socket.clone(),
        bin_dir: opts.bin_dir.clone(),
        extra_args: opts.extra_args.clone(),
        verbosity: opts.verbosity,
    };
    let failures = preflight::check(&cfg, &layout, &opts.ignore_preflight_errors);
    if !failures.is_empty() {
        return Err(preflight::report(&failures));
    }

    println!(
        "[discovery] Trying to connect to API Server \"{}\"",
        opts.api_server_endpoint
    );
    let (server, ca) = discover(&opts).await?;
    println!(
        "[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots, will use API Server \"{}\"",
        opts.api_server_endpoint
    );
    cfg.api_server = server;

    common::files::create_private_dir(&opts.data_dir)?;
    let bootstrap = layout.kubeconfig("bootstrap-kubelet.conf");
    // It holds the bootstrap token.
    common::files::write_private(
        &bootstrap,
        token_kubeconfig(&cfg.api_server, &ca, &opts.token).as_bytes(),
    )?;
    std::fs::write(layout.pki().join("ca.crt"), &ca).or_else(|_| {
        common::files::create_private_dir(&layout.pki())?;
        std::fs::write(layout.pki().join("ca.crt"), &ca)
    })?;
    println!(
        "[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"..."
    );
    let client = common::client::client(Some(&bootstrap)).await?;
    apply_cluster_configuration(&client, &mut cfg).await?;
    cfg.save(&opts.data_dir)?;

    println!(
        "[kubelet-start] Starting the kubelet and kube-proxy (logs in {})",
        layout.logs().display()
    );
    let started = Instant::now();
    let pid = supervisor::spawn_detached(&layout)?;
    println!("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
    let kubelet_conf = layout.kubeconfig("kubelet.conf");
    let mut progress = wait::Progress::new(WAIT);
    while !kubelet_conf.exists() {
        wait::check_supervisor(&layout, pid)?;
        progress
            .tick("the kubelet's TLS bootstrap")
            .map_err(|e| e.context(wait::tail(&layout.logs().join("kubelet.log"), 20)))?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let client = common::client::client(Some(&kubelet_conf)).await?;
    let nodes: Api<Node> = Api::all(client);
    let mut progress = wait::Progress::new(WAIT);
    loop {
        wait::check_supervisor(&layout, pid)?;
        if let Ok(Some(node)) = nodes.get_opt(&cfg.node_name).await
            && crate::init::node_ready(&node)
        {
            break;
        }
        progress
            .tick(&format!("node {} to be Ready", cfg.node_name))
            .map_err(|e| e.context(wait::tail(&layout.logs().join("kubelet.log"), 20)))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "[kubelet-finalize] Waiting for the kubelet's serving certificate from the cluster CA"
    );
    wait::kubelet_serving(&layout, cfg.advertise_address, pid).await?;
    println!(
        "\nThis node has joined the cluster ({:.1}s):\n\
* Certificate signing request was sent to apiserver and a response was received.\n\
* The Kubelet was informed of the new secure connection details.\n\n\
Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A kubeconfig authenticating with the bootstrap token.
fn token_kubeconfig(server: &str, ca_pem: &str, token: &Token) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: tls-bootstrap-token-user@kubernetes\n  context: {{cluster: kubernetes, user: tls-bootstrap-token-user}}\ncurrent-context: tls-bootstrap-token-user@kubernetes\nusers:\n- name: tls-bootstrap-token-user\n  user:\n    token: {token}\n"
    )
}

/// Finds the cluster from the token: (the apiserver's URL, the cluster CA in PEM).
async fn discover(opts: &JoinOptions) -> anyhow::Result<(String, String)> {
    let url = format!("https://{}", opts.api_server_endpoint);
    let mut progress = wait::Progress::new(Duration::from_secs(300));
    let (kubeconfig, signature) = loop {
        match fetch_cluster_info(&url, None, &opts.token.id).await {
            Ok((k, Some(sig))) => break (k, sig),
            Ok((_, None)) => println!(
                "[discovery] there is no JWS signed token in the cluster-info ConfigMap. This token id {:?} is invalid for this cluster, or if the token was just created the signature may not be ready yet; retrying",
                opts.token.id
            ),
            Err(e) => println!(
                "[discovery] failed to request the cluster-info ConfigMap: {e:#}; retrying"
            ),
        }
        progress.tick("the cluster-info ConfigMap")?;
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    if !common::bootstraptoken::verify_detached(
        &signature,
        &kubeconfig,
        &opts.token.id,
        &opts.token.secret,
    ) {
        anyhow::bail!(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server"
        );
    }
    let (server, ca) = parse_cluster_info(&kubeconfig)?;
    if !opts.unsafe_skip_ca_verification && !token::ca_matches(&ca, &opts.ca_cert_hashes)? {
        anyhow::bail!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{}\" are pinned",
            token::ca_cert_hash(&ca)?
        );
    }
    // Once more over TLS verified by the CA just trusted: the same object must come back.
    let (again, _) = fetch_cluster_info(&url, Some(&ca), &opts.token.id)
        .await
        .context("reading cluster-info again over TLS verified by the cluster CA")?;
    if again != kubeconfig {
        anyhow::bail!("cluster-info changed between the two reads; refusing to trust it");
    }
    Ok((server, ca))
}

/// GETs kube-public/cluster-info anonymously: (its kubeconfig, the token's signature).
async fn fetch_cluster_info(
    url: &str,
    ca_pem: Option<&str>,
    token_id: &str,
) -> anyhow::Result<(String, Option<String>)> {
    let mut config = kube::Config::new(url.parse()?);
    match ca_pem {
        Some(pem) => {
            let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("the cluster CA is not PEM: {e}"))?;
            config.root_cert = Some(vec![der.contents]);
        }
        None => config.accept_invalid_certs = true,
    }
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(10));
    let client = kube::Client::try_from(config)?;
    let cm = Api::<ConfigMap>::namespaced(client, "kube-public")
        .get("cluster-info")
        .await?;
    let mut data = cm.data.unwrap_or_default();
    let kubeconfig = data
        .remove("kubeconfig")
        .context("the cluster-info ConfigMap has no kubeconfig")?;
    Ok((
        kubeconfig,
        data.remove(&format!("jws-kubeconfig-{token_id}")),
    ))
}

/// The server and CA of cluster-info's kubeconfig.
fn parse_cluster_info(kubeconfig: &str) -> anyhow::Result<(String, String)> {
    use base64::Engine;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(kubeconfig).context("cluster-info's kubeconfig")?;
    let cluster = &doc["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .context("cluster-info's kubeconfig names no server")?
        .to_owned();
    let ca = cluster["certificate-authority-data"]
        .as_str()
        .context("cluster-info's kubeconfig has no certificate-authority-data")?;
    let ca = base64::engine::general_purpose::STANDARD.decode(ca.trim())?;
    Ok((server, String::from_utf8(ca)?))
}

/// Takes the pod network and service CIDRs from kube-system/kubeadm-config.
async fn apply_cluster_configuration(
    client: &kube::Client,
    cfg: &mut NodeConfig,
) -> anyhow::Result<()> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get("kubeadm-config")
        .await
        .context("reading kube-system/kubeadm-config with the bootstrap token")?;
    let text = cm
        .data
        .and_then(|mut d| d.remove("ClusterConfiguration"))
        .context("kubeadm-config has no ClusterConfiguration")?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let net = &doc["networking"];
    let field = |name: &str, default: &str| net[name].as_str().unwrap_or(default).to_owned();
    cfg.pod_network_cidr = field("podSubnet", "10.244.0.0/16");
    cfg.service_cidr = field("serviceSubnet", "10.96.0.0/12");
    cfg.dns_domain = field("dnsDomain", "cluster.local");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_yields_the_server_and_the_ca() {
        let kubeconfig = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0tLS1CRUdJTg==\n    server: https://10.0.0.2:6443\n  name: \"\"\n";
        let (server, ca) = parse_cluster_info(kubeconfig).unwrap();
        assert_eq!(server, "https://10.0.0.2:6443");
        assert_eq!(ca, "-----BEGIN");
    }
}
