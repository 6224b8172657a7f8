//! The listeners' connection handling, with bounded patience for clients: a request's headers
//! must arrive within the header-read timeout (upstream's ReadHeaderTimeout, 32s), a connection
//! with no request in progress is closed after the idle timeout (upstream's IdleTimeout, 90s,
//! for HTTP/1.1 and HTTP/2 alike), and HTTP/2 peers are pinged so dead ones are noticed.
//! Both the plain and the TLS listener serve HTTP/1.1 and h2 with protocol upgrades.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use common::tls::TlsServer;
use hyper::body::Body as HttpBody;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// How long clients may keep a connection without making progress.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From waiting for a request to having its headers (the TLS handshake gets as long).
    pub header_read: Duration,
    /// A connection without a request in progress is closed after this.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(32),
            idle: Duration::from_secs(90),
        }
    }
}

/// The h2 connection preface; anything else is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Go's default of concurrent streams per HTTP/2 connection, which kube-apiserver keeps
/// (--http2-max-streams-per-connection 0).
const H2_MAX_STREAMS: u32 = 250;
/// How often an HTTP/2 peer that sent nothing is pinged; no answer within the header-read
/// timeout closes the connection.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);

fn builder(timeouts: Timeouts) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also bounds the wait for a keep-alive connection's next request.
        .header_read_timeout(timeouts.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(timeouts.header_read);
    builder
}

/// Serves plain HTTP until `stop` turns true, then lets open connections finish (5s at most).
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
) -> crate::Result<()> {
    let stopping = stop.clone();
    accept_loop(listener, stop, move |tcp, peer| {
        let (app, stop) = (app.clone(), stopping.clone());
        async move {
            serve_connection(tcp, app, timeouts, stop, peer).await;
        }
    })
    .await
}

/// Serves HTTPS until `stop` turns true. With client CAs, each request of a connection that
/// presented a certificate carries its [`common::tls::PeerIdentity`] as an extension.
pub async fn serve_tls(
    listener: TcpListener,
    tls: TlsServer,
    app: Router,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
) -> crate::Result<()> {
    let TlsServer {
        acceptor,
        client_ca,
    } = tls;
    let stopping = stop.clone();
    accept_loop(listener, stop, move |tcp, peer| {
        let (acceptor, client_ca) = (acceptor.clone(), client_ca.clone());
        let (app, stop) = (app.clone(), stopping.clone());
        async move {
            let tls = match tokio::time::timeout(timeouts.header_read, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let identity = match (&client_ca, tls.get_ref().1.peer_certificates()) {
                (Some(ca), Some(chain)) => Some(ca.identify(chain)),
                _ => None,
            };
            let app = app.layer(axum::Extension(identity));
            serve_connection(tls, app, timeouts, stop, peer).await;
        }
    })
    .await
}

/// Accepts until `stop` turns true, then waits (5s at most) for open connections to finish.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    handle: F,
) -> crate::Result<()>
where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut open = tokio::task::JoinSet::new();
    loop {
        let Some((tcp, peer)) = common::tls::accept(&listener, &mut stop).await else {
            break;
        };
        // Forget connections that have ended, so the set holds only open ones.
        while open.try_join_next().is_some() {}
        open.spawn(handle(tcp, peer));
    }
    drop(listener);
    // Requests in flight get a moment to finish; what is still open then (watches, which
    // end only with their timeout) is cut, so watchers reconnect to a server that serves.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while open.join_next().await.is_some() {}
    })
    .await;
    open.abort_all();
    Ok(())
}

/// Serves one connection: its first bytes decide HTTP/1 or h2 (they must arrive within the
/// header-read timeout), then hyper serves it until the peer leaves, a timeout closes it or
/// the server shuts down (gracefully: in-flight requests finish, h2 peers get a GOAWAY).
async fn serve_connection<I>(
    mut io: I,
    app: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper-util's protocol detection waits for bytes without a deadline of its own.
    let prefix = match tokio::time::timeout(timeouts.header_read, sniff(&mut io)).await {
        Ok(Ok(prefix)) if !prefix.is_empty() => prefix,
        Ok(_) => return,
        Err(_) => {
            tracing::debug!(%peer, "no request within the header-read timeout");
            return;
        }
    };
    let io = Prefixed { prefix, io };
    let activity = Arc::new(Activity::default());
    let tracked = activity.clone();
    let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let guard = tracked.start();
        let app = app.clone();
        async move {
            let mut request = request.map(Body::new);
            // The peer, for the audit log's sourceIPs.
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = app.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(TrackedBody {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let builder = builder(timeouts);
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.idle_for(timeouts.idle), if !closing => {
                tracing::debug!(%peer, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = stopped(&mut stop), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Reads until the bytes tell HTTP/1 from h2: the whole h2 preface, or a byte that departs from
/// it. Empty on EOF before any byte.
async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(H2_PREFACE.len());
    while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
        let mut chunk = [0u8; 24];
        let want = H2_PREFACE.len() - buf.len();
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

/// An IO whose reads first return bytes already read from it.
struct Prefixed<I> {
    prefix: Vec<u8>,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Requests of one connection in progress: from their arrival until their response body is
/// done or dropped (a watch or an upgraded stream counts as long as it lasts).
#[derive(Default)]
struct Activity {
    active: AtomicUsize,
    changed: Notify,
}

struct ActiveGuard(Arc<Activity>);

impl Activity {
    fn start(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        ActiveGuard(self.clone())
    }

    /// Completes once no request has been in progress for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.active.load(Ordering::SeqCst) == 0 {
                if tokio::time::timeout(idle, changed).await.is_err() {
                    return;
                }
            } else {
                changed.await;
            }
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in progress until it is dropped.
struct TrackedBody {
    body: Body,
    _guard: ActiveGuard,
}

impl HttpBody for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sniff_tells_http1_from_h2() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        // Whatever one read gave, once it departs from the preface.
        assert!(b"GET / HTTP/1.1\r\n".starts_with(&sniff(&mut server).await.unwrap()));
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, H2_PREFACE)
            .await
            .unwrap();
        assert_eq!(sniff(&mut server).await.unwrap(), H2_PREFACE);
        drop(client);
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(sniff(&mut server).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn activity_is_idle_only_without_requests() {
        let activity = Arc::new(Activity::default());
        let guard = activity.start();
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            activity.idle_for(Duration::from_millis(50)),
        )
        .await;
        assert!(waited.is_err(), "idle while a request is in progress");
        drop(guard);
        tokio::time::timeout(
            Duration::from_secs(30),
            activity.idle_for(Duration::from_millis(50)),
        )
        .await
        .expect("idle once the request is done");
    }
}
