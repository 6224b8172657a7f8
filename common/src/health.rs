//! The small HTTP server every component runs: /healthz (and /livez, /readyz) and the
//! Prometheus /metrics text.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What the server reports.
pub struct Health {
    /// "ok", or why not.
    pub check: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
}

/// Serves until `shutdown` resolves. Fails if the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let health = Arc::new(health);
    let check = |h: Arc<Health>| async move {
        match (h.check)() {
            Ok(()) => (StatusCode::OK, "ok".to_owned()),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    };
    let (h1, h2, h3, h4) = (health.clone(), health.clone(), health.clone(), health);
    let app = Router::new()
        .route("/healthz", get(move || check(h1.clone())))
        .route("/livez", get(move || check(h2.clone())))
        .route("/readyz", get(move || check(h3.clone())))
        .route(
            "/metrics",
            get(move || {
                let h = h4.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        (h.metrics)(),
                    )
                        .into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
    tracing::info!(%addr, "serving /healthz and /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
