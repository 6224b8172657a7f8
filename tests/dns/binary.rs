//! The kube-dns binary in a network namespace of its own (its apiserver reached through a
//! relay on the namespace's loopback): a bad flag is refused with a clear message; it
//! serves /health at once and /ready once the cluster is listed, answers busybox's
//! nslookup, counts requests on /metrics as CoreDNS names them, and stops on SIGTERM.

use std::process::Command;
use std::time::Duration;

use proxy::testing::Netns;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_names_serves_health_readiness_and_metrics_and_stops() {
    let bin = cluster_tests::bin("kube-dns");
    let bin = bin.to_str().expect("a UTF-8 path");
    let out = Command::new(bin)
        .args(["--resolv-conf", "/nonexistent/resolv.conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kube-dns: reading /nonexistent/resolv.conf"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let ns = Netns::new("tdns");
    let port = ns.relay_to(server.addr);
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &format!("http://127.0.0.1:{port}"));
    let mut dns = Command::new("ip")
        .args(["netns", "exec", &ns.name, bin, "--kubeconfig"])
        .arg(&kubeconfig)
        .args([
            "--dns-bind-address",
            "127.0.0.1:53",
            "--health-bind-address",
            "127.0.0.1:8080",
            "--ready-bind-address",
            "127.0.0.1:8181",
            "--metrics-bind-address",
            "127.0.0.1:9153",
            "--resolv-conf",
            "",
        ])
        .spawn()
        .unwrap();
    let get = |path: &str| ns.get(&format!("http://127.0.0.1{path}"));
    cluster_tests::until("/ready", Duration::from_secs(20), async || {
        get(":8181/ready")
            .is_ok_and(|body| body == "ok")
            .then_some(())
    })
    .await;
    assert_eq!(get(":8080/health").unwrap(), "ok");

    let (ok, out) = ns.sh("busybox nslookup kubernetes.default.svc.cluster.local 127.0.0.1");
    assert!(ok && out.contains("10.96.0.1"), "{out}");
    let (ok, out) = ns.sh(
        "busybox nslookup -type=srv _https._tcp.kubernetes.default.svc.cluster.local 127.0.0.1",
    );
    assert!(
        ok && out.contains("443") && out.contains("kubernetes.default.svc.cluster.local"),
        "{out}"
    );
    let (ok, out) = ns.sh("busybox nslookup nothing.default.svc.cluster.local 127.0.0.1");
    assert!(!ok && out.contains("NXDOMAIN"), "{out}");
    let metrics = get(":9153/metrics").unwrap();
    assert!(
        metrics.contains("coredns_dns_requests_total{server=\"dns://:53\",zone=\".\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"}")
            && metrics.contains("rcode=\"NXDOMAIN\""),
        "{metrics}"
    );

    // SIGTERM: a clean exit.
    // `ip netns exec` execs the binary, so the child is kube-dns itself.
    let killed = Command::new("kill")
        .args(["-TERM", &dns.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = cluster_tests::until(
        "kube-dns to stop on SIGTERM",
        Duration::from_secs(10),
        async || dns.try_wait().unwrap(),
    )
    .await;
    assert!(status.success(), "{status}");
}
