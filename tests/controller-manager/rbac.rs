//! ClusterRole aggregation as `kubectl get clusterrole` shows it.

use crate::support;

use std::time::Duration;

use support::{cluster, eventually};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_roles_gather_the_rules_of_the_roles_they_select() {
    let c = cluster(&["clusterrole-aggregation"]).await;
    c.kubectl_ok(&[
        "create",
        "clusterrole",
        "monitoring",
        "--aggregation-rule=team=monitoring",
    ])
    .await;
    c.kubectl_ok(&[
        "create",
        "clusterrole",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ])
    .await;
    c.kubectl_ok(&["label", "clusterrole", "pod-reader", "team=monitoring"])
        .await;
    let args = [
        "get",
        "clusterrole",
        "monitoring",
        "-o",
        "jsonpath={.rules}",
    ];
    eventually("the aggregated rules", T, || async {
        let out = c.kubectl(&args).await.1;
        (out.contains("\"pods\"") && out.contains("\"list\"")).then_some(())
    })
    .await;
    // A role that stops matching takes its rules with it.
    c.kubectl_ok(&["label", "clusterrole", "pod-reader", "team-"])
        .await;
    eventually("the rules removed", T, || async {
        let out = c.kubectl(&args).await.1;
        (!out.contains("pods")).then_some(())
    })
    .await;
}
