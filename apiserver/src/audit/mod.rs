//! Auditing (audit.k8s.io/v1): who did what, when, and what the server answered, as upstream's
//! `--audit-policy-file` with its log and webhook backends.
//!
//! [`policy`] gives each request a level once it is authenticated; [`filter`] records the
//! request's stages (the middleware around `auth::filter`, which reports the user, the
//! impersonated user and the authorization decision to it); [`event`] is the Event and its
//! JSON; [`queue`] bounds what waits for the backends, [`log`] and [`webhook`]. Without a
//! policy file nothing is built: `ApiState::audit` is None and only the Audit-ID header is set.

pub mod event;
pub mod filter;
pub mod log;
pub mod policy;
pub mod queue;
pub mod truncate;
pub mod webhook;

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use filter::{AuditContext, filter};
use policy::{Level, Policy};
use queue::Queue;

/// The `--audit-*` flags.
#[derive(Clone, Debug, Default)]
pub struct AuditConfig {
    pub policy_file: Option<PathBuf>,
    /// The log backend; None without `--audit-log-path`.
    pub log: Option<log::LogConfig>,
    /// The webhook backend; None without `--audit-webhook-config-file`.
    pub webhook: Option<webhook::WebhookConfig>,
}

/// The policy and the backends, shared by every request.
pub struct Auditor {
    policy: Policy,
    backends: Vec<Queue>,
    events: AtomicU64,
    /// Requests by the level the policy gave them (None included), indexed by `Level as usize`.
    levels: [AtomicU64; 4],
}

impl Auditor {
    /// Loads the policy and starts the backends; None when auditing is off (no policy, or
    /// no backend to send to, as upstream).
    pub async fn start(config: &AuditConfig) -> crate::Result<Option<Arc<Auditor>>> {
        let Some(path) = &config.policy_file else {
            if config.log.is_some() || config.webhook.is_some() {
                tracing::info!("no audit policy file provided, no audit events will be recorded");
            }
            return Ok(None);
        };
        let policy = Policy::load(path)
            .map_err(|e| crate::Error::Invalid(format!("loading audit policy file: {e}")))?;
        let mut backends = Vec::new();
        if let Some(log) = &config.log {
            backends.push(log::start(log)?);
        }
        if let Some(webhook) = &config.webhook {
            backends.push(webhook::start(webhook).await?);
        }
        if backends.is_empty() {
            tracing::info!(
                "an audit policy but no --audit-log-path or --audit-webhook-config-file: no audit events will be recorded"
            );
            return Ok(None);
        }
        Ok(Some(Arc::new(Auditor::new(policy, backends))))
    }

    pub fn new(policy: Policy, backends: Vec<Queue>) -> Auditor {
        Auditor {
            policy,
            backends,
            events: AtomicU64::new(0),
            levels: Default::default(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn observe_level(&self, level: Level) {
        self.levels[level as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Hands an event to every backend, never waiting.
    fn emit(&self, event: event::Event) {
        let event = Arc::new(event);
        self.events.fetch_add(1, Ordering::Relaxed);
        for backend in &self.backends {
            backend.push(&event);
        }
    }

    /// Upstream's audit metrics in Prometheus text.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP apiserver_audit_event_total Counter of audit events generated and sent to the audit backend.\n# TYPE apiserver_audit_event_total counter\napiserver_audit_event_total {}",
            self.events.load(Ordering::Relaxed)
        );
        out.push_str("# HELP apiserver_audit_error_total Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.\n# TYPE apiserver_audit_error_total counter\n");
        for backend in &self.backends {
            let _ = writeln!(
                out,
                "apiserver_audit_error_total{{plugin=\"{}\"}} {}",
                backend.plugin,
                backend.errors()
            );
        }
        out.push_str("# HELP apiserver_audit_level_total Counter of policy levels for audit events (1 per request).\n# TYPE apiserver_audit_level_total counter\n");
        for level in [
            Level::None,
            Level::Metadata,
            Level::Request,
            Level::RequestResponse,
        ] {
            let _ = writeln!(
                out,
                "apiserver_audit_level_total{{level=\"{}\"}} {}",
                level.as_str(),
                self.levels[level as usize].load(Ordering::Relaxed)
            );
        }
    }
}
