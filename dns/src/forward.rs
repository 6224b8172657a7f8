//! Names outside the cluster zone go to the node's resolvers, as CoreDNS's
//! `forward . /etc/resolv.conf`: hickory-resolver asks them (UDP, TCP when truncated, the
//! next server on failure). Answers are cached here as kubeadm's `cache 30` caches them
//! (positive and negative answers for their TTL, at most 30 s and at least 5 s, at most
//! 9,984 entries), so hits and misses can be counted as CoreDNS counts them; at most 1,000
//! questions are forwarded at once, later ones are REFUSED (CoreDNS's `max_concurrent`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use parking_lot::Mutex;

/// The longest and shortest time an upstream answer is cached.
const CACHE_MAX: Duration = Duration::from_secs(30);
const CACHE_MIN: Duration = Duration::from_secs(5);
/// How many answers the cache holds (CoreDNS's default capacity).
const CACHE_ENTRIES: usize = 9984;
/// The largest answer cached, in wire bytes: one unfragmented EDNS datagram (DNS flag day
/// 2020's 1,232). A name whose owner serves huge answers cannot fill the cache with them:
/// it holds at most about 12 MB of records; larger answers are forwarded each time.
const CACHE_ANSWER_BYTES: usize = 1232;
/// How many questions may wait on the upstream resolvers at once.
const MAX_CONCURRENT: usize = 1000;
/// How long one upstream server may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the upstream resolvers said.
#[derive(Clone, Debug)]
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
    /// Too many questions are already waiting on the upstream resolvers.
    Overloaded,
}

impl Forwarded {
    /// How long the answer may be cached: its TTL (the SOA's for a negative one) within
    /// the cache's bounds; failures and answers over CACHE_ANSWER_BYTES are not cached.
    fn cache_for(&self) -> Option<Duration> {
        let (ttl, records): (u32, Vec<&Record>) = match self {
            Forwarded::Records {
                answers,
                authorities,
            } => (
                answers.iter().map(|r| r.ttl).min()?,
                answers.iter().chain(authorities).collect(),
            ),
            Forwarded::Negative { soa, .. } => (
                soa.as_ref().map_or(0, |soa| soa.ttl),
                soa.iter().map(|soa| &**soa).collect(),
            ),
            Forwarded::Failed | Forwarded::Overloaded => return None,
        };
        let mut bytes = 0;
        for record in records {
            bytes += record.to_bytes().ok()?.len();
            if bytes > CACHE_ANSWER_BYTES {
                return None;
            }
        }
        Some(Duration::from_secs(ttl.into()).clamp(CACHE_MIN, CACHE_MAX))
    }
}

/// Cached answers by question, with when each expires.
type Cache = HashMap<(Name, RecordType), (Instant, Forwarded)>;

/// The upstream resolvers and the cache of their answers.
pub struct Forwarder {
    resolver: TokioResolver,
    cache: Mutex<Cache>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Forwarder {
    /// At most `n` questions waiting on the upstream resolvers at once (default 1,000).
    pub fn with_max_concurrent(mut self, n: usize) -> Forwarder {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(n));
        self
    }
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
        // The cache is ours.
        options.cache_size = 0;
        // Names arrive fully qualified; no search list applies.
        options.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| crate::Error::Invalid(format!("upstream resolvers: {e}")))?;
        Ok(Forwarder {
            resolver,
            cache: Mutex::new(HashMap::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
        })
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

    /// Answers from the cache, or asks the upstream resolvers.
    pub async fn lookup(&self, name: &Name, qtype: RecordType) -> Forwarded {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        let question = (name, qtype);
        if let Some(answer) = self.cached(&question) {
            return answer;
        }
        crate::metrics::CACHE_MISSES.inc(&[crate::metrics::SERVER]);
        let Ok(_permit) = self.in_flight.try_acquire() else {
            crate::metrics::FORWARD_REJECTS.inc(&[]);
            return Forwarded::Overloaded;
        };
        let answer = self.ask(&question.0, qtype).await;
        if let Some(ttl) = answer.cache_for() {
            let mut cache = self.cache.lock();
            if cache.len() >= CACHE_ENTRIES {
                evict(&mut cache);
            }
            cache.insert(question, (Instant::now() + ttl, answer.clone()));
        }
        answer
    }

    /// A cached answer still fresh, counted as a hit.
    fn cached(&self, question: &(Name, RecordType)) -> Option<Forwarded> {
        let cache = self.cache.lock();
        let (_, answer) = cache.get(question).filter(|(e, _)| *e > Instant::now())?;
        let kind = match answer {
            Forwarded::Negative { .. } => "denial",
            _ => "success",
        };
        crate::metrics::CACHE_HITS.inc(&[crate::metrics::SERVER, kind]);
        Some(answer.clone())
    }

    async fn ask(&self, name: &Name, qtype: RecordType) -> Forwarded {
        match self.resolver.lookup(name.clone(), qtype).await {
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

/// Makes room in a full cache: the expired answers go, or, if none has, an arbitrary one
/// (CoreDNS's cache also evicts at random).
fn evict(cache: &mut Cache) {
    let now = Instant::now();
    cache.retain(|_, (expires, _)| *expires > now);
    if cache.len() >= CACHE_ENTRIES
        && let Some(question) = cache.keys().next().cloned()
    {
        cache.remove(&question);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CACHE_HITS, CACHE_MISSES, FORWARD_REJECTS, SERVER};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_are_cached_within_their_bounds_and_counted() {
        let upstream = crate::testing::outside_resolver(
            "127.0.0.1:0".parse().unwrap(),
            "example.test",
            "192.0.2.80",
        )
        .await
        .unwrap();
        let forwarder = Forwarder::new(&[upstream.addr]).unwrap();
        let www = name("www.app.svc.example.test.");
        let missing = name("nothing.app.svc.example.test.");
        assert!(matches!(
            forwarder.lookup(&www, RecordType::A).await,
            Forwarded::Records { .. }
        ));
        assert!(matches!(
            forwarder.lookup(&missing, RecordType::A).await,
            Forwarded::Negative {
                code: ResponseCode::NXDomain,
                ..
            }
        ));
        assert_eq!(CACHE_MISSES.get(&[SERVER]), 2.0);
        // The upstream is gone: the answers (asked in another case) come from the cache.
        upstream.shutdown().await;
        let Forwarded::Records { answers, .. } = forwarder
            .lookup(&name("WWW.app.svc.example.test."), RecordType::A)
            .await
        else {
            panic!("a cached answer");
        };
        assert_eq!(answers[0].data.to_string(), "192.0.2.80");
        assert!(matches!(
            forwarder.lookup(&missing, RecordType::A).await,
            Forwarded::Negative { .. }
        ));
        assert_eq!(CACHE_HITS.get(&[SERVER, "success"]), 1.0);
        assert_eq!(CACHE_HITS.get(&[SERVER, "denial"]), 1.0);
        // Another type of the same name was never asked: a miss, and a failure now.
        assert!(matches!(
            forwarder.lookup(&www, RecordType::TXT).await,
            Forwarded::Failed
        ));
        assert_eq!(CACHE_MISSES.get(&[SERVER]), 3.0);
    }

    #[test]
    fn cache_lifetimes_follow_the_ttl_within_five_and_thirty_seconds() {
        let a = |ttl| {
            let mut r = Record::from_rdata(
                name("x."),
                ttl,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
            );
            r.ttl = ttl;
            r
        };
        let records = |ttls: &[u32]| Forwarded::Records {
            answers: ttls.iter().map(|t| a(*t)).collect(),
            authorities: vec![],
        };
        assert_eq!(
            records(&[10, 20]).cache_for(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(records(&[3600]).cache_for(), Some(CACHE_MAX));
        assert_eq!(records(&[0]).cache_for(), Some(CACHE_MIN));
        let negative = Forwarded::Negative {
            code: ResponseCode::NXDomain,
            soa: Some(Box::new(a(12))),
        };
        assert_eq!(negative.cache_for(), Some(Duration::from_secs(12)));
        assert_eq!(Forwarded::Failed.cache_for(), None);
        // A huge answer is relayed but not kept; many small records are.
        // TXT data of `strings` character-strings of 200 bytes.
        let txt =
            |strings: usize| Forwarded::Records {
                answers: vec![Record::from_rdata(
                    name("x."),
                    60,
                    hickory_proto::rr::RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
                    "a".repeat(200);
                    strings
                ])),
                )],
                authorities: vec![],
            };
        assert_eq!(txt(10).cache_for(), None);
        assert_eq!(txt(1).cache_for(), Some(CACHE_MAX));
        assert_eq!(records(&[60; 40]).cache_for(), Some(CACHE_MAX));
        assert_eq!(records(&[60; 200]).cache_for(), None);
        let mut cache = Cache::new();
        let now = Instant::now();
        for i in 0..CACHE_ENTRIES {
            let expires = if i == 7 { now } else { now + CACHE_MAX };
            cache.insert(
                (name(&format!("n{i}.")), RecordType::A),
                (expires, Forwarded::Failed),
            );
        }
        evict(&mut cache);
        assert_eq!(cache.len(), CACHE_ENTRIES - 1, "the expired one went");
        assert!(!cache.contains_key(&(name("n7."), RecordType::A)));
        cache.insert(
            (name("n7."), RecordType::A),
            (now + CACHE_MAX, Forwarded::Failed),
        );
        evict(&mut cache);
        assert_eq!(
            cache.len(),
            CACHE_ENTRIES - 1,
            "full of fresh answers: any one goes"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn questions_beyond_the_concurrency_bound_are_refused_at_once() {
        // An upstream that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let forwarder = Arc::new(
            Forwarder::new(&[silent.local_addr().unwrap()])
                .unwrap()
                .with_max_concurrent(2),
        );
        let waiting: Vec<_> = (0..2)
            .map(|i| {
                let f = forwarder.clone();
                tokio::spawn(async move {
                    f.lookup(&name(&format!("w{i}.example.")), RecordType::A)
                        .await
                })
            })
            .collect();
        // Both are waiting on the upstream (polled: a loaded machine may start them late).
        while forwarder.in_flight.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        assert!(matches!(
            forwarder
                .lookup(&name("third.example."), RecordType::A)
                .await,
            Forwarded::Overloaded
        ));
        // At once: not after the upstream's timeouts (seconds).
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(FORWARD_REJECTS.get(&[]), 1.0);
        // Positive control: once the waiting ones are gone, a question waits on the
        // upstream again instead of being refused.
        for w in waiting {
            w.abort();
            let _ = w.await;
        }
        let fourth = name("fourth.example.");
        let asked = forwarder.lookup(&fourth, RecordType::A);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), asked)
                .await
                .is_err()
        );
        assert_eq!(FORWARD_REJECTS.get(&[]), 1.0);
    }
}
