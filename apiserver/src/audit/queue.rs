//! The bounded queue in front of each backend: a request only ever tries to enqueue, so a slow
//! disk or receiver never holds it. A full queue (in events, or in the bytes of what clients
//! put in them: bodies, URIs, headers) drops the event and counts it in
//! apiserver_audit_error_total{plugin}.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::event::Event;

/// At most this many bytes of client-sized data (bodies, URIs, headers) wait in one
/// backend's queue.
pub const MAX_QUEUED_BODY_BYTES: usize = 64 << 20;

/// The sending side, held by the [`super::Auditor`].
pub struct Queue {
    pub plugin: &'static str,
    tx: mpsc::Sender<Arc<Event>>,
    queued_bytes: Arc<AtomicUsize>,
    errors: Arc<AtomicU64>,
}

/// The backend's side: events in the order they were emitted.
pub struct Receiver {
    rx: mpsc::Receiver<Arc<Event>>,
    queued_bytes: Arc<AtomicUsize>,
    /// Events the backend failed to deliver count here too.
    pub errors: Arc<AtomicU64>,
}

/// A queue of `capacity` events for the backend `plugin` (`log`, `webhook`).
pub fn bounded(plugin: &'static str, capacity: usize) -> (Queue, Receiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    (
        Queue {
            plugin,
            tx,
            queued_bytes: queued_bytes.clone(),
            errors: errors.clone(),
        },
        Receiver {
            rx,
            queued_bytes,
            errors,
        },
    )
}

impl Queue {
    /// Enqueues without waiting; a full queue drops the event and counts an error.
    pub fn push(&self, event: &Arc<Event>) {
        let bytes = event.queued_bytes();
        let before = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > MAX_QUEUED_BODY_BYTES || self.tx.try_send(event.clone()).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.dropped();
        }
    }

    fn dropped(&self) {
        // Counted, and logged once per thousand so a stuck backend does not flood the log.
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1000) {
            tracing::error!(
                plugin = self.plugin,
                "audit backend queue full, dropping events"
            );
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

impl Receiver {
    /// The next event; None once every sender is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        let event = self.rx.recv().await?;
        Some(self.taken(event))
    }

    /// [`Self::recv`] for a backend on a thread of its own.
    pub fn blocking_recv(&mut self) -> Option<Arc<Event>> {
        let event = self.rx.blocking_recv()?;
        Some(self.taken(event))
    }

    /// An event already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        let event = self.rx.try_recv().ok()?;
        Some(self.taken(event))
    }

    fn taken(&self, event: Arc<Event>) -> Arc<Event> {
        self.queued_bytes
            .fetch_sub(event.queued_bytes(), Ordering::Relaxed);
        event
    }

    /// `n` events could not be delivered.
    pub fn failed(&self, n: usize) {
        self.errors.fetch_add(n as u64, Ordering::Relaxed);
    }
}
