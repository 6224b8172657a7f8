//! proxy's integration tests, one module per area, linked into one test binary (one
//! link instead of one per file keeps the build's time and disk down).

mod binary;
mod cluster;
mod netns;
mod netpol;
