//! The cluster DNS server fed by a real apiserver (issue #20): Services, EndpointSlices and
//! Namespaces written through the API are answered as the specification says, over UDP,
//! and a change is answered within moments of its write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_tests::{LocalApiServer, until};
use dns::server::{Handler, Running};
use dns::testing::{ask, data, udp_client};
use dns::zone::Zone;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use parking_lot::RwLock;
use serde_json::json;

async fn create<K>(client: &kube::Client, namespace: Option<&str>, object: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::namespaced(client.clone(), namespace.unwrap_or("app"))
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

/// A DNS server on loopback answering from a zone that `client`'s cluster feeds, once it
/// has listed everything (the second handle keeps the watches running).
async fn serve_zone(client: kube::Client) -> (Running, common::informer::Running) {
    let zone = Arc::new(RwLock::new(Zone::new("cluster.local", 30).unwrap()));
    let ready = Arc::new(AtomicBool::new(false));
    let server = Running::start(
        Handler::new(zone.clone(), None, ready.clone()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let watching = dns::watch::watch(client, zone, ready.clone()).await;
    assert!(ready.load(Ordering::Acquire));
    (server, watching)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_endpoints_and_namespaces_from_the_apiserver_answer_by_name() {
    let api = LocalApiServer::start().await;
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap();
    Api::<Namespace>::all(api.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    create::<Service>(
        &api.client,
        None,
        json!({"metadata": {"name": "web"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    create::<Service>(
        &api.client,
        None,
        json!({"metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    create::<EndpointSlice>(
        &api.client,
        None,
        json!({"metadata": {"name": "db-1",
        "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.2.7"], "hostname": "db-0"}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}),
    )
    .await;

    let (server, _watching) = serve_zone(api.client.clone()).await;
    let mut dns = udp_client(server.addr);

    let cases: &[(&str, RecordType, ResponseCode, &[&str])] = &[
        (
            "web.app.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            &["10.96.0.20"],
        ),
        (
            "_http._tcp.web.app.svc.cluster.local.",
            RecordType::SRV,
            ResponseCode::NoError,
            &["0 100 80 web.app.svc.cluster.local."],
        ),
        (
            "db.app.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            &["10.244.2.7"],
        ),
        (
            "db-0.db.app.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            &["10.244.2.7"],
        ),
        (
            "20.0.96.10.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NoError,
            &["web.app.svc.cluster.local."],
        ),
        (
            "app.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            &[],
        ),
        (
            "nope.app.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
        ),
        (
            "web.gone.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
        ),
        (
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            &["10.96.0.1"],
        ),
        // Without upstream resolvers, other names are refused.
        ("example.com.", RecordType::A, ResponseCode::Refused, &[]),
    ];
    for (name, qtype, code, want) in cases {
        let r = ask(&mut dns, name, *qtype).await;
        assert_eq!(r.metadata.response_code, *code, "{name} {qtype}");
        assert_eq!(data(&r), *want, "{name} {qtype}");
    }

    // A Service written now answers as soon as its event arrives.
    let written = Instant::now();
    create::<Service>(
        &api.client,
        None,
        json!({"metadata": {"name": "new"},
        "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 80}]}}),
    )
    .await;
    let answered = until(
        "the new Service to answer",
        Duration::from_secs(10),
        async || {
            let r = ask(&mut dns, "new.app.svc.cluster.local.", RecordType::A).await;
            (data(&r) == ["10.96.0.30"]).then(|| written.elapsed())
        },
    )
    .await;
    eprintln!("a new Service answered {answered:?} after its write");
    server.shutdown().await;
}

/// The addresses kube-dns answers for `name` (none for NXDOMAIN).
async fn addresses(
    dns: &mut hickory_resolver::net::client::Client<
        hickory_resolver::net::runtime::TokioRuntimeProvider,
    >,
    name: &str,
) -> Vec<String> {
    data(&ask(dns, name, RecordType::A).await)
}

/// An apiserver on 127.0.0.1:`port` over the store in `dir`, as a separate run would be.
fn serve(dir: &std::path::Path, port: u16) -> common::component::InProcess {
    let config = apiserver::server::Config {
        data_dir: dir.join("data"),
        secure_port: 0,
        insecure_port: Some(port),
        ..Default::default()
    };
    common::component::InProcess::spawn(move |stop| apiserver::server::run(config, stop))
}

async fn client_of(port: u16) -> kube::Client {
    let url = format!("http://127.0.0.1:{port}");
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let namespaces = Api::<Namespace>::all(client.clone());
    until("the apiserver", Duration::from_secs(30), async || {
        namespaces.list(&Default::default()).await.ok()
    })
    .await;
    client
}

/// kube-dns keeps answering while its apiserver is away and catches up once it is back: a
/// Service deleted meanwhile goes, one created meanwhile answers (a component that loses
/// its apiserver reconnects and resumes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_catches_up_after_losing_its_apiserver() {
    let dir = tempfile::tempdir().unwrap();
    let port = apiserver::testing::free_port();
    let apiserver = serve(dir.path(), port);
    let client = client_of(port).await;
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    for (name, ip) in [("kept", "10.96.0.30"), ("gone", "10.96.0.31")] {
        create::<Service>(
            &client,
            None,
            json!({"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}),
        )
        .await;
    }
    let (server, _watching) = serve_zone(client).await;
    let mut dns = udp_client(server.addr);
    assert_eq!(
        addresses(&mut dns, "gone.app.svc.cluster.local.").await,
        ["10.96.0.31"]
    );

    // The apiserver goes; another, on another port, deletes one Service and adds one.
    apiserver.stop().await.unwrap();
    let elsewhere = apiserver::testing::free_port();
    let other = serve(dir.path(), elsewhere);
    let meanwhile = client_of(elsewhere).await;
    Api::<Service>::namespaced(meanwhile.clone(), "app")
        .delete("gone", &Default::default())
        .await
        .unwrap();
    create::<Service>(
        &meanwhile,
        None,
        json!({"metadata": {"name": "new"}, "spec": {"clusterIP": "10.96.0.32", "ports": [{"port": 80}]}}),
    )
    .await;
    other.stop().await.unwrap();
    // Meanwhile the zone answers from memory.
    assert_eq!(
        addresses(&mut dns, "kept.app.svc.cluster.local.").await,
        ["10.96.0.30"]
    );

    // Back on its address: the zone catches up.
    let _back = serve(dir.path(), port);
    until(
        "the zone to catch up",
        Duration::from_secs(60),
        async || {
            let gone = addresses(&mut dns, "gone.app.svc.cluster.local.").await;
            let new = addresses(&mut dns, "new.app.svc.cluster.local.").await;
            (gone.is_empty() && new == ["10.96.0.32"]).then_some(())
        },
    )
    .await;
    assert_eq!(
        addresses(&mut dns, "kept.app.svc.cluster.local.").await,
        ["10.96.0.30"]
    );
}
