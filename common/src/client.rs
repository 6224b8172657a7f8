//! Building an API client from `--kubeconfig` (or, without one, the in-cluster or default
//! kubeconfig, as client-go does).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::invalid;

/// A client for the cluster the kubeconfig names; `qps`-style throttling is not applied.
pub async fn client(kubeconfig: Option<&Path>) -> crate::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| invalid(format_args!("reading kubeconfig {}", path.display()), e))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| invalid(format_args!("kubeconfig {}", path.display()), e))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| invalid("no --kubeconfig given and none found", e))?,
    };
    Ok(kube::Client::try_from(config)?)
}
