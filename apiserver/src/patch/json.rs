//! JSON patch (RFC 6902) with bounded cost, as upstream's apiserver bounds it: at most 10,000
//! operations, at most 3 MiB added by `copy` over the whole patch (a few doubling copies would
//! otherwise take gigabytes from a 1 KB patch), and at most a fixed number of array elements
//! shifted by inserts and removals (each one moves the rest of its array).
//! Every limit is checked before the operation that would pass it runs.

use std::io::Write;

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// Upstream's maxJSONPatchOperations.
pub const MAX_OPERATIONS: usize = 10_000;
/// Upstream's JSONPatchMaxCopyBytes (the request body limit).
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;
/// Array elements moved by inserts and removals over one patch: about a gigabyte of memmove.
pub const MAX_SHIFTED_ELEMENTS: usize = 1 << 25;

/// Decodes a JSON patch document, refusing one with too many operations.
pub fn decode(doc: Value) -> ApiResult<Patch> {
    if let Some(ops) = doc.as_array()
        && ops.len() > MAX_OPERATIONS
    {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
                ops.len()
            ),
        ));
    }
    serde_json::from_value(doc).map_err(|e| {
        ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: {e}"
        ))
    })
}

/// Applies `patch` to `doc` one operation at a time, within the limits above.
pub fn apply(doc: &mut Value, patch: &Patch) -> ApiResult<()> {
    let mut copied = 0usize;
    let mut shifted = 0usize;
    for op in &patch.0 {
        match op {
            PatchOperation::Copy(copy) => {
                if let Some(from) = doc.pointer(copy.from.as_str()) {
                    let budget = MAX_COPY_BYTES - copied;
                    match encoded_len_within(from, budget) {
                        Some(n) => copied += n,
                        None => {
                            return Err(invalid(format!(
                                "Unable to complete the copy, the accumulated size increase of copy is more than {budget} bytes, exceeding the limit {MAX_COPY_BYTES}"
                            )));
                        }
                    }
                }
                shifted += array_len_of_parent(doc, copy.path.as_str());
            }
            PatchOperation::Add(add) => shifted += array_len_of_parent(doc, add.path.as_str()),
            PatchOperation::Remove(remove) => {
                shifted += array_len_of_parent(doc, remove.path.as_str())
            }
            PatchOperation::Move(mv) => {
                shifted += array_len_of_parent(doc, mv.from.as_str())
                    + array_len_of_parent(doc, mv.path.as_str());
            }
            PatchOperation::Replace(_) | PatchOperation::Test(_) => {}
        }
        if shifted > MAX_SHIFTED_ELEMENTS {
            return Err(invalid(format!(
                "the patch moves more than {MAX_SHIFTED_ELEMENTS} array elements"
            )));
        }
        // The caller patches a copy and drops it on error, so no undo log is kept.
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|e| {
            invalid(format!(
                "the server rejected our request due to an error in our request: {e}"
            ))
        })?;
    }
    Ok(())
}

fn invalid(message: String) -> ApiError {
    ApiError::new(422, "Invalid", message)
}

/// The length of the array holding `pointer`'s target, if its parent is an array.
fn array_len_of_parent(doc: &Value, pointer: &str) -> usize {
    let Some((parent, _)) = pointer.rsplit_once('/') else {
        return 0;
    };
    doc.pointer(parent)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The JSON-encoded size of `value` if it is at most `limit`; encoding stops once past it.
pub fn encoded_len_within(value: &Value, limit: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        limit: usize,
    }
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, ops: Value) -> ApiResult<Value> {
        let mut doc = doc;
        apply(&mut doc, &decode(ops)?)?;
        Ok(doc)
    }

    #[test]
    fn applies_ordinary_patches() {
        let out = run(
            json!({"a": [1, 2], "b": {"c": 1}}),
            json!([
                {"op": "add", "path": "/a/0", "value": 0},
                {"op": "copy", "from": "/b", "path": "/d"},
                {"op": "remove", "path": "/b/c"},
                {"op": "test", "path": "/d/c", "value": 1},
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": [0, 1, 2], "b": {}, "d": {"c": 1}}));
        let err = run(json!({}), json!([{"op": "remove", "path": "/x"}])).unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn doubling_copies_stop_at_the_copy_limit() {
        // 1 KB of patch: each copy doubles the document; 40 of them would need a terabyte.
        let mut ops = vec![json!({"op": "add", "path": "/x", "value": "y".repeat(1000)})];
        ops.push(json!({"op": "add", "path": "/d", "value": {}}));
        ops.push(json!({"op": "copy", "from": "/x", "path": "/d/x"}));
        for i in 0..40 {
            ops.push(json!({"op": "copy", "from": "/d", "path": format!("/d/{i}")}));
        }
        let err = run(json!({}), Value::Array(ops)).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("accumulated size increase of copy"),
            "{}",
            err.message
        );
    }

    #[test]
    fn too_many_operations_is_413() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "", "value": {}}))
            .collect();
        let err = run(json!({}), Value::Array(ops)).unwrap_err();
        assert_eq!(err.code, 413);
        assert!(
            err.message.contains("is 10000, got 10001"),
            "{}",
            err.message
        );
        // Positive control: the limit itself passes.
        let ops: Vec<Value> = (0..MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "", "value": {}}))
            .collect();
        run(json!({}), Value::Array(ops)).unwrap();
    }

    #[test]
    fn inserts_at_the_front_of_a_huge_array_stop_at_the_shift_limit() {
        let doc = json!({"a": vec![0; 1 << 20]});
        let ops: Vec<Value> = (0..MAX_OPERATIONS)
            .map(|_| json!({"op": "add", "path": "/a/0", "value": 1}))
            .collect();
        let err = run(doc, Value::Array(ops)).unwrap_err();
        assert!(err.message.contains("array elements"), "{}", err.message);
    }

    #[test]
    fn encoded_len_stops_early() {
        let v = json!({"a": "b"});
        assert_eq!(encoded_len_within(&v, 100), Some(9));
        assert_eq!(encoded_len_within(&v, 8), None);
    }
}
