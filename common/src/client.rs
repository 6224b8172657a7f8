//! Building an API client from `--kubeconfig` (or, without one, the in-cluster or default
//! kubeconfig, as client-go does).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client for the cluster the kubeconfig names; `qps`-style throttling is not applied.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| anyhow::anyhow!("no --kubeconfig given and none found: {e}"))?,
    };
    Ok(kube::Client::try_from(config)?)
}
