//! dns's integration tests: the server fed by a real apiserver, one module per area,
//! linked into one test binary.

mod binary;
mod zone;
