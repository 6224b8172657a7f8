//! For tests and benchmarks: a DNS client asking one server over UDP, the answers as text,
//! a stand-in for a node's upstream resolver, and the many Services the benchmark and the
//! zone's memory test load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::RwLock;

use hickory_proto::op::DnsResponse;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_resolver::net::client::{Client, ClientHandle};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::udp::UdpClientStream;

/// A client of the server at `addr`, over UDP (its exchange runs on a tokio task).
pub fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

/// The server's response to `name` (fully qualified) and `qtype`.
pub async fn ask(
    client: &mut Client<TokioRuntimeProvider>,
    name: &str,
    qtype: RecordType,
) -> DnsResponse {
    client
        .query(Name::from_ascii(name).expect("a name"), DNSClass::IN, qtype)
        .await
        .expect("an answer")
}

/// The data of each answer, as text.
pub fn data(response: &DnsResponse) -> Vec<String> {
    response
        .answers
        .iter()
        .map(|r| r.data.to_string())
        .collect()
}

/// A server on `addr` authoritative for `domain`, answering `www.app.svc.<domain>` with
/// `www` (an address): what a test gives the cluster as the node's upstream resolver.
pub async fn outside_resolver(
    addr: SocketAddr,
    domain: &str,
    www: &str,
) -> crate::Result<crate::server::Running> {
    use k8s_openapi::api::core::v1::{Namespace, Service, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let meta = |namespace: Option<&str>, name: &str| ObjectMeta {
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let mut zone = crate::zone::Zone::new(domain, 30)?;
    zone.namespace_changed(&Namespace {
        metadata: meta(None, "app"),
        ..Default::default()
    });
    zone.service_changed(&Service {
        metadata: meta(Some("app"), "www"),
        spec: Some(ServiceSpec {
            cluster_ip: Some(www.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let ready = Arc::new(AtomicBool::new(true));
    let handler = crate::server::Handler::new(Arc::new(RwLock::new(zone)), None, ready);
    crate::server::Running::start(handler, addr).await
}

/// How many namespaces [`service`] spreads Services over.
pub const NAMESPACES: usize = 100;

/// Namespace `ns-<n>`.
pub fn namespace(n: usize) -> k8s_openapi::api::core::v1::Namespace {
    serde_json::from_value(serde_json::json!({"metadata": {"name": format!("ns-{n}")}}))
        .expect("a Namespace")
}

/// Service `svc-<i>` in `ns-<i mod 100>` with a named port; every tenth is headless.
pub fn service(i: usize) -> k8s_openapi::api::core::v1::Service {
    let ip = if i.is_multiple_of(10) {
        "None".to_owned()
    } else {
        format!("10.96.{}.{}", i / 250, i % 250 + 1)
    };
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": format!("ns-{}", i % NAMESPACES), "name": format!("svc-{i}")},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
    }))
    .expect("a Service")
}

/// Service `i`'s slice of three ready endpoints, named as the slice controller names them
/// (the Service's name and five generated characters); with `hostnames`, its endpoints
/// are named as StatefulSet pods are (else, as a Deployment's, by address only).
pub fn slice(i: usize, hostnames: bool) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    const GENERATED: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|k| GENERATED[i / GENERATED.len().pow(k) % GENERATED.len()] as char)
        .collect();
    let endpoints: Vec<_> = (0..3)
        .map(|e| {
            let n = i * 3 + e;
            let mut endpoint = serde_json::json!({
                "addresses": [format!("10.244.{}.{}", n / 250, n % 250 + 1)]});
            if hostnames {
                endpoint["hostname"] = format!("pod-{e}").into();
            }
            endpoint
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": format!("ns-{}", i % NAMESPACES),
            "name": format!("svc-{i}-{suffix}"),
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))
    .expect("an EndpointSlice")
}
