//! The v5.channel.k8s.io WebSocket protocol (kubectl 1.30+ asks for nothing else) over a
//! runtime that speaks v4.channel.k8s.io, as containerd 1.6's streaming server does. Both
//! frame every binary message with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 the
//! final Status, 4 terminal resize); v5 adds channel 255, "this stream is closed", which v4
//! cannot carry: a client closing stdin early is therefore not seen by the process.

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

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
/// v5's channel for "the stream with the id in the payload is closed".
const CLOSE_SIGNAL: u8 = 255;

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
                RuntimeMessage::Binary(data) => ClientMessage::Binary(data),
                RuntimeMessage::Text(text) => ClientMessage::Text(text.as_str().into()),
                RuntimeMessage::Close(_) => break,
                _ => continue,
            };
            if client_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        // A normal closure: clients read anything else as an error.
        let normal = ClientMessage::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        }));
        let _ = client_tx.send(normal).await;
        let _ = client_tx.close().await;
    };
    // The session ends when the runtime closes (the process exited and its Status was sent).
    tokio::select! {
        _ = downstream => {}
        _ = async { upstream.await; std::future::pending::<()>().await } => {}
    }
}
