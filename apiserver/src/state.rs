//! The state every request shares: the store and its watch cache, the allocators,
//! authentication and authorization, admission, limits and metrics. `server` builds it
//! from the flags; everything below the HTTP layer reads it.

use std::sync::Arc;

use crate::auth::Auth;
use crate::cache::Cache;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::services::Allocator;
use crate::storage::Store;
use crate::storage::encryption::EncryptedStore;

/// State shared by every request.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The encryption layer of `store`, for its health check; None without
    /// --encryption-provider-config.
    pub encryption: Option<Arc<EncryptedStore>>,
    pub cache: Arc<Cache>,
    /// The key prefix of every object (`--etcd-prefix`).
    pub root: String,
    pub services: Arc<Allocator>,
    pub metrics: Metrics,
    /// host:port clients reach this server at, for /api's serverAddressByClientCIDRs.
    pub server_address: String,
    /// Namespaces this server marked terminating. Writes into them are refused at once, even
    /// while the watch cache has not yet seen the change (upstream's NamespaceLifecycle admission
    /// closes the same gap with a live lookup).
    pub terminating_namespaces: parking_lot::Mutex<std::collections::HashSet<String>>,
    pub auth: Auth,
    /// The admission plugins that run on writes.
    pub admission: crate::admission::Plugins,
    /// How kubelets are dialed for pods/log, exec, attach, portforward and nodes/proxy: their
    /// serving certificates are not verified (no --kubelet-certificate-authority), ours is
    /// presented when configured.
    pub kubelet_tls: Arc<rustls::ClientConfig>,
    /// In-flight limits and request deadlines.
    pub limits: Arc<Limits>,
    /// Picks a name for an object created with generateName.
    pub generate_name: fn(&str) -> String,
    /// The audit policy and backends; None when auditing is off.
    pub audit: Option<Arc<crate::audit::Auditor>>,
}
