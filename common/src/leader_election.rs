//! Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does: the
//! holder renews the lease every retry period; a candidate takes it over once it has not
//! been renewed for the lease duration. Writes are guarded by the lease's resourceVersion,
//! so two candidates never both win.

use crate::api_errors::{is_already_exists, is_conflict};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Upstream's defaults: --leader-elect-lease-duration 15s, -renew-deadline 10s, -retry-period 2s.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl LeaderElection {
    /// One attempt to acquire or renew; true if we hold the lease afterwards.
    async fn try_acquire_or_renew(&self, api: &Api<Lease>) -> kube::Result<bool> {
        let now = Utc::now();
        let spec = |transitions: i64, acquire: DateTime<Utc>| {
            json!({
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_duration.as_secs(),
                "acquireTime": rfc3339(acquire),
                "renewTime": rfc3339(now),
                "leaseTransitions": transitions,
            })
        };
        let existing = match api.get_opt(&self.name).await? {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": spec(0, now),
                }))
                .expect("a valid lease");
                return match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(e) if is_already_exists(&e) => Ok(false),
                    Err(e) => Err(e),
                };
            }
            Some(l) => l,
        };
        let current =
            serde_json::to_value(existing.spec.clone().unwrap_or_default()).unwrap_or_default();
        let holder = current["holderIdentity"].as_str().unwrap_or("");
        let duration = current["leaseDurationSeconds"].as_i64().unwrap_or(15);
        let renewed = parse_time(&current["renewTime"]);
        let transitions = current["leaseTransitions"].as_i64().unwrap_or(0);
        let ours = holder == self.identity;
        let expired = renewed.is_none_or(|r| r + chrono::Duration::seconds(duration) < now);
        if !ours && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let acquire = if ours {
            parse_time(&current["acquireTime"]).unwrap_or(now)
        } else {
            now
        };
        let mut lease = existing.clone();
        lease.spec = serde_json::from_value(spec(
            if ours { transitions } else { transitions + 1 },
            acquire,
        ))
        .ok();
        match api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate holds the lease, then keeps renewing it in the
    /// background. The returned receiver turns false (and stays) if leadership is lost:
    /// the component should then stop, as upstream's components exit.
    pub async fn acquire(self, client: kube::Client) -> tokio::sync::watch::Receiver<bool> {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        tracing::info!(lease = %format!("{}/{}", self.namespace, self.name), "attempting to acquire leader lease");
        loop {
            match self.try_acquire_or_renew(&api).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "error retrieving resource lock"),
            }
            tokio::time::sleep(self.retry_period).await;
        }
        tracing::info!(identity = %self.identity, "successfully acquired lease");
        let (tx, rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            let mut last_renew = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.retry_period).await;
                match self.try_acquire_or_renew(&api).await {
                    Ok(true) => last_renew = tokio::time::Instant::now(),
                    Ok(false) => {
                        tracing::error!("leader lease taken by another candidate");
                        tx.send_replace(false);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "failed to renew lease"),
                }
                if last_renew.elapsed() > self.renew_deadline {
                    tracing::error!("failed to renew the lease within the renew deadline");
                    tx.send_replace(false);
                    return;
                }
            }
        });
        rx
    }
}
