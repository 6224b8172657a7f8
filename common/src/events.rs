//! Recording core/v1 Events, as client-go's event recorder does: components never wait for
//! an event; a background writer creates them (a few in flight), and when it falls behind,
//! new events are dropped and counted rather than slowing the component down.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

/// Events waiting to be written; beyond this they are dropped.
const EVENT_BUFFER: usize = 4096;

/// The object an event is about.
pub struct Involved<'a> {
    pub api_version: Cow<'a, str>,
    pub kind: Cow<'a, str>,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub resource_version: Option<&'a str>,
}

impl<'a> Involved<'a> {
    /// The reference to a typed object.
    pub fn of<K: Resource<DynamicType = ()>>(o: &'a K) -> Involved<'a> {
        let m = o.meta();
        Involved {
            api_version: K::api_version(&()),
            kind: K::kind(&()),
            namespace: m.namespace.as_deref().unwrap_or(""),
            name: m.name.as_deref().unwrap_or(""),
            uid: m.uid.as_deref().unwrap_or(""),
            resource_version: m.resource_version.as_deref(),
        }
    }
}

/// Writes events for one component ("deployment-controller", "default-scheduler", ...).
pub struct Recorder {
    events: mpsc::Sender<Event>,
    pub dropped: AtomicU64,
    component: String,
    instance: String,
}

impl Recorder {
    /// Starts the writer on the current runtime.
    pub fn new(client: Client, component: &str) -> Arc<Recorder> {
        let (tx, mut rx) = mpsc::channel::<Event>(EVENT_BUFFER);
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut inflight = futures::stream::FuturesUnordered::new();
            loop {
                tokio::select! {
                    Some(event) = rx.recv(), if inflight.len() < 8 => {
                        let ns = event.metadata.namespace.clone().unwrap_or_default();
                        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
                        inflight.push(async move {
                            if let Err(e) = api.create(&PostParams::default(), &event).await {
                                tracing::debug!(error = %e, "writing an event failed");
                            }
                        });
                    }
                    Some(()) = inflight.next(), if !inflight.is_empty() => {}
                    else => break,
                }
            }
        });
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Arc::new(Recorder {
            events: tx,
            dropped: AtomicU64::new(0),
            component: component.to_owned(),
            instance: format!("{component}-{host}"),
        })
    }

    /// Records a Normal event.
    pub fn normal(&self, about: &Involved<'_>, reason: &str, message: String) {
        self.record(about, false, reason, reason, message);
    }

    /// Records a Warning event.
    pub fn warning(&self, about: &Involved<'_>, reason: &str, message: String) {
        self.record(about, true, reason, reason, message);
    }

    /// Queues one event; never waits. A message past 1024 characters is shortened.
    pub fn record(
        &self,
        about: &Involved<'_>,
        warning: bool,
        reason: &str,
        action: &str,
        message: String,
    ) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // The apiserver refuses a note over 1024 characters; shortened as upstream's recorder.
        let message = truncate_chars(message, MAX_MESSAGE_CHARS);
        let now = chrono::Utc::now();
        let suffix = format!(
            "{:x}{:04x}",
            now.timestamp_nanos_opt().unwrap_or_default(),
            SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff
        );
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let micro = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // Events about cluster-scoped objects live in "default", as upstream puts them.
        let ns = if about.namespace.is_empty() {
            "default"
        } else {
            about.namespace
        };
        let mut involved = json!({
            "apiVersion": about.api_version, "kind": about.kind, "name": about.name,
            "uid": about.uid, "resourceVersion": about.resource_version,
        });
        if !about.namespace.is_empty() {
            involved["namespace"] = json!(about.namespace);
        }
        let value = json!({
            "metadata": {"name": format!("{}.{suffix}", about.name), "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": if warning { "Warning" } else { "Normal" },
            "action": action,
            "eventTime": micro,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "source": {"component": self.component},
        });
        let Ok(event) = serde_json::from_value::<Event>(value) else {
            return;
        };
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The longest message (note) the apiserver accepts in an event.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// `s` cut to at most `max` characters.
fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod truncation_tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_chars("abc".into(), 2), "ab");
        assert_eq!(truncate_chars("ab".into(), 2), "ab");
        assert_eq!(
            truncate_chars("\u{e9}\u{e9}\u{e9}".into(), 2),
            "\u{e9}\u{e9}"
        );
        assert_eq!(
            truncate_chars("x".repeat(2000), MAX_MESSAGE_CHARS).len(),
            MAX_MESSAGE_CHARS
        );
    }
}
