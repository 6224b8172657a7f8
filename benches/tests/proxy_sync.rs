//! The proxy-sync harness at a small scale: the rules land in a real nftables table and a
//! one-endpoint change writes a handful of statements, not the table (the full run is
//! `cargo run --release -p benches --bin proxy-sync`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_endpoint_change_costs_what_changed() {
    let r = benches::proxy_sync::proxy_sync(100, 10, 3).await.unwrap();
    // 100 services: a service chain, an external chain and 10 endpoint chains each.
    assert!(r.rules > 100 * 12, "{r:?}");
    // Flush and refill one service chain (a rule per endpoint), drop one endpoint chain.
    assert!(r.one_endpoint_ops <= 10 + 3, "{r:?}");
    // A service chain, an external chain, 10 endpoint chains and their elements.
    assert!(r.one_service_added_ops < 60, "{r:?}");
    assert!(r.one_endpoint_ms < r.full_sync_ms, "{r:?}");
}
