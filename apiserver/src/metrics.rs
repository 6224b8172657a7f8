//! Prometheus metrics with upstream's names: apiserver_request_total (by verb, resource,
//! subresource and code), apiserver_request_duration_seconds (by verb, resource and
//! subresource), and the open watch count.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use crate::state::ApiState;

/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<SeriesKey, Series>>,
    watches: AtomicI64,
    /// Requests whose handler panicked.
    panics: AtomicI64,
}

/// The upstream verb label of a request, from its one reading.
fn verb(attrs: &crate::auth::attributes::Attributes) -> &'static str {
    match attrs.verb.as_str() {
        "watch" => "WATCH",
        "list" => "LIST",
        "get" => "GET",
        "create"
            if ["exec", "attach", "portforward", "proxy"].contains(&attrs.subresource.as_str()) =>
        {
            "CONNECT"
        }
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

/// A series' labels: verb, resource, subresource ("" for none) and response code.
type SeriesKey = (&'static str, String, String, u16);

impl Metrics {
    fn observe(&self, key: SeriesKey, seconds: f64) {
        let mut map = self.requests.lock();
        let s = map.entry(key).or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, cache_revision: i64) -> String {
        let mut out = String::new();
        let map = self.requests.lock();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource, subresource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for ((verb, resource, subresource, code), s) in map.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",subresource=\"{subresource}\",code=\"{code}\"}} {}",
                s.count
            );
        }
        // The latency histogram has no code label, as upstream's: one series per verb,
        // resource and subresource, whatever the answers were.
        let mut latencies: BTreeMap<(&str, &str, &str), Series> = BTreeMap::new();
        for ((verb, resource, subresource, _), s) in map.iter() {
            let sum = latencies.entry((verb, resource, subresource)).or_default();
            sum.count += s.count;
            sum.sum += s.sum;
            for (total, n) in sum.buckets.iter_mut().zip(s.buckets) {
                *total += n;
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, resource and subresource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource, subresource), s) in latencies {
            let labels =
                format!("verb=\"{verb}\",resource=\"{resource}\",subresource=\"{subresource}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP apiserver_longrunning_requests Number of open long-running requests (watches).\n# TYPE apiserver_longrunning_requests gauge\napiserver_longrunning_requests{{verb=\"WATCH\"}} {}",
            self.watches.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP apiserver_request_panics_total Requests whose handler panicked (answered 500).\n# TYPE apiserver_request_panics_total counter\napiserver_request_panics_total {}",
            self.panics.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tetsu_watch_cache_revision The store revision the watch cache has applied.\n# TYPE tetsu_watch_cache_revision gauge\ntetsu_watch_cache_revision {cache_revision}"
        );
        out
    }
}

/// Middleware: counts and times every request (a watch is counted when its stream opens).
/// A handler that panics anyway answers a 500 Status; the panic is logged and counted.
pub async fn track(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    use futures::FutureExt;
    // The request's one reading is made here, the outermost layer, and handed on: the auth
    // filter, the limits and the handlers take it from the request's extensions.
    let info = crate::request::RequestInfo::read(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query().unwrap_or(""),
    );
    let verb = verb(&info.attrs);
    // Labels only from a served resource and subresource: the path's own words would let any
    // caller add series (and quotes) to the exposition before authentication.
    let (resource, subresource) =
        crate::registry::Target::from_info(&info, state.cache.resources())
            .map(|t| (t.resource.plural.clone(), t.subresource))
            .unwrap_or_default();
    let uri = request.uri().clone();
    request.extensions_mut().insert(info);
    let start = Instant::now();
    let response = match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = panic_message(&*panic);
            tracing::error!(verb, %uri, panic = %what, "apiserver panicked on a request");
            state.metrics.panics.fetch_add(1, Ordering::Relaxed);
            crate::status::ApiError::internal(
                "This request caused apiserver to panic. Look in the logs for details.",
            )
            .into_response()
        }
    };
    if verb == "WATCH" {
        state.metrics.watches.fetch_add(1, Ordering::Relaxed);
    }
    state.metrics.observe(
        (verb, resource, subresource, response.status().as_u16()),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// What a panic said (its `&str` or `String` payload; empty for anything else).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
