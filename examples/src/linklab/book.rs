//! The books of one direction: every message by number, when it was sent,
//! whether the peer acknowledged it, whether a handler saw it, and how often.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use isml_runtime::session::Delivered;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// One message: when it was handed to `send_with`, its bytes on the stream
/// and of its payload, and what became of it.
struct Entry {
    sent: Instant,
    frame: u32,
    payload: u32,
    acked: bool,
    delivered: bool,
}

#[derive(Default)]
struct Book {
    entries: Vec<Entry>,
    acked: u64,
    failed: u64,
    delivered: u64,
    duplicated: u64,
    /// Handler calls for a number never sent.
    unknown: u64,
    frame_bytes: u64,
    payload_bytes: u64,
    last_delivery: Option<Instant>,
    latencies: Vec<Duration>,
}

/// The books, shared by the sender, the handler and the handles' watchers.
#[derive(Default, Clone)]
pub(super) struct Ledger(Arc<Mutex<Book>>);

/// What the books say at the end.
pub(super) struct Totals {
    pub(super) sent: u64,
    pub(super) acked: u64,
    pub(super) failed: u64,
    pub(super) delivered: u64,
    pub(super) duplicated: u64,
    pub(super) unknown: u64,
    /// Acknowledged, never delivered.
    pub(super) lost: u64,
    pub(super) frame_bytes: u64,
    pub(super) payload_bytes: u64,
    pub(super) first_send: Option<Instant>,
    pub(super) last_delivery: Option<Instant>,
    /// Sorted.
    pub(super) latencies: Vec<Duration>,
}

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Messages numbered so far.
    pub(super) fn sent(&self) -> u64 {
        self.book().entries.len() as u64
    }

    /// Numbers the next message, of `frame` bytes on the stream (`payload`
    /// of them its payload), sent now.
    pub(super) fn next(&self, frame: u32, payload: u32) -> u64 {
        let mut b = self.book();
        b.entries.push(Entry {
            sent: Instant::now(),
            frame,
            payload,
            acked: false,
            delivered: false,
        });
        b.entries.len() as u64 - 1
    }

    /// A handler saw message `n`.
    pub(super) fn delivered(&self, n: u64) {
        let now = Instant::now();
        let mut b = self.book();
        let Some(e) = b.entries.get_mut(n as usize) else {
            b.unknown += 1;
            return;
        };
        if std::mem::replace(&mut e.delivered, true) {
            b.duplicated += 1;
            return;
        }
        let (sent, frame, payload) = (e.sent, e.frame, e.payload);
        b.delivered += 1;
        b.frame_bytes += u64::from(frame);
        b.payload_bytes += u64::from(payload);
        b.latencies.push(now - sent);
        b.last_delivery = Some(now);
    }

    /// A handler saw a message that names no number.
    pub(super) fn unknown(&self) {
        self.book().unknown += 1;
    }

    /// Waits for the handle of message `n`, books the outcome, and gives
    /// back its place in the window.
    pub(super) fn watch(&self, n: u64, handle: Delivered, permit: OwnedSemaphorePermit) {
        let ledger = self.clone();
        tokio::spawn(async move {
            let outcome = handle.await;
            drop(permit);
            let mut b = ledger.book();
            match outcome {
                Ok(()) => {
                    b.entries[n as usize].acked = true;
                    b.acked += 1;
                }
                Err(_) => b.failed += 1,
            }
        });
    }

    /// Every handle resolved, and every acknowledged message delivered
    /// (a message is acknowledged on receipt; its handler may run just after).
    pub(super) fn settled(&self) -> bool {
        let b = self.book();
        b.acked + b.failed == b.entries.len() as u64 && b.delivered >= b.acked
    }

    pub(super) fn totals(&self) -> Totals {
        let mut b = self.book();
        let lost = b.entries.iter().filter(|e| e.acked && !e.delivered).count() as u64;
        let mut latencies = std::mem::take(&mut b.latencies);
        latencies.sort_unstable();
        Totals {
            sent: b.entries.len() as u64,
            acked: b.acked,
            failed: b.failed,
            delivered: b.delivered,
            duplicated: b.duplicated,
            unknown: b.unknown,
            lost,
            frame_bytes: b.frame_bytes,
            payload_bytes: b.payload_bytes,
            first_send: b.entries.first().map(|e| e.sent),
            last_delivery: b.last_delivery,
            latencies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn books_count_duplicates_unknown_numbers_and_acknowledged_losses() {
        let l = Ledger::default();
        let a = l.next(30, 20);
        let b = l.next(31, 21);
        tokio::time::advance(Duration::from_millis(700)).await;
        l.delivered(a);
        l.delivered(a);
        l.delivered(9);
        // Message b acknowledged, never delivered.
        l.book().entries[b as usize].acked = true;
        l.book().acked += 1;
        let t = l.totals();
        assert_eq!(
            (t.sent, t.delivered, t.duplicated, t.unknown, t.lost),
            (2, 1, 1, 1, 1)
        );
        assert_eq!((t.frame_bytes, t.payload_bytes), (30, 20));
        assert_eq!(t.latencies, vec![Duration::from_millis(700)]);
    }
}
