//! proxy-sync: what a kube-proxy sync costs with many Services (issue #6, upstream's
//! nftables mode as the anchor: its cost follows the change). N Services with E endpoints
//! each are fed to the proxier in a network namespace of its own; we time the first
//! (full) sync, then a sync after one endpoint turns unready, then after one Service is
//! added. Each time covers rendering, the diff and the `nft -f` transaction.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::host::Host;
use proxy::nftables::Config;
use proxy::proxier::{Proxier, SyncReport};
use proxy::testing::Netns;
use serde_json::json;

#[derive(Debug, serde::Serialize)]
pub struct Result {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub rules: usize,
    pub full_sync_ms: f64,
    /// Median over the runs of a one-endpoint change.
    pub one_endpoint_ms: f64,
    pub one_endpoint_ops: usize,
    pub one_service_added_ms: f64,
    pub one_service_added_ops: usize,
}

/// NodePort Services while node ports last (2,768 of them), ClusterIP ones after.
fn service(i: usize) -> Service {
    let (kind, node_port) = if i < 2700 {
        ("NodePort", Some(30000 + i))
    } else {
        ("ClusterIP", None)
    };
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("svc-{i}")},
        "spec": {"type": kind, "clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1),
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": node_port}]}
    }))
    .unwrap()
}

fn slice(i: usize, endpoints: usize, unready: Option<usize>) -> EndpointSlice {
    let eps: Vec<_> = (0..endpoints)
        .map(|e| {
            let n = i * endpoints + e;
            json!({"addresses": [format!("10.244.{}.{}", n / 250, n % 250 + 1)],
                   "nodeName": format!("node-{}", e % 3),
                   "conditions": {"ready": unready != Some(e)}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("svc-{i}-abcde"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn proxy_sync(services: usize, endpoints: usize, runs: usize) -> anyhow::Result<Result> {
    let ns = Netns::new("tbench");
    let proxier = Proxier::new(
        Host::netns(&ns.name),
        Config {
            cluster_cidr: Some("10.244.0.0/16".into()),
        },
        "node-0",
    );
    {
        let mut t = proxier.tracker();
        for i in 0..services {
            t.service_changed(service(i));
            t.slice_changed(slice(i, endpoints, None));
        }
    }
    let full = proxier.sync().await?;
    anyhow::ensure!(full.full, "the first sync rewrites the table");
    // One endpoint of one service turns unready, then ready again.
    let mut one: Vec<SyncReport> = Vec::new();
    for r in 0..runs {
        let i = (r * 7919) % services;
        proxier
            .tracker()
            .slice_changed(slice(i, endpoints, Some(r % endpoints)));
        one.push(proxier.sync().await?);
        proxier.tracker().slice_changed(slice(i, endpoints, None));
        proxier.sync().await?;
    }
    one.sort_by_key(|r| r.took);
    let median = one[one.len() / 2];
    {
        let mut t = proxier.tracker();
        t.service_changed(service(services));
        t.slice_changed(slice(services, endpoints, None));
    }
    let added = proxier.sync().await?;
    // The table holds what the proxier counted.
    let listed = Host::netns(&ns.name)
        .run("nft", &["list", "table", "ip", proxy::nftables::TABLE])
        .await?;
    anyhow::ensure!(
        listed.contains("svc-0/tcp/http"),
        "the table lacks the first service"
    );
    Ok(Result {
        services,
        endpoints_per_service: endpoints,
        rules: added.rules,
        full_sync_ms: ms(full.took),
        one_endpoint_ms: ms(median.took),
        one_endpoint_ops: median.ops,
        one_service_added_ms: ms(added.took),
        one_service_added_ops: added.ops,
    })
}
