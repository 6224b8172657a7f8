//! The server's metrics on /metrics, named as CoreDNS names them where a dashboard looks.

use common::metrics::{Counter, Histogram};

/// The `server` label, as CoreDNS writes it for a server block on port 53.
pub const SERVER: &str = "dns://:53";

/// CoreDNS's request duration buckets: 0.25 ms doubling to 8.192 s.
const SECONDS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

pub static REQUESTS: Counter = Counter::new(
    "coredns_dns_requests_total",
    "Counter of DNS requests made per zone, protocol and family",
    &["server", "zone", "view", "proto", "family", "type"],
);
pub static REQUEST_DURATION: Histogram = Histogram::new(
    "coredns_dns_request_duration_seconds",
    "Histogram of the time (in seconds) each request took",
    &["server", "zone", "view"],
    SECONDS,
);
pub static RESPONSES: Counter = Counter::new(
    "coredns_dns_responses_total",
    "Counter of response status codes",
    &["server", "zone", "view", "rcode", "plugin"],
);
pub static FORWARD_FAILURES: Counter = Counter::new(
    "coredns_forward_healthcheck_failures_total",
    "Counter of upstream queries that failed (no answer, or an error)",
    &["to"],
);

pub static CACHE_HITS: Counter = Counter::new(
    "coredns_cache_hits_total",
    "The count of cache hits",
    &["server", "type"],
);
pub static CACHE_MISSES: Counter = Counter::new(
    "coredns_cache_misses_total",
    "The count of cache misses",
    &["server"],
);
pub static FORWARD_REJECTS: Counter = Counter::new(
    "coredns_forward_max_concurrent_rejects_total",
    "Counter of queries refused because the concurrent queries were at maximum",
    &[],
);

/// The text of /metrics.
pub fn render() -> String {
    let mut out = String::new();
    REQUESTS.render(&mut out);
    REQUEST_DURATION.render(&mut out);
    RESPONSES.render(&mut out);
    FORWARD_FAILURES.render(&mut out);
    CACHE_HITS.render(&mut out);
    CACHE_MISSES.render(&mut out);
    FORWARD_REJECTS.render(&mut out);
    out
}
