//! Graceful shutdown: a future that completes on SIGTERM or Ctrl-C (SIGINT).

/// Completes when the process is asked to stop.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => tracing::info!("received Ctrl-C; shutting down"),
            _ = term.recv() => tracing::info!("received SIGTERM; shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
