//! For tests and benchmarks: a DNS client asking one server over UDP, and the answers as
//! text.

use std::net::SocketAddr;

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
