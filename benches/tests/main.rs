//! benches's integration tests, one module per area, linked into one test binary (one
//! link instead of one per file keeps the build's time and disk down).

mod controller_perf;
mod pod_startup;
mod proxy_sync;
mod scheduler_perf;
