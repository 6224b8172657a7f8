//! The DNS server: hickory-server's UDP and TCP listeners (the library reads and writes the
//! wire format, and truncates UDP answers to the size the client's EDNS allows) answering
//! from the [`Zone`], and forwarding what is not the zone's to the upstream resolvers.
//!
//! Answers from the zone are authoritative (AA): records, NODATA or NXDOMAIN, the two
//! negative ones with the zone's SOA so resolvers cache them. An ExternalName's CNAME comes
//! with its target's addresses, as CoreDNS resolves them, since stub resolvers do not chase
//! CNAMEs themselves. Until the zone has its first full view of the cluster, its names get
//! SERVFAIL rather than a wrong NXDOMAIN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use parking_lot::RwLock;

use crate::forward::{Forwarded, Forwarder};
use crate::zone::{Lookup, Zone};

/// How long a TCP connection may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// Answers queries from the zone and the upstream resolvers.
pub struct Handler {
    zone: Arc<RwLock<Zone>>,
    /// None: names outside the zone are refused.
    upstream: Option<Forwarder>,
    ready: Arc<AtomicBool>,
}

/// What one query gets.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn code(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

impl Handler {
    /// `ready` turns true once the zone has seen the whole cluster.
    pub fn new(
        zone: Arc<RwLock<Zone>>,
        upstream: Option<Forwarder>,
        ready: Arc<AtomicBool>,
    ) -> Handler {
        Handler {
            zone,
            upstream,
            ready,
        }
    }

    /// The reply to one question.
    async fn answer(&self, qname: &Name, qtype: RecordType) -> Reply {
        let lookup = {
            let zone = self.zone.read();
            let ours = zone.origin().zone_of(qname);
            if ours && !self.ready.load(Ordering::Acquire) {
                return Reply::code(ResponseCode::ServFail);
            }
            if ours && matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
                return Reply::code(ResponseCode::Refused);
            }
            let lookup = zone.lookup(qname, qtype);
            let soa = || vec![zone.soa()];
            match lookup {
                Lookup::NotOurs => None,
                Lookup::NoData | Lookup::NxDomain => Some(Reply {
                    code: if lookup == Lookup::NxDomain {
                        ResponseCode::NXDomain
                    } else {
                        ResponseCode::NoError
                    },
                    authoritative: true,
                    answers: Vec::new(),
                    authorities: soa(),
                    additionals: Vec::new(),
                }),
                Lookup::Records {
                    answers,
                    additionals,
                } => Some(Reply {
                    code: ResponseCode::NoError,
                    authoritative: true,
                    answers,
                    authorities: Vec::new(),
                    additionals,
                }),
            }
        };
        match lookup {
            Some(mut reply) => {
                self.chase_cname(&mut reply, qtype).await;
                reply
            }
            None => self.forward(qname, qtype).await,
        }
    }

    /// An ExternalName's CNAME with its target's records of the type asked, when the
    /// upstream resolvers know them.
    async fn chase_cname(&self, reply: &mut Reply, qtype: RecordType) {
        let target = match reply.answers.as_slice() {
            [
                Record {
                    data: RData::CNAME(target),
                    ..
                },
            ] if qtype != RecordType::CNAME => target.0.clone(),
            _ => return,
        };
        if let Some(upstream) = &self.upstream
            && let Forwarded::Records { answers, .. } = upstream.lookup(&target, qtype).await
        {
            reply.answers.extend(answers);
        }
    }

    async fn forward(&self, qname: &Name, qtype: RecordType) -> Reply {
        let Some(upstream) = &self.upstream else {
            return Reply::code(ResponseCode::Refused);
        };
        match upstream.lookup(qname, qtype).await {
            Forwarded::Records {
                answers,
                authorities,
            } => Reply {
                code: ResponseCode::NoError,
                authoritative: false,
                answers,
                authorities,
                additionals: Vec::new(),
            },
            Forwarded::Negative { code, soa } => Reply {
                code,
                authoritative: false,
                answers: Vec::new(),
                authorities: soa.into_iter().map(|soa| *soa).collect(),
                additionals: Vec::new(),
            },
            Forwarded::Failed => Reply::code(ResponseCode::ServFail),
            Forwarded::Overloaded => Reply::code(ResponseCode::Refused),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let refuse = |code| builder.error_msg(&request.metadata, code);
        let info = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info,
            Ok(_) => return send(&mut response, refuse(ResponseCode::NotImp), request).await,
            Err(_) => return send(&mut response, refuse(ResponseCode::FormErr), request).await,
        };
        // The answer may be as large as the client's EDNS says; without EDNS, 512 bytes
        // over UDP (the library truncates and sets TC).
        let edns = request.edns.as_ref().map(|theirs| {
            let mut ours = Edns::new();
            ours.set_max_payload(theirs.max_payload().max(512));
            ours.set_version(0);
            ours
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let started = std::time::Instant::now();
        let qname = info.query.original().name().clone();
        let qtype = info.query.query_type();
        let reply = self.answer(&qname, qtype).await;
        record_metrics(request, qtype, reply.code, reply.authoritative, started);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        metadata.response_code = reply.code;
        let message = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            [],
            reply.additionals.iter(),
        );
        send(&mut response, message, request).await
    }
}

/// Counts the request as CoreDNS's metrics do (server, zone and view as kubeadm's
/// CoreDNS reports them).
fn record_metrics(
    request: &Request,
    qtype: RecordType,
    code: ResponseCode,
    authoritative: bool,
    started: std::time::Instant,
) {
    use crate::metrics::SERVER;
    let proto = match request.protocol() {
        hickory_server::net::xfer::Protocol::Tcp => "tcp",
        _ => "udp",
    };
    let family = if request.src().is_ipv4() { "1" } else { "2" };
    let qtype = match qtype {
        RecordType::A
        | RecordType::AAAA
        | RecordType::MX
        | RecordType::SOA
        | RecordType::CNAME
        | RecordType::PTR
        | RecordType::TXT
        | RecordType::NS
        | RecordType::SRV
        | RecordType::HTTPS
        | RecordType::ANY => qtype.to_string(),
        _ => "other".to_owned(),
    };
    crate::metrics::REQUESTS.inc(&[SERVER, ".", "", proto, family, &qtype]);
    crate::metrics::REQUEST_DURATION.observe(&[SERVER, ".", ""], started.elapsed().as_secs_f64());
    let plugin = if authoritative {
        "kubernetes"
    } else {
        "forward"
    };
    crate::metrics::RESPONSES.inc(&[SERVER, ".", "", rcode_name(code), plugin]);
}

/// A response code as CoreDNS's metrics name it.
fn rcode_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "OTHER",
    }
}

/// Sends `message`; a failed send is reported as SERVFAIL to the server's bookkeeping.
async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    message: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match response.send_response(message).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("sending a DNS response to {}: {e}", request.src());
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_proto::op::Header {
                metadata,
                counts: Default::default(),
            })
        }
    }
}

/// A running server: UDP and TCP on the same address.
pub struct Running {
    server: Server<Handler>,
    pub addr: SocketAddr,
}

impl Running {
    /// Serves `handler` on `addr` (port 0: any free port, the same for UDP and TCP).
    pub async fn start(handler: Handler, addr: SocketAddr) -> crate::Result<Running> {
        let io = |e: std::io::Error| crate::Error::Io(format!("listening on {addr}: {e}"));
        // TCP first; with port 0 its port is then taken for UDP too, which may be in use:
        // then another port.
        let mut tries = if addr.port() == 0 { 5 } else { 1 };
        let (tcp, udp) = loop {
            let tcp = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
            let bound = tcp.local_addr().map_err(io)?;
            match tokio::net::UdpSocket::bind(bound).await {
                Ok(udp) => break (tcp, udp),
                Err(e) if tries > 1 && e.kind() == std::io::ErrorKind::AddrInUse => tries -= 1,
                Err(e) => return Err(io(e)),
            }
        };
        let addr = tcp.local_addr().map_err(io)?;
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64);
        Ok(Running { server, addr })
    }

    /// Stops listening and waits for the queries in flight.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!("DNS server shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ask, data, udp_client};
    use hickory_resolver::net::client::Client;
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::net::tcp::TcpClientStream;
    use serde_json::json;

    /// A zone `domain` with namespace app and `services` in it.
    fn zone(domain: &str, services: &[serde_json::Value]) -> Arc<RwLock<Zone>> {
        let mut zone = Zone::new(domain, 30).unwrap();
        zone.namespace_changed(
            &serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap(),
        );
        for s in services {
            zone.service_changed(&serde_json::from_value(s.clone()).unwrap());
        }
        Arc::new(RwLock::new(zone))
    }

    fn service(name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"namespace": "app", "name": name}, "spec": spec})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_the_zone_and_forwards_the_rest_over_udp_and_tcp() {
        let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // The "upstream" is another server, authoritative for example.test.
        let upstream = crate::testing::outside_resolver(localhost, "example.test", "192.0.2.80")
            .await
            .unwrap();
        let ours = zone(
            "cluster.local",
            &[
                service("web", json!({"clusterIP": "10.96.0.20"})),
                service(
                    "ext",
                    json!({"type": "ExternalName",
                    "externalName": "www.app.svc.example.test"}),
                ),
                service("big", json!({"clusterIP": "None"})),
            ],
        );
        // A headless Service with 100 ready endpoints: more than 512 bytes of answers.
        let endpoints: Vec<_> = (0..100)
            .map(|i| json!({"addresses": [format!("10.244.0.{i}")]}))
            .collect();
        ours.write().slice_changed(
            &serde_json::from_value(json!({"metadata": {"namespace": "app", "name": "big-1",
                "labels": {"kubernetes.io/service-name": "big"}},
                "addressType": "IPv4", "endpoints": endpoints}))
            .unwrap(),
        );
        let server_ready = Arc::new(AtomicBool::new(false));
        let forwarder = Forwarder::new(&[upstream.addr]).unwrap();
        let server = Running::start(
            Handler::new(ours, Some(forwarder), server_ready.clone()),
            localhost,
        )
        .await
        .unwrap();
        let mut client = udp_client(server.addr);

        // Before the first full view of the cluster: SERVFAIL, not a wrong NXDOMAIN.
        let r = ask(&mut client, "web.app.svc.cluster.local.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        server_ready.store(true, Ordering::Release);

        let r = ask(&mut client, "web.app.svc.cluster.local.", RecordType::A).await;
        assert_eq!(data(&r), ["10.96.0.20"]);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers[0].ttl, 30);

        // NXDOMAIN and NODATA carry the zone's SOA.
        for (name, code) in [
            ("nope.app.svc.cluster.local.", ResponseCode::NXDomain),
            ("app.svc.cluster.local.", ResponseCode::NoError),
        ] {
            let r = ask(&mut client, name, RecordType::A).await;
            assert_eq!(r.metadata.response_code, code, "{name}");
            assert!(r.answers.is_empty() && r.metadata.authoritative, "{name}");
            assert_eq!(r.authorities.len(), 1, "{name}");
            assert_eq!(r.authorities[0].record_type(), RecordType::SOA, "{name}");
        }

        // Other names go upstream, answers and NXDOMAIN alike.
        let r = ask(&mut client, "www.app.svc.example.test.", RecordType::A).await;
        assert_eq!(data(&r), ["192.0.2.80"]);
        assert!(!r.metadata.authoritative);
        let r = ask(&mut client, "none.app.svc.example.test.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities.len(), 1, "the upstream's SOA");

        // An ExternalName's CNAME comes with its target's address.
        let r = ask(&mut client, "ext.app.svc.cluster.local.", RecordType::A).await;
        assert_eq!(data(&r), ["www.app.svc.example.test.", "192.0.2.80"]);

        // Hostile input: junk datagrams (one announcing two questions and none) get no
        // answer that matters, a zone transfer is refused, and the server keeps answering.
        let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let two_questions = [0x12, 0x34, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0];
        for junk in [&[0u8][..], &[0xff; 600][..], &two_questions[..]] {
            raw.send_to(junk, server.addr).await.unwrap();
        }
        let r = ask(&mut client, "cluster.local.", RecordType::AXFR).await;
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        let r = ask(&mut client, "web.app.svc.cluster.local.", RecordType::A).await;
        assert_eq!(data(&r), ["10.96.0.20"]);

        // Over UDP without EDNS an answer is cut at 512 bytes and marked truncated; TCP
        // carries all of it.
        client.disable_edns();
        let r = ask(&mut client, "big.app.svc.cluster.local.", RecordType::A).await;
        assert!(
            r.metadata.truncation && r.answers.len() < 100,
            "{}",
            r.answers.len()
        );
        let (connect, sender) =
            TcpClientStream::new(server.addr, None, None, TokioRuntimeProvider::default());
        let stream = connect.await.unwrap();
        let (mut tcp, background) = Client::<TokioRuntimeProvider>::new(stream, sender);
        tokio::spawn(background);
        let r = ask(&mut tcp, "big.app.svc.cluster.local.", RecordType::A).await;
        assert!(!r.metadata.truncation);
        assert_eq!(r.answers.len(), 100);

        server.shutdown().await;
        upstream.shutdown().await;
    }
}
