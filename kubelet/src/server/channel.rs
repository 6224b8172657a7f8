//! The v5.channel.k8s.io WebSocket protocol (kubectl 1.30+ asks for nothing else) over a
//! runtime that speaks v4.channel.k8s.io, as containerd 1.6's streaming server does. Both
//! frame every binary message with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 the
//! final Status, 4 terminal resize); v5 adds channel 255, "this stream is closed", which v4
//! cannot carry. So an exec with stdin speaks SPDY to the runtime instead (`spdy`), as
//! upstream translates v5 to SPDY: the close signal for stdin becomes a half-close of the
//! SPDY stdin stream, and the process reads EOF.

use axum::extract::ws::{
    CloseFrame, Message as ClientMessage, WebSocket, WebSocketUpgrade, close_code,
};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as RuntimeMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::error;
use super::spdy;
use super::streaming::StreamOptions;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
/// v5's channel for "the stream with the id in the payload is closed".
const CLOSE_SIGNAL: u8 = 255;
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// Whether the client offers v5 (kubectl puts it first; the runtime would refuse it).
pub fn wants_v5(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == V5)
}

/// Accepts the client's v5 WebSocket and relays it to the runtime's v4 one at `target`.
pub async fn translate_v5(request: Request, target: Uri) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    // Dial the runtime first, so a refusal is an HTTP error the client can show.
    let ws_url = target.to_string().replacen("http", "ws", 1);
    let mut runtime_request = match ws_url.into_client_request() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    runtime_request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        axum::http::HeaderValue::from_static(V4),
    );
    let runtime = match tokio_tungstenite::connect_async(runtime_request).await {
        Ok((socket, _)) => socket,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("the runtime's streaming server: {e}"),
            );
        }
    };
    upgrade
        .protocols([V5])
        .on_upgrade(move |client| relay(client, runtime))
}

async fn relay(
    client: WebSocket,
    runtime: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut runtime_tx, mut runtime_rx) = runtime.split();
    let upstream = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let forwarded = match message {
                ClientMessage::Binary(data) if data.first() == Some(&CLOSE_SIGNAL) => continue,
                ClientMessage::Binary(data) => RuntimeMessage::Binary(data),
                ClientMessage::Text(text) => RuntimeMessage::Text(text.as_str().into()),
                ClientMessage::Close(_) => break,
                ClientMessage::Ping(_) | ClientMessage::Pong(_) => continue,
            };
            if runtime_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = runtime_tx.close().await;
    };
    let downstream = async {
        while let Some(Ok(message)) = runtime_rx.next().await {
            let forwarded = match message {
                // The runtime opens with an empty frame on the first output channel ("the
                // connection is established"). It carries nothing, and a v5 client may not
                // have registered that channel yet: kubectl then logs "Unknown stream id 1"
                // on stderr, mixed into the command's own. The SPDY relay drops it too.
                RuntimeMessage::Binary(data) if data.len() <= 1 => continue,
                RuntimeMessage::Binary(data) => ClientMessage::Binary(data),
                RuntimeMessage::Text(text) => ClientMessage::Text(text.as_str().into()),
                RuntimeMessage::Close(_) => break,
                _ => continue,
            };
            if client_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        close_normally(&mut client_tx).await;
    };
    // The session ends when the runtime closes (the process exited and its Status was sent).
    tokio::select! {
        _ = downstream => {}
        _ = async { upstream.await; std::future::pending::<()>().await } => {}
    }
}

/// Accepts the client's v5 WebSocket and relays it to the runtime over SPDY, one SPDY
/// stream per channel the session asked for (the runtime expects exactly those).
pub async fn translate_v5_spdy(request: Request, target: Uri, opts: &StreamOptions) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    // Open the runtime's session first, so a refusal is an HTTP error the client can show.
    let session = match open_spdy(&target, opts).await {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("the runtime's streaming server: {e:#}"),
            );
        }
    };
    upgrade
        .protocols([V5])
        .on_upgrade(move |client| relay_spdy(client, session))
}

/// A SPDY session with its streams created and accepted.
struct SpdySession {
    reader: spdy::Reader,
    writer: spdy::Writer,
    /// SPDY stream id per v5 channel.
    streams: Vec<(u8, u32)>,
    /// Frames that came before the last reply.
    early: Vec<spdy::Frame>,
}

async fn open_spdy(target: &Uri, opts: &StreamOptions) -> crate::Result<SpdySession> {
    let (mut reader, mut writer) = spdy::connect(target).await?;
    // The order upstream's client creates them in: error first.
    let mut wanted = vec![(ERROR, "error")];
    for (on, channel, name) in [
        (opts.stdin, STDIN, "stdin"),
        (opts.stdout, STDOUT, "stdout"),
        (opts.stderr, STDERR, "stderr"),
        (opts.tty, RESIZE, "resize"),
    ] {
        if on {
            wanted.push((channel, name));
        }
    }
    let mut streams = Vec::new();
    for (i, (channel, name)) in wanted.into_iter().enumerate() {
        let id = 2 * i as u32 + 1;
        writer.syn_stream(id, &[("streamtype", name)]).await?;
        streams.push((channel, id));
    }
    let mut pending: Vec<u32> = streams.iter().map(|(_, id)| *id).collect();
    let mut early = Vec::new();
    let wait = async {
        while !pending.is_empty() {
            let frame = reader.next().await?.ok_or_else(|| {
                crate::Error::Stream("the connection ended before the streams".into())
            })?;
            match &frame {
                spdy::Frame::Control {
                    kind: spdy::SYN_REPLY,
                    ..
                } => {
                    let id = frame.stream();
                    pending.retain(|p| *p != id);
                }
                spdy::Frame::Control {
                    kind: spdy::RST_STREAM,
                    ..
                } => {
                    return Err(crate::Error::Stream(format!(
                        "the runtime refused stream {}",
                        frame.stream()
                    )));
                }
                spdy::Frame::Control {
                    kind: spdy::GOAWAY, ..
                } => {
                    return Err(crate::Error::Stream(
                        "the runtime went away before accepting the streams".into(),
                    ));
                }
                spdy::Frame::Control {
                    kind: spdy::PING,
                    payload,
                    ..
                } => {
                    writer.pong(payload).await?;
                }
                _ => early.push(frame),
            }
        }
        Ok::<_, crate::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), wait)
        .await
        .map_err(|_| {
            crate::Error::Stream("timed out waiting for the runtime to accept the streams".into())
        })??;
    Ok(SpdySession {
        reader,
        writer,
        streams,
        early,
    })
}

async fn relay_spdy(client: WebSocket, session: SpdySession) {
    let SpdySession {
        mut reader,
        writer,
        streams,
        early,
    } = session;
    let (mut client_tx, mut client_rx) = client.split();
    let id_of = |channel: u8| {
        streams
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, id)| *id)
    };
    let channel_of = |id: u32| streams.iter().find(|(_, i)| *i == id).map(|(c, _)| *c);
    let writer = tokio::sync::Mutex::new(writer);
    let upstream = async {
        // Our streams half-closed so far (each may be closed once).
        let mut closed: Vec<u32> = Vec::new();
        while let Some(Ok(message)) = client_rx.next().await {
            let ClientMessage::Binary(data) = message else {
                if matches!(message, ClientMessage::Close(_)) {
                    break;
                }
                continue;
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let target = match channel {
                CLOSE_SIGNAL => payload.first().copied().and_then(id_of),
                STDIN | RESIZE => id_of(channel),
                _ => None,
            };
            let Some(id) = target.filter(|id| !closed.contains(id)) else {
                continue;
            };
            let fin = channel == CLOSE_SIGNAL;
            let data = if fin { &[][..] } else { payload };
            if writer.lock().await.data(id, data, fin).await.is_err() {
                return;
            }
            if fin {
                closed.push(id);
            }
        }
        // A client that left without the close signal ends stdin too, as closing the
        // runtime's WebSocket would.
        if let Some(id) = id_of(STDIN).filter(|id| !closed.contains(id)) {
            let _ = writer.lock().await.data(id, &[], true).await;
        }
    };
    let downstream = async {
        // Streams the runtime still writes to; the session ends when none is left, or the
        // runtime closes or goes away.
        let mut open: Vec<u32> = streams
            .iter()
            .filter(|(c, _)| matches!(*c, STDOUT | STDERR | ERROR))
            .map(|(_, id)| *id)
            .collect();
        let mut status = Vec::new();
        let mut early = early.into_iter();
        loop {
            let frame = match early.next() {
                Some(f) => Some(f),
                None => reader.next().await.ok().flatten(),
            };
            let Some(frame) = frame else { break };
            let (id, done) = match frame {
                spdy::Frame::Data { stream, fin, data } => {
                    match channel_of(stream) {
                        // The Status goes out whole, as the runtime's WebSocket sends it.
                        Some(ERROR) => status.extend_from_slice(&data),
                        Some(channel @ (STDOUT | STDERR)) if !data.is_empty() => {
                            let mut message = Vec::with_capacity(1 + data.len());
                            message.push(channel);
                            message.extend_from_slice(&data);
                            if client_tx
                                .send(ClientMessage::Binary(message.into()))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        _ => {}
                    }
                    (stream, fin)
                }
                spdy::Frame::Control {
                    kind: spdy::PING,
                    ref payload,
                    ..
                } => {
                    if writer.lock().await.pong(payload).await.is_err() {
                        break;
                    }
                    continue;
                }
                spdy::Frame::Control {
                    kind: spdy::RST_STREAM,
                    ..
                } => (frame.stream(), true),
                spdy::Frame::Control {
                    kind: spdy::GOAWAY, ..
                } => break,
                spdy::Frame::Control { .. } => continue,
            };
            if done {
                open.retain(|o| *o != id);
                if open.is_empty() {
                    break;
                }
            }
        }
        if !status.is_empty() {
            let mut message = vec![ERROR];
            message.extend_from_slice(&status);
            let _ = client_tx.send(ClientMessage::Binary(message.into())).await;
        }
        close_normally(&mut client_tx).await;
    };
    tokio::select! {
        _ = downstream => {}
        _ = async { upstream.await; std::future::pending::<()>().await } => {}
    }
}

/// Ends the client's session with a normal closure: clients read anything else as an error.
async fn close_normally(client_tx: &mut futures::stream::SplitSink<WebSocket, ClientMessage>) {
    let normal = ClientMessage::Close(Some(CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    }));
    let _ = client_tx.send(normal).await;
    let _ = client_tx.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{
        Request as Handshake, Response as HandshakeResponse,
    };

    /// A runtime's v4 streaming server that answers one exec as containerd's does.
    async fn runtime(frames: Vec<Vec<u8>>) -> Uri {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err)] // tungstenite's callback type
            let echo_v4 = |_: &Handshake, mut response: HandshakeResponse| {
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    axum::http::HeaderValue::from_static(V4),
                );
                Ok(response)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, echo_v4)
                .await
                .unwrap();
            for frame in frames {
                ws.send(RuntimeMessage::Binary(frame.into())).await.unwrap();
            }
            let _ = ws.close(None).await;
        });
        format!("http://{addr}/exec/token").parse().unwrap()
    }

    /// Serves translate_v5 towards `target`; returns the URL a v5 client dials.
    async fn kubelet(target: Uri) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/exec",
            axum::routing::get(move |request: Request| translate_v5(request, target.clone())),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("ws://{addr}/exec")
    }

    #[tokio::test]
    async fn v5_relay_drops_the_empty_opening_frame_and_keeps_the_rest() {
        let status = br#"{"status":"Failure","reason":"NonZeroExitCode"}"#;
        let frames = vec![
            vec![STDOUT],
            b"\x01out\n".to_vec(),
            b"\x02err\n".to_vec(),
            [&[ERROR][..], status].concat(),
        ];
        let url = kubelet(runtime(frames.clone()).await).await;
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            axum::http::HeaderValue::from_static(V5),
        );
        let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut received = Vec::new();
        let mut closed_normally = false;
        while let Some(message) = client.next().await {
            match message.unwrap() {
                RuntimeMessage::Binary(data) => received.push(data.to_vec()),
                RuntimeMessage::Close(frame) => {
                    closed_normally = frame.is_some_and(|f| u16::from(f.code) == 1000);
                }
                _ => {}
            }
        }
        // Everything but the empty opening frame, in order, then a normal closure.
        assert_eq!(received, frames[1..]);
        assert!(closed_normally);
    }
}
