//! The kubelet's `--config` file: a KubeletConfiguration (kubelet.config.k8s.io/v1beta1),
//! as upstream reads it. Its fields stand for the flags of the same meaning; a flag given on
//! the command line wins over the file (upstream's precedence). Only the fields tetsu's
//! kubelet acts on are read; others are reported, not silently taken for applied.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
pub const KIND: &str = "KubeletConfiguration";

/// The fields of a KubeletConfiguration the kubelet reads (each None when absent).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Option<Vec<IpAddr>>,
    pub cluster_domain: Option<String>,
    pub resolv_conf: Option<String>,
    pub static_pod_path: Option<PathBuf>,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub healthz_bind_address: Option<IpAddr>,
    pub healthz_port: Option<u16>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub rotate_certificates: Option<bool>,
    /// --rotate-server-certificates.
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: Option<bool>,
    #[serde(default)]
    pub authentication: Authentication,
    #[serde(default)]
    pub authorization: Authorization,
    /// Every other field, reported as not applied.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    #[serde(default)]
    pub x509: X509,
    #[serde(default)]
    pub webhook: AuthnWebhook,
    #[serde(default)]
    pub anonymous: Anonymous,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509 {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthnWebhook {
    pub enabled: Option<bool>,
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Anonymous {
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub mode: Option<String>,
    #[serde(default)]
    pub webhook: AuthzWebhook,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzWebhook {
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: Option<String>,
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: Option<String>,
}

impl KubeletConfiguration {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> crate::Result<KubeletConfiguration> {
        let failed = |why: String| {
            Error::Invalid(format!(
                "failed to load Kubelet config file {}, error: {why}",
                path.display()
            ))
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        Self::parse(&text).map_err(failed)
    }

    /// Parses a file's text: YAML (or JSON) of kind KubeletConfiguration.
    pub fn parse(text: &str) -> Result<KubeletConfiguration, String> {
        let config: KubeletConfiguration =
            serde_yaml::from_str(text).map_err(|e| format!("failed to decode: {e}"))?;
        match (config.api_version.as_deref(), config.kind.as_deref()) {
            (Some(API_VERSION), Some(KIND)) => Ok(config),
            (version, kind) => Err(format!(
                "no kind {:?} is registered for version {:?}: expected apiVersion {API_VERSION} and kind {KIND}",
                kind.unwrap_or_default(),
                version.unwrap_or_default()
            )),
        }
    }

    /// The fields present that this kubelet does not act on.
    pub fn ignored_fields(&self) -> Vec<&str> {
        self.other.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_sets_its_fields_and_names_the_ones_it_ignores() {
        let c = KubeletConfiguration::parse(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             clusterDNS: [10.96.0.10]\nclusterDomain: example.org\nresolvConf: /run/r.conf\n\
             staticPodPath: /etc/kubernetes/manifests\nserverTLSBootstrap: true\n\
             authentication:\n  x509:\n    clientCAFile: /pki/ca.crt\n  webhook:\n    enabled: true\n    cacheTTL: 2m0s\n  anonymous:\n    enabled: false\n\
             authorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 5m0s\n\
             cgroupDriver: systemd\nmaxPods: 110\n",
        )
        .unwrap();
        assert_eq!(c.cluster_dns, Some(vec!["10.96.0.10".parse().unwrap()]));
        assert_eq!(c.cluster_domain.as_deref(), Some("example.org"));
        assert_eq!(c.resolv_conf.as_deref(), Some("/run/r.conf"));
        assert_eq!(c.server_tls_bootstrap, Some(true));
        assert_eq!(
            c.authentication.x509.client_ca_file,
            Some("/pki/ca.crt".into())
        );
        assert_eq!(c.authentication.webhook.cache_ttl.as_deref(), Some("2m0s"));
        assert_eq!(c.authentication.anonymous.enabled, Some(false));
        assert_eq!(c.authorization.mode.as_deref(), Some("Webhook"));
        assert_eq!(c.port, None);
        assert_eq!(c.ignored_fields(), ["cgroupDriver", "maxPods"]);
    }

    #[test]
    fn another_kind_or_a_bad_value_is_refused_with_the_files_name() {
        let e = KubeletConfiguration::parse("apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert!(
            e.contains("expected apiVersion kubelet.config.k8s.io/v1beta1"),
            "{e}"
        );
        let e = KubeletConfiguration::parse(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDNS: [not-an-ip]\n",
        )
        .unwrap_err();
        assert!(e.starts_with("failed to decode"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.yaml");
        let e = KubeletConfiguration::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "failed to load Kubelet config file {}",
                path.display()
            )),
            "{e}"
        );
    }
}
