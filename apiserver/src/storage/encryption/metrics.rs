//! Upstream's encryption-at-rest metrics: every value transformed to or from the store, and
//! the KMS v2 plugins' calls, seed cache and key IDs. Rendered on /metrics when
//! --encryption-provider-config is set.

use std::time::Instant;

use common::metrics::{Counter, Gauge, Histogram, exponential};

static TRANSFORMATION_BUCKETS: [f64; 25] = exponential(5e-6, 2.0);
static KMS_BUCKETS: [f64; 20] = exponential(0.0001, 2.0);

static OPERATIONS: Counter = Counter::new(
    "apiserver_storage_transformation_operations_total",
    "Values transformed on their way to the store (to_storage) or from it (from_storage), by \
     resource, transformer prefix and outcome (OK, the KMS plugin's gRPC code, or \
     unknown-non-grpc).",
    &[
        "resource",
        "transformation_type",
        "transformer_prefix",
        "status",
    ],
);
static DURATION: Histogram = Histogram::new(
    "apiserver_storage_transformation_duration_seconds",
    "Seconds each successful transformation took.",
    &["transformation_type", "transformer_prefix"],
    &TRANSFORMATION_BUCKETS,
);
static KMS_CALLS: Histogram = Histogram::new(
    "apiserver_envelope_encryption_kms_operations_latency_seconds",
    "Seconds each call to a KMS v2 plugin took, by gRPC method and status.",
    &["provider_name", "method_name", "grpc_status_code"],
    &KMS_BUCKETS,
);
static INVALID_KEY_IDS: Counter = Counter::new(
    "apiserver_envelope_encryption_invalid_key_id_from_status_total",
    "Status answers of a KMS v2 plugin whose key ID was empty or too long.",
    &["provider_name", "error"],
);
static SEED_CACHE_SIZE: Gauge = Gauge::new(
    "apiserver_envelope_encryption_dek_source_cache_size",
    "Decrypted DEK sources (seeds) a KMS v2 provider holds in memory.",
    &["provider_name"],
);
static CACHE_MISSES: Counter = Counter::new(
    "apiserver_storage_envelope_transformation_cache_misses_total",
    "Reads whose DEK source was not in memory, so the KMS v2 plugin was asked to decrypt it.",
    &[],
);

/// Which way a value went.
#[derive(Clone, Copy)]
pub enum Direction {
    ToStorage,
    FromStorage,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::ToStorage => "to_storage",
            Direction::FromStorage => "from_storage",
        }
    }
}

/// The label of a transformer by its prefix: `identity` for none, `unknown` when no
/// configured transformer matched.
fn prefix_label(prefix: Option<&[u8]>) -> std::borrow::Cow<'_, str> {
    match prefix {
        None => "unknown".into(),
        Some(b"") => "identity".into(),
        Some(p) => String::from_utf8_lossy(p),
    }
}

/// One transformation of a value of `resource` by the transformer with `prefix` (None when
/// none matched), ending with `status` (`OK` or why not).
pub fn transformed(
    resource: &str,
    direction: Direction,
    prefix: Option<&[u8]>,
    status: &str,
    started: Instant,
) {
    let prefix = prefix_label(prefix);
    OPERATIONS.inc(&[resource, direction.as_str(), &prefix, status]);
    if status == "OK" {
        DURATION.observe(
            &[direction.as_str(), &prefix],
            started.elapsed().as_secs_f64(),
        );
    }
}

/// One call to a KMS v2 plugin (`/v2.KeyManagementService/Encrypt`) and its gRPC status.
pub fn kms_call(provider: &str, method: &str, code: tonic::Code, started: Instant) {
    KMS_CALLS.observe(
        &[provider, method, code_name(code)],
        started.elapsed().as_secs_f64(),
    );
}

/// A Status answer with an unusable key ID (`empty` or `too_long`).
pub fn invalid_key_id(provider: &str, error: &str) {
    INVALID_KEY_IDS.inc(&[provider, error]);
}

pub fn seed_cache(provider: &str, size: usize, missed: bool) {
    SEED_CACHE_SIZE.set(&[provider], size as f64);
    if missed {
        CACHE_MISSES.inc(&[]);
    }
}

/// gRPC's names of its codes, as upstream's labels spell them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

pub fn render(out: &mut String) {
    OPERATIONS.render(out);
    DURATION.render(out);
    KMS_CALLS.render(out);
    INVALID_KEY_IDS.render(out);
    SEED_CACHE_SIZE.render(out);
    CACHE_MISSES.render(out);
}
