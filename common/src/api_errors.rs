//! Reading the apiserver's refusals from a client error, as upstream's apimachinery
//! `errors.IsNotFound` and friends (kube's `Status` helpers: the reason decides, the code
//! stands in for a missing one). The code alone cannot tell AlreadyExists (a create lost a
//! race) from Conflict (an update read a stale resourceVersion): both are 409.

fn status(e: &kube::Error) -> Option<&kube::core::Status> {
    match e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

/// The object (or its namespace) does not exist.
pub fn is_not_found(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_not_found())
}

/// A write based on a stale resourceVersion (or a failed precondition): read and retry.
pub fn is_conflict(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_conflict())
}

/// A create whose name is taken.
pub fn is_already_exists(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_already_exists())
}

/// The caller may not do this (RBAC, admission, a namespace being terminated).
pub fn is_forbidden(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_forbidden())
}

/// Whether sending the request again can succeed: a stale read (Conflict), a server that is
/// busy, timing out or failing (429, 5xx), or a broken connection. A refusal of the request
/// itself (invalid, forbidden, not found) stays a refusal until something else changes.
pub fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.is_conflict()
                || matches!(s.code, 429 | 500 | 502 | 503 | 504)
                || matches!(
                    s.reason.as_str(),
                    "ServerTimeout" | "Timeout" | "TooManyRequests" | "ServiceUnavailable"
                )
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("", reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn the_reason_decides() {
        assert!(is_not_found(&api(404, "NotFound")));
        assert!(is_conflict(&api(409, "Conflict")));
        assert!(!is_conflict(&api(409, "AlreadyExists")));
        assert!(is_already_exists(&api(409, "AlreadyExists")));
        assert!(!is_already_exists(&api(409, "Conflict")));
        assert!(is_forbidden(&api(403, "Forbidden")));
        assert!(!is_not_found(&api(500, "InternalError")));
        assert!(!is_not_found(&kube::Error::LinesCodecMaxLineLengthExceeded));
        assert!(is_retryable(&api(409, "Conflict")));
        assert!(is_retryable(&api(503, "ServiceUnavailable")));
        assert!(!is_retryable(&api(422, "Invalid")));
        assert!(!is_retryable(&api(409, "AlreadyExists")));
    }
}
