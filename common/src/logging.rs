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
    init_quieting(verbosity, &[]);
}

/// [`init`], with the crates in `chatty` (libraries that log every request at info) held to
/// warnings below verbosity 4.
pub fn init_quieting(verbosity: u8, chatty: &[&str]) {
    let mut directives = level_for(verbosity).to_owned();
    if verbosity < 4 {
        for target in chatty {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    // Logs go to stderr, as klog's do, leaving stdout to what a command prints.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
