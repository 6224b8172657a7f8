//! Event validation for core/v1 and events.k8s.io/v1, as upstream's ValidateEventCreate. Both
//! report the internal field names (involvedObject, message, reportingController...), as
//! upstream does whichever version was written.

use serde_json::{Value, json};

use super::fields::{self, text};
use crate::status::Cause;

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// The fields of an Event under either version's names.
struct View<'a> {
    namespace: &'a str,
    involved_namespace: &'a str,
    event_time: bool,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    action: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn view<'a>(obj: &'a Value, core: bool) -> View<'a> {
    let (involved, controller, message) = if core {
        ("involvedObject", "reportingComponent", "message")
    } else {
        ("regarding", "reportingController", "note")
    };
    View {
        namespace: crate::meta::namespace(obj),
        involved_namespace: text(&obj[involved], "namespace"),
        event_time: obj["eventTime"].as_str().is_some_and(|t| !t.is_empty()),
        reporting_controller: text(obj, controller),
        reporting_instance: text(obj, "reportingInstance"),
        action: text(obj, "action"),
        reason: text(obj, "reason"),
        message: text(obj, message),
    }
}

/// `core` is true for core/v1 Events, false for events.k8s.io/v1 ones.
pub fn event(obj: &Value, core: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let e = view(obj, core);
    let mismatch = || {
        Cause::invalid(
            "involvedObject.namespace",
            &json!(e.involved_namespace),
            "does not match event.namespace",
        )
    };
    let controller_field = if core {
        "reportingComponent"
    } else {
        "reportingController"
    };
    if !e.event_time {
        // Old-style events: the namespace follows the object's ("default" for cluster objects).
        let ok = if e.involved_namespace.is_empty() {
            e.namespace.is_empty() || e.namespace == "default"
        } else {
            e.namespace == e.involved_namespace
        };
        if !ok {
            causes.push(mismatch());
        }
    } else {
        if e.involved_namespace.is_empty()
            && e.namespace != "default"
            && e.namespace != "kube-system"
        {
            causes.push(mismatch());
        }
        if e.reporting_controller.is_empty() {
            causes.push(Cause::required(controller_field));
        }
        fields::qualified_name(controller_field, e.reporting_controller, &mut causes);
        for (field, value, limit) in [
            (
                "reportingInstance",
                e.reporting_instance,
                REPORTING_INSTANCE_LIMIT,
            ),
            ("action", e.action, ACTION_LIMIT),
            ("reason", e.reason, REASON_LIMIT),
        ] {
            if value.is_empty() {
                causes.push(Cause::required(field));
            }
            if value.len() > limit {
                causes.push(at_most(field, limit));
            }
        }
        if e.message.len() > NOTE_LIMIT {
            causes.push(at_most("message", NOTE_LIMIT));
        }
    }
    if !core {
        // events.k8s.io/v1 is strict: a new-style event, without the deprecated fields.
        if !e.event_time {
            causes.push(Cause::required("eventTime"));
        }
        let ty = text(obj, "type");
        if ty != "Normal" && ty != "Warning" {
            causes.push(Cause::invalid(
                "type",
                &json!(""),
                format!("has invalid value: {ty}"),
            ));
        }
        for (field, internal) in [
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
        ] {
            if obj[field].as_str().is_some_and(|t| !t.is_empty()) {
                causes.push(Cause::invalid(internal, &json!(""), "needs to be unset"));
            }
        }
        if obj["deprecatedCount"].as_i64().is_some_and(|c| c != 0) {
            causes.push(Cause::invalid("count", &json!(""), "needs to be unset"));
        }
        let source = &obj["deprecatedSource"];
        if !text(source, "component").is_empty() || !text(source, "host").is_empty() {
            causes.push(Cause::invalid("source", &json!(""), "needs to be unset"));
        }
    }
    causes
}

fn at_most(field: &str, limit: usize) -> Cause {
    Cause::invalid(
        field,
        &json!(""),
        format!("can have at most {limit} characters"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(obj: &Value, core: bool) -> Vec<(String, String)> {
        event(obj, core)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn core_events() {
        let legacy =
            json!({"metadata": {"namespace": "ns"}, "involvedObject": {"namespace": "ns"}});
        assert_eq!(pairs(&legacy, true), []);
        let cluster = json!({"metadata": {"namespace": "default"}, "involvedObject": {}});
        assert_eq!(pairs(&cluster, true), []);
        let moved = json!({"metadata": {"namespace": "a"}, "involvedObject": {"namespace": "b"}});
        assert_eq!(
            pairs(&moved, true),
            [(
                "involvedObject.namespace".to_owned(),
                "Invalid value: \"b\": does not match event.namespace".to_owned()
            )]
        );
        let ok = json!({"metadata": {"namespace": "ns"}, "involvedObject": {"namespace": "ns"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingComponent": "kubelet",
            "reportingInstance": "node-1", "action": "Pulling", "reason": "Pulling"});
        assert_eq!(pairs(&ok, true), []);
        let mut bad = ok.clone();
        bad["action"] = json!("");
        bad["message"] = json!("x".repeat(1025));
        assert_eq!(
            pairs(&bad, true),
            [
                ("action".to_owned(), "Required value".to_owned()),
                (
                    "message".to_owned(),
                    "Invalid value: \"\": can have at most 1024 characters".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn events_k8s_io() {
        let ok = json!({"metadata": {"namespace": "ns"}, "regarding": {"namespace": "ns"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/c",
            "reportingInstance": "c-1", "action": "Act", "reason": "Why", "type": "Normal"});
        assert_eq!(pairs(&ok, false), []);
        let bad = json!({"metadata": {"namespace": "ns"}, "regarding": {"namespace": "ns"},
            "type": "Odd", "deprecatedCount": 2});
        assert_eq!(
            pairs(&bad, false),
            [
                ("eventTime".to_owned(), "Required value".to_owned()),
                (
                    "type".to_owned(),
                    "Invalid value: \"\": has invalid value: Odd".to_owned()
                ),
                (
                    "count".to_owned(),
                    "Invalid value: \"\": needs to be unset".to_owned()
                ),
            ]
        );
    }
}
