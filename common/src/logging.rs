//! Leveled logging for every binary: `-v N` as upstream's klog verbosity, overridden by RUST_LOG.

use tracing_subscriber::EnvFilter;

/// Maps a klog-style verbosity to a tracing level: 0-1 info and above... 4+ debug, 6+ trace.
pub fn level_for(verbosity: u8) -> &'static str {
    match verbosity {
        0..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    }
}

/// Installs the global subscriber once; RUST_LOG wins over `verbosity` when set.
pub fn init(verbosity: u8) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level_for(verbosity)));
    // Logs go to stderr, as klog's do, leaving stdout to what a command prints.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
