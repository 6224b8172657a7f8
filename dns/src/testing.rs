//! For tests and benchmarks: a DNS client asking one server over UDP, the answers as text,
//! and a stand-in for a node's upstream resolver.

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
