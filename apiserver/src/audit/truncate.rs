//! What the backends' `--audit-*-truncate-*` and `--audit-*-batch-throttle-*` flags do, as
//! upstream's truncate and buffered plugins: an event over the size bound loses its request
//! and response objects (and is annotated so), one still over it is dropped; batches are split
//! to stay under their byte bound; batches go out at most `qps` a second after a `burst`.

use std::time::{Duration, Instant};

use super::event::Event;

/// `--audit-*-truncate-max-event-size` and `-max-batch-size`, when truncation is enabled.
#[derive(Clone, Copy, Debug)]
pub struct Truncate {
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
}

impl Default for Truncate {
    fn default() -> Truncate {
        Truncate {
            max_event_bytes: 100 * 1024,
            max_batch_bytes: 10 * 1024 * 1024,
        }
    }
}

/// The event's JSON: whole, or (over `truncate`'s bound) without its objects; None when even
/// that is too large, so the event is dropped.
pub fn encode(event: &Event, truncate: Option<&Truncate>) -> Option<Vec<u8>> {
    let json = event.to_json();
    let Some(t) = truncate else {
        return Some(json);
    };
    if json.len() <= t.max_event_bytes {
        return Some(json);
    }
    let json = event.to_truncated_json();
    if json.len() <= t.max_event_bytes {
        return Some(json);
    }
    tracing::error!(
        audit_id = %event.request.audit_id,
        bytes = json.len(),
        limit = t.max_event_bytes,
        "an audit event is too large even without its objects; dropped"
    );
    None
}

/// Splits encoded events into runs whose sizes sum to at most `max_bytes` (a run holds at
/// least one event).
pub fn split(events: Vec<Vec<u8>>, max_bytes: usize) -> Vec<Vec<Vec<u8>>> {
    let mut batches = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    for event in events {
        if !batch.is_empty() && size + event.len() > max_bytes {
            batches.push(std::mem::take(&mut batch));
            size = 0;
        }
        size += event.len();
        batch.push(event);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// `--audit-*-batch-throttle-qps` and `-burst`: a token bucket for batches.
#[derive(Debug)]
pub struct Throttle {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    /// None when throttling is off or `qps` is not positive.
    pub fn new(enabled: bool, qps: f64, burst: usize) -> Option<Throttle> {
        (enabled && qps > 0.0).then(|| {
            let burst = burst.max(1) as f64;
            Throttle {
                qps,
                burst,
                tokens: burst,
                last: Instant::now(),
            }
        })
    }

    /// How long the next batch must wait; takes its token.
    pub fn take(&mut self) -> Duration {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Duration {
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }

    /// Waits for the next batch's turn.
    pub async fn wait(&mut self) {
        let wait = self.take();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_their_byte_bound() {
        let events = vec![vec![0; 4], vec![0; 4], vec![0; 4], vec![0; 20], vec![0; 1]];
        let sizes: Vec<Vec<usize>> = split(events, 10)
            .iter()
            .map(|b| b.iter().map(Vec::len).collect())
            .collect();
        assert_eq!(sizes, vec![vec![4, 4], vec![4], vec![20], vec![1]]);
    }

    #[test]
    fn the_throttle_lets_a_burst_through_then_paces() {
        let mut t = Throttle::new(true, 10.0, 3).unwrap();
        let start = t.last;
        let waits: Vec<Duration> = (0..5).map(|_| t.take_at(start)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert!((waits[3].as_secs_f64() - 0.1).abs() < 1e-6, "{waits:?}");
        assert!((waits[4].as_secs_f64() - 0.2).abs() < 1e-6, "{waits:?}");
        // A second later ten more tokens have come (the two borrowed are repaid first).
        let later = start + Duration::from_secs(1);
        let waits: Vec<Duration> = (0..8).map(|_| t.take_at(later)).collect();
        assert_eq!(
            &waits[..3],
            &[Duration::ZERO; 3],
            "the burst caps what is saved"
        );
        assert!(waits[3] > Duration::ZERO, "{waits:?}");
        assert!(Throttle::new(false, 10.0, 3).is_none());
        assert!(Throttle::new(true, 0.0, 3).is_none());
    }
}
