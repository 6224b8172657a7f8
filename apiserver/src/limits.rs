//! Load limits, as upstream's max-in-flight and request-timeout filters: at most
//! --max-requests-inflight read-only and --max-mutating-requests-inflight mutating requests run
//! at once (more are answered 429 with Retry-After: 1), a request that is not long-running gets
//! --request-timeout (504 after it), and a watch without timeoutSeconds lasts a random time
//! between --min-request-timeout and twice that. Long-running requests (watch, proxy, exec,
//! attach, portforward, log) neither count nor time out; health checks and system:masters are
//! never refused. The layer runs after authentication, which put the user in the extensions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::UserInfo;
use crate::auth::attributes::Attributes;
use crate::status::ApiError;

/// A watch without a deadline of its own and no --min-request-timeout: practically never.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The limits of one server, from its flags.
pub struct Limits {
    read_only: Pool,
    mutating: Pool,
    request_timeout: Duration,
    min_request_timeout: Duration,
}

/// Slots for requests of one kind; none means unlimited (a limit of 0).
struct Pool {
    slots: Option<Arc<Semaphore>>,
    max: usize,
}

impl Pool {
    fn new(max: usize) -> Pool {
        Pool {
            slots: (max > 0).then(|| Arc::new(Semaphore::new(max))),
            max,
        }
    }

    /// A slot, or None when all are taken. Unlimited pools always admit (with no permit).
    fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.slots {
            None => Ok(None),
            Some(s) => s.clone().try_acquire_owned().map(Some).map_err(|_| ()),
        }
    }

    fn in_use(&self) -> usize {
        self.slots
            .as_ref()
            .map_or(0, |s| self.max - s.available_permits())
    }
}

impl Limits {
    /// Limits of 0 turn a pool's limit off, a `min_request_timeout` of 0 leaves watches
    /// without timeoutSeconds open until the client leaves.
    pub fn new(
        max_requests_inflight: usize,
        max_mutating_requests_inflight: usize,
        request_timeout: Duration,
        min_request_timeout: Duration,
    ) -> Limits {
        Limits {
            read_only: Pool::new(max_requests_inflight),
            mutating: Pool::new(max_mutating_requests_inflight),
            request_timeout,
            min_request_timeout,
        }
    }

    /// How long a watch lasts: its timeoutSeconds, else a random time in [min, 2*min) of
    /// --min-request-timeout, which spreads the reconnects of many clients.
    pub fn watch_timeout(&self, timeout_seconds: Option<u64>) -> Duration {
        match timeout_seconds {
            Some(s) if s > 0 => Duration::from_secs(s),
            _ if self.min_request_timeout.is_zero() => FOREVER,
            _ => self
                .min_request_timeout
                .mul_f64(1.0 + rand::random::<f64>()),
        }
    }

    /// Upstream's gauge of requests being served, by kind.
    pub fn render(&self) -> String {
        format!(
            "# HELP apiserver_current_inflight_requests Number of requests currently using the inflight request limit of this apiserver, per request kind.\n# TYPE apiserver_current_inflight_requests gauge\napiserver_current_inflight_requests{{request_kind=\"mutating\"}} {}\napiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {}\n",
            self.mutating.in_use(),
            self.read_only.in_use()
        )
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(400, 200, Duration::from_secs(60), Duration::from_secs(1800))
    }
}

/// kube-apiserver's long-running check: the watch and proxy verbs, and the attach, exec,
/// proxy, log and portforward subresources (a log without follow too, as upstream).
pub fn is_long_running(attrs: &Attributes) -> bool {
    attrs.resource_request
        && (matches!(attrs.verb.as_str(), "watch" | "proxy")
            || matches!(
                attrs.subresource.as_str(),
                "attach" | "exec" | "proxy" | "log" | "portforward"
            ))
}

fn is_health_check(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The middleware: admits, refuses or times out one request.
pub async fn filter(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or("");
    // The reading authorization used (the auth filter runs first); read here only without it.
    let read_here;
    let attrs = match request.extensions().get::<crate::request::RequestInfo>() {
        Some(info) => &info.attrs,
        None => {
            read_here =
                Attributes::from_request(request.method().as_str(), request.uri().path(), query);
            &read_here
        }
    };
    let mutating = !matches!(attrs.verb.as_str(), "get" | "list" | "watch");
    if is_long_running(attrs) {
        return next.run(request).await;
    }
    let timeout = match requested_timeout(query) {
        // A timeout of 0 or above --request-timeout gets --request-timeout.
        Ok(Some(t)) if !t.is_zero() && t < limits.request_timeout => t,
        Ok(_) => limits.request_timeout,
        Err(e) => return ApiError::bad_request(e).into_response(),
    };
    let pool = if mutating {
        &limits.mutating
    } else {
        &limits.read_only
    };
    let permit = match pool.admit() {
        Ok(permit) => permit,
        // A super-user or a probe always gets an answer, as upstream's.
        Err(()) if is_health_check(request.uri().path()) || privileged(&request) => None,
        Err(()) => return too_many_requests(),
    };
    // The handler runs on as upstream's does after its deadline (a write may still land);
    // it keeps its slot until it is done. Its request body ends just after the deadline (so
    // the answer is the 504, not the handler's complaint about the body), and a client that
    // never finishes sending it does not hold the slot.
    let deadline = tokio::time::Instant::now() + timeout;
    let body_deadline = deadline + Duration::from_secs(1);
    let request = request.map(|body| {
        axum::body::Body::new(DeadlineBody {
            body,
            deadline: Box::pin(tokio::time::sleep_until(body_deadline)),
        })
    });
    let handler = tokio::spawn(async move {
        let response = next.run(request).await;
        drop(permit);
        response
    });
    tokio::select! {
        // Past the deadline, the answer is 504 even if the handler also just finished.
        biased;
        () = tokio::time::sleep_until(deadline) => timed_out().into_response(),
        result = handler => match result {
            Ok(response) => response,
            Err(e) => ApiError::internal(format!("the handler failed: {e}")).into_response(),
        },
    }
}

/// A request body that fails once the request's deadline has passed.
struct DeadlineBody {
    body: axum::body::Body,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive before the request's deadline",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

fn privileged(request: &Request) -> bool {
    request
        .extensions()
        .get::<UserInfo>()
        .is_some_and(|u| u.groups.iter().any(|g| g == "system:masters"))
}

/// Upstream's answer: plain text, not a Status.
fn too_many_requests() -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests, please try again later.\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Upstream's Status for a request past its deadline (details present, with no retry hint).
fn timed_out() -> ApiError {
    ApiError {
        details: Some(Box::new(serde_json::json!({}))),
        ..ApiError::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        )
    }
}

/// The `timeout` query parameter (a Go duration), as upstream reads it.
fn requested_timeout(query: &str) -> Result<Option<Duration>, String> {
    let Some(value) = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "timeout")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let seconds = common::flags::parse_go_duration(&value)
        .map_err(|e| format!("invalid timeout specified in the request URL - {e}"))?;
    // A negative timeout is no timeout of the client's; one past any duration is malformed,
    // as Go's parser refuses it.
    if seconds <= 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(seconds).map(Some).map_err(|_| {
        format!("invalid timeout specified in the request URL - time: invalid duration {value:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use tower::ServiceExt;

    /// An app behind the filter whose `?slow` requests wait for `gate`; the `x-group` header
    /// names the user's group, as authentication would have.
    fn harness(limits: Arc<Limits>, gate: Arc<Semaphore>) -> Router {
        Router::new()
            .fallback(move |request: Request| {
                let gate = gate.clone();
                async move {
                    if request.uri().query().unwrap_or("").contains("slow") {
                        let _ = gate.acquire().await.map(|p| p.forget());
                    }
                    "ok"
                }
            })
            .layer(axum::middleware::from_fn_with_state(limits, filter))
            .layer(axum::middleware::from_fn(
                |mut request: Request, next: Next| async move {
                    let group = request
                        .headers()
                        .get("x-group")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("developers")
                        .to_owned();
                    request
                        .extensions_mut()
                        .insert(UserInfo::new("alice", vec![group]));
                    next.run(request).await
                },
            ))
    }

    fn request(method: &str, uri: &str, group: Option<&str>) -> Request {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(g) = group {
            builder = builder.header("x-group", g);
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn send(app: &Router, method: &str, uri: &str, group: Option<&str>) -> Response {
        app.clone()
            .oneshot(request(method, uri, group))
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits (generously) until `pool` has `n` slots taken.
    async fn until_in_use(pool: &Pool, n: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while pool.in_use() != n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} of {} slots in use, not {n}", pool.in_use(), pool.max));
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_get_429_except_masters_probes_and_long_running() {
        let limits = Arc::new(Limits::new(
            1,
            1,
            Duration::from_secs(3600),
            Duration::from_secs(1800),
        ));
        let gate = Arc::new(Semaphore::new(0));
        let app = harness(limits.clone(), gate.clone());
        // Positive control: under the limit, requests pass.
        let ok = send(&app, "GET", "/api/v1/namespaces/a/pods/x", None).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let slow = tokio::spawn(send_owned(app.clone(), "GET", "/api/v1/pods?slow"));
        until_in_use(&limits.read_only, 1).await;

        let refused = send(&app, "GET", "/api/v1/namespaces/a/pods/x", None).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            text(refused).await,
            "Too many requests, please try again later.\n"
        );
        let masters = send(&app, "GET", "/api/v1/pods", Some("system:masters")).await;
        assert_eq!(masters.status(), StatusCode::OK);
        for probe in ["/healthz", "/livez", "/readyz/etcd"] {
            assert_eq!(
                send(&app, "GET", probe, None).await.status(),
                StatusCode::OK
            );
        }
        let watch = send(&app, "GET", "/api/v1/pods?watch=true", None).await;
        assert_eq!(watch.status(), StatusCode::OK);
        // Mutating requests have their own slots.
        let create = send(&app, "POST", "/api/v1/namespaces/a/pods", None).await;
        assert_eq!(create.status(), StatusCode::OK);

        gate.add_permits(1);
        assert_eq!(slow.await.unwrap().status(), StatusCode::OK);
        until_in_use(&limits.read_only, 0).await;
        let again = send(&app, "GET", "/api/v1/namespaces/a/pods/x", None).await;
        assert_eq!(again.status(), StatusCode::OK);
    }

    async fn send_owned(app: Router, method: &'static str, uri: &'static str) -> Response {
        send(&app, method, uri, None).await
    }

    #[tokio::test]
    async fn requests_past_their_deadline_get_504_and_keep_their_slot() {
        let limits = Arc::new(Limits::new(
            10,
            10,
            Duration::from_millis(100),
            Duration::from_secs(1800),
        ));
        let gate = Arc::new(Semaphore::new(0));
        let app = harness(limits.clone(), gate.clone());
        let late = send(&app, "POST", "/api/v1/namespaces/a/pods?slow", None).await;
        assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);
        let status: serde_json::Value = serde_json::from_str(&text(late).await).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Timeout");
        assert_eq!(status["code"], 504);
        assert_eq!(
            status["message"],
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
        );
        // The handler runs on, holding its slot, until it is done.
        assert_eq!(limits.mutating.in_use(), 1);
        gate.add_permits(1);
        until_in_use(&limits.mutating, 0).await;

        // A shorter `timeout` of the client's applies too; a bad one is refused.
        let limits = Arc::new(Limits::new(
            10,
            10,
            Duration::from_secs(3600),
            Duration::from_secs(1800),
        ));
        let app = harness(limits, Arc::new(Semaphore::new(0)));
        let late = send(&app, "GET", "/api/v1/pods?slow&timeout=100ms", None).await;
        assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);
        let bad = send(&app, "GET", "/api/v1/pods?timeout=soon", None).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        // A watch is long-running: no deadline (it stays pending past the request timeout).
        let watch = tokio::time::timeout(
            Duration::from_millis(500),
            send(
                &app,
                "GET",
                "/api/v1/pods?watch=true&slow&timeout=100ms",
                None,
            ),
        )
        .await;
        assert!(watch.is_err(), "a watch was cut short");
    }

    fn attrs(method: &str, path: &str, query: &str) -> Attributes {
        Attributes::from_request(method, path, query)
    }

    #[test]
    fn long_running_requests_are_upstreams() {
        for (method, path, query) in [
            ("GET", "/api/v1/pods", "watch=true"),
            ("GET", "/api/v1/watch/namespaces/a/pods", ""),
            ("GET", "/api/v1/namespaces/a/pods/p/log", ""),
            ("POST", "/api/v1/namespaces/a/pods/p/exec", "command=ls"),
            ("GET", "/api/v1/namespaces/a/pods/p/attach", ""),
            ("POST", "/api/v1/namespaces/a/pods/p/portforward", ""),
            ("GET", "/api/v1/nodes/n/proxy/stats", ""),
            ("GET", "/api/v1/namespaces/a/services/s/proxy/", ""),
        ] {
            assert!(
                is_long_running(&attrs(method, path, query)),
                "{method} {path}?{query}"
            );
        }
        for (method, path, query) in [
            ("GET", "/api/v1/pods", ""),
            ("GET", "/api/v1/namespaces/a/pods/p", ""),
            ("POST", "/api/v1/namespaces/a/pods", ""),
            ("GET", "/healthz", ""),
            ("GET", "/metrics", "watch=true"),
        ] {
            assert!(
                !is_long_running(&attrs(method, path, query)),
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn health_checks_are_recognized() {
        assert!(is_health_check("/healthz"));
        assert!(is_health_check("/readyz/etcd"));
        assert!(is_health_check("/livez"));
        assert!(!is_health_check("/healthzz"));
        assert!(!is_health_check("/api/v1/healthz"));
    }

    #[test]
    fn requested_timeouts() {
        assert_eq!(requested_timeout(""), Ok(None));
        assert_eq!(
            requested_timeout("timeout=10s"),
            Ok(Some(Duration::from_secs(10)))
        );
        assert_eq!(requested_timeout("timeout=-1s"), Ok(None));
        let err = requested_timeout("timeout=soon").unwrap_err();
        assert!(
            err.starts_with("invalid timeout specified in the request URL - time: invalid"),
            "{err}"
        );
    }

    #[test]
    fn watch_timeouts_are_spread_between_min_and_twice_min() {
        let limits = Limits::new(1, 1, Duration::from_secs(60), Duration::from_secs(1800));
        assert_eq!(limits.watch_timeout(Some(5)), Duration::from_secs(5));
        for t in [None, Some(0)] {
            let d = limits.watch_timeout(t);
            assert!(
                d >= Duration::from_secs(1800) && d <= Duration::from_secs(3600),
                "{d:?}"
            );
        }
        let unbounded = Limits::new(1, 1, Duration::from_secs(60), Duration::ZERO);
        assert_eq!(unbounded.watch_timeout(None), FOREVER);
    }

    #[test]
    fn pools_admit_up_to_their_limit() {
        let pool = Pool::new(2);
        let a = pool.admit().unwrap();
        let _b = pool.admit().unwrap();
        assert!(pool.admit().is_err());
        assert_eq!(pool.in_use(), 2);
        drop(a);
        assert!(pool.admit().is_ok());
        let unlimited = Pool::new(0);
        assert!((0..1000).all(|_| unlimited.admit().is_ok()));
    }
}
