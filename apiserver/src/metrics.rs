//! Prometheus metrics with upstream's names: apiserver_request_total and
//! apiserver_request_duration_seconds by verb, resource and code, and the open watch count.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;

use crate::server::ApiState;

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
    /// (verb, resource, code) -> observations.
    requests: Mutex<HashMap<(&'static str, String, u16), Series>>,
    watches: AtomicI64,
}

/// The upstream verb name of a request.
fn verb(method: &str, path: &str, query: &str, collection: bool) -> &'static str {
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1" || p == "watch");
    match method {
        "GET" if watch => "WATCH",
        "GET" if collection => "LIST",
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" if collection => "DELETECOLLECTION",
        "DELETE" => "DELETE",
        _ if path.is_empty() => "OTHER",
        _ => "OTHER",
    }
}

impl Metrics {
    fn observe(&self, verb: &'static str, resource: String, code: u16, seconds: f64) {
        let mut map = self.requests.lock();
        let s = map.entry((verb, resource, code)).or_default();
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
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), s) in map.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource, _), s) in map.iter() {
            let labels = format!("verb=\"{verb}\",resource=\"{resource}\"");
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
            "# HELP tetsu_watch_cache_revision The store revision the watch cache has applied.\n# TYPE tetsu_watch_cache_revision gauge\ntetsu_watch_cache_revision {cache_revision}"
        );
        out
    }
}

/// Middleware: counts and times every request (a watch is counted when its stream opens).
pub async fn track(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let (resource, collection) = match crate::handlers::parse_path(&path) {
        Ok(t) => (t.resource.plural.to_owned(), t.name.is_empty()),
        Err(_) => (String::new(), false),
    };
    let verb = verb(&method, &path, &query, collection);
    if verb == "WATCH" {
        state.metrics.watches.fetch_add(1, Ordering::Relaxed);
    }
    state.metrics.observe(
        verb,
        resource,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
