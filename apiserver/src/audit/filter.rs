//! The audit middleware and a request's [`AuditContext`]. The middleware sits between
//! `metrics::track` and `auth::filter`: it sets the Audit-ID header on every answer and, when
//! auditing is on, hands the context to `auth::filter`, which starts the recording once the
//! user is known (the policy needs it) and adds the impersonated user and the authorization
//! decision. The answer's body is wrapped so ResponseComplete is emitted when it has been
//! sent entirely (a watch: when it ends), with the body in hand when the level wants it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::body::{Frame, SizeHint};
use parking_lot::Mutex;

use super::Auditor;
use super::event::{DECISION, Event, ObjectReference, REASON, RawBody, RequestRecord};
use super::policy::{Level, RequestAuditConfig, Stage};
use crate::auth::UserInfo;
use crate::codec::MAX_BODY;
use crate::request::RequestInfo;
use crate::state::ApiState;

/// The header a client may set and every answer carries.
pub const AUDIT_ID_HEADER: &str = "audit-id";

/// One request's audit state, shared by the middleware and `auth::filter`.
pub struct AuditContext {
    auditor: Arc<Auditor>,
    audit_id: HeaderValue,
    received: DateTime<Utc>,
    /// Set once the request is authenticated and the policy gave it a level above None.
    recording: Mutex<Option<Recording>>,
}

/// An event in the making.
struct Recording {
    config: RequestAuditConfig,
    request: Arc<RequestRecord>,
    long_running: bool,
    impersonated_user: Option<Arc<UserInfo>>,
    annotations: BTreeMap<&'static str, String>,
    request_body: Option<Arc<Mutex<Captured>>>,
    request_content_type: String,
}

/// Body bytes kept as they pass, up to [`MAX_BODY`]; beyond it they are let go.
#[derive(Default)]
struct Captured {
    chunks: Vec<Bytes>,
    len: usize,
    overflowed: bool,
}

impl Captured {
    fn keep(&mut self, data: &Bytes) {
        if self.overflowed {
            return;
        }
        self.len += data.len();
        if self.len > MAX_BODY {
            self.overflowed = true;
            self.chunks = Vec::new();
        } else {
            self.chunks.push(data.clone());
        }
    }

    /// The whole body, None if it was too big.
    fn take(&mut self) -> Option<Bytes> {
        if self.overflowed {
            return None;
        }
        let chunks = std::mem::take(&mut self.chunks);
        Some(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(chunks.concat()),
        })
    }
}

tokio::task_local! {
    /// The audit context of the request a handler is serving: admission annotates its event
    /// without the context travelling through every write path.
    static CURRENT: Arc<AuditContext>;
}

/// Serves `handler` with `audit` as the request's audit context for [`annotate`].
pub async fn serving<F: Future>(audit: Option<Arc<AuditContext>>, handler: F) -> F::Output {
    match audit {
        Some(audit) => CURRENT.scope(audit, handler).await,
        None => handler.await,
    }
}

/// Adds an annotation to the audit event of the request being served, if it is audited.
pub fn annotate(key: &'static str, value: String) {
    let _ = CURRENT.try_with(|audit| audit.annotate(key, value));
}

impl AuditContext {
    /// Evaluates the policy for the authenticated `user` and, at a level above None, starts
    /// recording: RequestReceived is emitted now, unless omitted.
    pub fn authenticated(&self, request: &Request, user: &UserInfo, info: &RequestInfo) {
        if self.begin(request, user, info).is_some() {
            self.emit(Stage::RequestReceived, None, None, None);
        }
    }

    /// A request refused 401: recorded with no user and only its ResponseComplete, as
    /// upstream's failed-authentication audit.
    pub fn unauthenticated(&self, request: &Request, info: &RequestInfo) {
        let nobody = UserInfo {
            name: String::new(),
            uid: String::new(),
            groups: Vec::new(),
            extra: BTreeMap::new(),
        };
        self.begin(request, &nobody, info);
    }

    fn begin(&self, request: &Request, user: &UserInfo, info: &RequestInfo) -> Option<()> {
        let config = self.auditor.policy.evaluate(user, &info.attrs);
        self.auditor.observe_level(config.level);
        if config.level == Level::None {
            return None;
        }
        let attrs = &info.attrs;
        let object_ref = attrs.resource_request.then(|| ObjectReference {
            resource: attrs.resource.clone(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            api_group: attrs.api_group.clone(),
            api_version: attrs.api_version.clone(),
            subresource: attrs.subresource.clone(),
            ..Default::default()
        });
        let headers = request.headers();
        let record = RequestRecord {
            audit_id: self.audit_id.to_str().unwrap_or_default().to_owned(),
            request_uri: request.uri().path_and_query().map_or_else(
                || request.uri().path().to_owned(),
                |p| p.as_str().to_owned(),
            ),
            verb: attrs.verb.clone(),
            user: user.clone(),
            source_ips: source_ips(
                headers,
                request.extensions().get::<ConnectInfo<SocketAddr>>(),
            ),
            user_agent: header(headers, "user-agent").unwrap_or_default().to_owned(),
            object_ref,
            received: self.received,
        };
        *self.recording.lock() = Some(Recording {
            config,
            request: Arc::new(record),
            long_running: crate::limits::is_long_running(attrs),
            impersonated_user: None,
            annotations: BTreeMap::new(),
            request_body: None,
            request_content_type: String::new(),
        });
        Some(())
    }

    /// The request acts as `user` (Impersonate-User).
    pub fn impersonated(&self, user: &UserInfo) {
        if let Some(r) = self.recording.lock().as_mut() {
            r.impersonated_user = Some(Arc::new(user.clone()));
        }
    }

    /// The authorizers' verdict, as upstream's annotations.
    pub fn decided(&self, allowed: bool, reason: &str) {
        if let Some(r) = self.recording.lock().as_mut() {
            let decision = if allowed { "allow" } else { "forbid" };
            r.annotations.insert(DECISION, decision.to_owned());
            r.annotations.insert(REASON, reason.to_owned());
        }
    }

    /// An annotation for the request's event, as admission plugins add them.
    pub fn annotate(&self, key: &'static str, value: String) {
        if let Some(r) = self.recording.lock().as_mut() {
            r.annotations.insert(key, value);
        }
    }

    /// Keeps the request's body as the handler reads it, when the event will hold it
    /// (Request and above), or name the created object (a create at Metadata).
    pub fn capture_request_body(&self, request: Request) -> Request {
        let mut recording = self.recording.lock();
        let Some(r) = recording.as_mut() else {
            return request;
        };
        let verb = r.request.verb.as_str();
        let writes = matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        // Streams (exec, attach, portforward, proxy) carry no object.
        if r.long_running || !(writes && r.config.level >= Level::Request || verb == "create") {
            return request;
        }
        let captured = Arc::new(Mutex::new(Captured::default()));
        r.request_body = Some(captured.clone());
        r.request_content_type = header(request.headers(), "content-type")
            .unwrap_or("application/json")
            .to_owned();
        request.map(|body| {
            Body::new(Tee {
                inner: body,
                captured,
            })
        })
    }

    fn emit(
        &self,
        stage: Stage,
        response_code: Option<u16>,
        error_body: Option<Bytes>,
        response_body: Option<RawBody>,
    ) {
        let recording = self.recording.lock();
        let Some(r) = recording.as_ref() else {
            return;
        };
        if !r.config.records(stage) {
            return;
        }
        let request_body = match (&r.request_body, stage) {
            (Some(captured), Stage::ResponseComplete | Stage::Panic) => {
                captured.lock().take().map(|bytes| RawBody {
                    bytes,
                    content_type: r.request_content_type.clone(),
                })
            }
            _ => None,
        };
        let annotations = if stage == Stage::RequestReceived {
            Arc::default()
        } else {
            Arc::new(r.annotations.clone())
        };
        let event = Event {
            level: r.config.level,
            stage,
            request: r.request.clone(),
            stage_timestamp: Utc::now(),
            impersonated_user: r.impersonated_user.clone(),
            response_code,
            error_body,
            request_body,
            response_body: response_body.filter(|_| r.config.level >= Level::RequestResponse),
            annotations,
            omit_managed_fields: r.config.omit_managed_fields,
        };
        drop(recording);
        self.auditor.emit(event);
    }

    /// Wraps the answer: ResponseStarted now for long-running requests, ResponseComplete when
    /// its body has been sent (or dropped).
    fn respond(self: Arc<Self>, response: Response) -> Response {
        let (long_running, level) = match self.recording.lock().as_ref() {
            Some(r) => (r.long_running, r.config.level),
            None => return response,
        };
        let code = response.status().as_u16();
        if long_running {
            self.emit(Stage::ResponseStarted, Some(code), None, None);
        }
        // A watch's stream is never kept; a failure's Status always is (it is small).
        let keep = code >= 400 || (level >= Level::RequestResponse && !long_running);
        let content_type = crate::codec::content_type(response.headers());
        response.map(|body| {
            Body::new(AuditedBody {
                inner: body,
                code,
                content_type,
                captured: keep.then(Captured::default),
                context: Some(self),
            })
        })
    }
}

/// Upstream's source IPs: X-Forwarded-For, then X-Real-Ip, then the peer.
fn source_ips(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>) -> Vec<String> {
    let mut ips: Vec<String> = header(headers, "x-forwarded-for")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_owned)
        .collect();
    let others = header(headers, "x-real-ip")
        .map(|ip| ip.trim().to_owned())
        .into_iter()
        .chain(peer.map(|ConnectInfo(addr)| addr.ip().to_string()));
    for ip in others {
        if ip.parse::<std::net::IpAddr>().is_ok() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: Audit-ID on every answer (the client's, else a new UUID), and with a
/// policy, the request's events.
pub async fn filter(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    use futures::FutureExt;
    let audit_id = request
        .headers()
        .get(AUDIT_ID_HEADER)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id);
            HeaderValue::from_str(id).expect("a UUID is a header value")
        });
    let Some(auditor) = &state.audit else {
        let mut response = next.run(request).await;
        response.headers_mut().insert(AUDIT_ID_HEADER, audit_id);
        return response;
    };
    let context = Arc::new(AuditContext {
        auditor: auditor.clone(),
        audit_id: audit_id.clone(),
        received: Utc::now(),
        recording: Mutex::new(None),
    });
    request.extensions_mut().insert(context.clone());
    let mut response = match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => context.respond(response),
        Err(panic) => {
            // Recorded, then passed on to metrics::track, which answers the 500.
            let what = crate::metrics::panic_message(&*panic);
            let status = serde_json::json!({"kind": "Status", "status": "Failure",
                "reason": "InternalError", "message": format!("APIServer panic'd: {what}")});
            let status = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
            context.emit(Stage::Panic, Some(500), Some(status), None);
            std::panic::resume_unwind(panic);
        }
    };
    response.headers_mut().insert(AUDIT_ID_HEADER, audit_id);
    response
}

/// A request body that keeps what the handler reads.
struct Tee {
    inner: Body,
    captured: Arc<Mutex<Captured>>,
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            self.captured.lock().keep(data);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that emits ResponseComplete once sent or dropped.
struct AuditedBody {
    inner: Body,
    code: u16,
    /// The answer's media type, for decoding it into the event.
    content_type: String,
    captured: Option<Captured>,
    context: Option<Arc<AuditContext>>,
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(captured), Some(data)) = (self.captured.as_mut(), frame.data_ref()) {
                    captured.keep(data);
                }
            }
            Poll::Ready(None) => self.complete(),
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl AuditedBody {
    fn complete(&mut self) {
        let Some(context) = self.context.take() else {
            return;
        };
        let body = self.captured.as_mut().and_then(Captured::take);
        // A failure's Status is its responseStatus, and at RequestResponse its object too.
        let error_body = body.clone().filter(|_| self.code >= 400);
        // A protobuf answer is recorded as the JSON it decodes to, as upstream records objects.
        let response_body = body.map(|bytes| RawBody {
            bytes,
            content_type: std::mem::take(&mut self.content_type),
        });
        context.emit(
            Stage::ResponseComplete,
            Some(self.code),
            error_body,
            response_body,
        );
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        // A body hyper stops polling early (the client left, or it never polls an empty one).
        self.complete();
    }
}
