//! Certificates that renew themselves: with --cluster-signing-duration of two minutes, a
//! joined worker's kubelet renews its client and serving certificates (new CSRs, approved by
//! csrapproving and signed; its stores' links moved; the new serving certificate served at
//! the next handshake) while its pod keeps running, `kubectl logs` (the kubelet checked
//! against the cluster CA) keeps working, and the node keeps reporting past the expiry of
//! the certificates it started with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_tests::hosts::Network;
use cluster_tests::until;
use common::dynamic_cert::DynamicCert;
use serde_json::Value;

async fn kubectl(admin: &Path, args: &[&str]) -> (bool, String, String) {
    apiserver::testing::kubectl(admin, args, None).await
}

async fn kubectl_json(admin: &Path, args: &[&str]) -> Value {
    let (ok, out, err) = kubectl(admin, args).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    serde_json::from_str(&out).unwrap()
}

const TICKER: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"},
  "spec": {"nodeName": "w1", "terminationGracePeriodSeconds": 1,
    "containers": [{"name": "ticker", "image": "busybox",
      "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]}]}}"#;

/// Where a store's `-current.pem` link points, and the certificate's expiry.
fn current(link: &Path) -> Option<(PathBuf, i64)> {
    let target = std::fs::read_link(link).ok()?;
    let pem = std::fs::read(link).ok()?;
    let (_, not_after) = DynamicCert::from_pem(&pem, &pem).ok()?.validity()?;
    Some((target, not_after))
}

/// The last tick number in the pod's log.
async fn last_tick(admin: &Path) -> Option<u64> {
    let (ok, out, _) = kubectl(admin, &["logs", "ticker", "--tail", "1"]).await;
    ok.then_some(())?;
    out.trim().strip_prefix("tick ")?.parse().ok()
}

/// (requester, signer) of the issued CSRs.
async fn issued_csrs(admin: &Path) -> Vec<(String, String)> {
    let list = kubectl_json(admin, &["get", "csr", "-o", "json"]).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["status"]["certificate"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .map(|c| {
            (
                c["spec"]["username"].as_str().unwrap_or("").to_owned(),
                c["spec"]["signerName"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_renews_its_client_and_serving_certificates_while_its_pods_run() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let w = net.add_host("w1", 3);
    let (ok, out, err) = net.init(
        cp,
        &[
            "--component-arg",
            "kube-controller-manager=--cluster-signing-duration=2m",
        ],
    );
    assert!(
        ok,
        "kubeadm init:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    let admin = net.hosts[cp].data_dir.join("admin.conf");
    let w_ip = net.hosts[w].ip.clone();
    let (ok, out, err) = net.join(w, cp, &out);
    assert!(ok, "kubeadm join:\n{out}\n{err}\n{}", net.log(w, "kubelet"));

    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(TICKER)).await;
    assert!(ok, "{out}{err}");
    // Logs need the kubelet's serving certificate, issued by the cluster CA (the apiserver
    // checks it with --kubelet-certificate-authority).
    let first_tick = until(
        "kubectl logs of the pod on w1",
        Duration::from_secs(90),
        async || last_tick(&admin).await,
    )
    .await;
    let pod = kubectl_json(&admin, &["get", "pod", "ticker", "-o", "json"]).await;
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();

    let pki = net.hosts[w].data_dir.join("kubelet/pki");
    let (client_link, serving_link) = (
        pki.join("kubelet-client-current.pem"),
        pki.join("kubelet-server-current.pem"),
    );
    let (client_first, client_expiry) = current(&client_link).expect("a client certificate");
    let (serving_first, serving_expiry) = current(&serving_link).expect("a serving certificate");
    let now = chrono::Utc::now().timestamp();
    assert!(
        client_expiry - now <= 120 && serving_expiry - now <= 120,
        "certificates of two minutes: {client_expiry} {serving_expiry} (now {now})"
    );

    // Renewed at 70-90% of two minutes: both links move to new files.
    until(
        "the client and serving certificates to be renewed",
        Duration::from_secs(150),
        async || {
            let c = current(&client_link)?;
            let s = current(&serving_link)?;
            (c.0 != client_first && s.0 != serving_first).then_some(())
        },
    )
    .await;
    let csrs = issued_csrs(&admin).await;
    let by_node = |signer: &str| {
        csrs.iter()
            .filter(|(user, s)| user == "system:node:w1" && s == signer)
            .count()
    };
    assert!(
        by_node("kubernetes.io/kube-apiserver-client-kubelet") >= 1,
        "the renewal is asked for with the node's own certificate: {csrs:?}"
    );
    assert!(
        by_node("kubernetes.io/kubelet-serving") >= 2,
        "the first serving certificate and its renewal: {csrs:?}"
    );
    // The kubelet serves the renewed certificate without a restart.
    let addr = format!("{w_ip}:10250");
    until(
        "the kubelet to serve its current certificate",
        Duration::from_secs(30),
        async || {
            let pem = std::fs::read(&serving_link).ok()?;
            let leaf = DynamicCert::from_pem(&pem, &pem).ok()?.current().cert[0].to_vec();
            (cluster_tests::served_certificate(&addr).await? == leaf).then_some(())
        },
    )
    .await;

    // Past the first certificates' expiry the node still reports (its Lease is renewed with
    // the new client certificate) and logs still flow from the same, never restarted, pod.
    let expired = client_expiry.max(serving_expiry) + 5;
    until(
        "the first certificates to expire",
        Duration::from_secs(150),
        async || (chrono::Utc::now().timestamp() > expired).then_some(()),
    )
    .await;
    let lease_renewed = async || {
        let lease = kubectl_json(
            &admin,
            &["get", "lease", "-n", "kube-node-lease", "w1", "-o", "json"],
        )
        .await;
        let renewed = lease["spec"]["renewTime"].as_str()?;
        let renewed = chrono::DateTime::parse_from_rfc3339(renewed)
            .ok()?
            .timestamp();
        (renewed > expired).then_some(())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lease_renewed().await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node's Lease was not renewed after its first certificate expired:\n{}",
            net.log(w, "kubelet")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tick = until(
        "kubectl logs after the renewal",
        Duration::from_secs(30),
        async || last_tick(&admin).await.filter(|t| *t > first_tick),
    )
    .await;
    let pod = kubectl_json(&admin, &["get", "pod", "ticker", "-o", "json"]).await;
    assert_eq!(pod["metadata"]["uid"], uid.as_str());
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["restartCount"], 0,
        "tick {tick}: {pod}"
    );
    let nodes = kubectl_json(&admin, &["get", "node", "w1", "-o", "json"]).await;
    let ready = nodes["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "True", "{ready}");
}
