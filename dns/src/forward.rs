//! Names outside the cluster zone go to the node's resolvers, as CoreDNS's
//! `forward . /etc/resolv.conf`: hickory-resolver asks them (UDP, TCP when truncated, the
//! next server on failure) and caches the answers as kubeadm's `cache 30` does, positive and
//! negative answers for at most 30 s and at least 5 s.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

/// The longest and shortest time an upstream answer is cached.
const CACHE_MAX: Duration = Duration::from_secs(30);
const CACHE_MIN: Duration = Duration::from_secs(5);
/// How long one upstream server may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the upstream resolvers said.
#[derive(Debug)]
pub enum Forwarded {
    Records {
        answers: Vec<Record>,
        authorities: Vec<Record>,
    },
    /// NXDOMAIN, or NOERROR without records (NODATA), with the SOA that says for how long.
    Negative {
        code: ResponseCode,
        soa: Option<Box<Record>>,
    },
    /// No server answered, or one answered with an error.
    Failed,
}

/// The upstream resolvers and their cache.
pub struct Forwarder {
    resolver: TokioResolver,
}

impl Forwarder {
    /// Forwards to `servers` (address and port).
    pub fn new(servers: &[SocketAddr]) -> crate::Result<Forwarder> {
        if servers.is_empty() {
            return Err(crate::Error::Invalid("no upstream DNS servers".into()));
        }
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut config = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut config.connections {
                    connection.port = addr.port();
                }
                config
            })
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], name_servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = TIMEOUT;
        options.attempts = 2;
        options.cache_size = 9984;
        options.positive_max_ttl = Some(CACHE_MAX);
        options.negative_max_ttl = Some(CACHE_MAX);
        options.positive_min_ttl = Some(CACHE_MIN);
        options.negative_min_ttl = Some(CACHE_MIN);
        // Names arrive fully qualified; no search list applies.
        options.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| crate::Error::Invalid(format!("upstream resolvers: {e}")))?;
        Ok(Forwarder { resolver })
    }

    /// The nameservers of a resolv.conf (port 53), as CoreDNS's `forward . /etc/resolv.conf`
    /// reads it.
    pub fn servers_of_resolv_conf(text: &str) -> Vec<SocketAddr> {
        text.lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next()? == "nameserver").then_some(())?;
                let ip: std::net::IpAddr = words.next()?.split('%').next()?.parse().ok()?;
                Some(SocketAddr::new(ip, 53))
            })
            .collect()
    }

    /// Asks the upstream resolvers (or the cache).
    pub async fn lookup(&self, name: &Name, qtype: RecordType) -> Forwarded {
        let mut name = name.clone();
        name.set_fqdn(true);
        match self.resolver.lookup(name, qtype).await {
            Ok(lookup) => {
                let message = lookup.message();
                Forwarded::Records {
                    answers: lookup.answers().to_vec(),
                    authorities: message.authorities.clone(),
                }
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Forwarded::Negative {
                code: none.response_code,
                soa: none.soa.map(|soa| Box::new(soa.into_record_of_rdata())),
            },
            Err(e) => {
                tracing::debug!("forwarding {qtype} query: {e}");
                crate::metrics::FORWARD_FAILURES.inc(&["upstream"]);
                Forwarded::Failed
            }
        }
    }
}
