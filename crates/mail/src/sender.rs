//! Taking what is due from the outbox and delivering it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use plinth_store::Db;

use crate::{DeliveryError, Error, Result, Transport};

/// Messages taken from the outbox in one pass, at most.
pub const BATCH: u32 = 100;

/// How long a message taken by a sender is left to it: past this, a sender
/// that stopped before recording the outcome has its message taken again.
pub const CLAIM_SECONDS: u32 = 300;

/// When to try a failed delivery again, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included; then the message is failed.
    pub max_attempts: u32,
    /// Seconds before the second attempt; each later wait doubles.
    pub first_delay: u32,
    /// The longest wait between attempts, in seconds.
    pub max_delay: u32,
}

impl Default for Retry {
    /// Eight attempts over about two hours: 1, 2, 4, 8, 16, 32 minutes… at
    /// most an hour apart.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_delay: 60,
            max_delay: 3600,
        }
    }
}

impl Retry {
    /// The wait after the `attempts`-th failed attempt, or `None` to give up.
    pub fn after(&self, attempts: u32) -> Option<u32> {
        if attempts >= self.max_attempts {
            return None;
        }
        let doubled = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .and_then(|f| self.first_delay.checked_mul(f))
            .unwrap_or(u32::MAX);
        Some(doubled.min(self.max_delay))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Delivered (and scrubbed).
    pub sent: u32,
    /// Failed for now; queued again for later.
    pub retrying: u32,
    /// Given up on (and scrubbed).
    pub failed: u32,
}

/// Delivers the outbox of one database through one transport.
pub struct Sender<T> {
    db: Db,
    transport: T,
    retry: Retry,
}

impl<T: Transport> Sender<T> {
    /// A sender; nothing happens until [`deliver_due`](Self::deliver_due) or
    /// [`spawn`](Self::spawn).
    pub fn new(db: Db, transport: T, retry: Retry) -> Self {
        Self {
            db,
            transport,
            retry,
        }
    }

    /// Delivers every message due now (in batches of [`BATCH`]), records
    /// each outcome, and says what happened.
    ///
    /// # Errors
    /// [`Error::Store`] when the outbox cannot be read or updated.
    pub fn deliver_due(&mut self) -> Result<Report> {
        let mut report = Report::default();
        loop {
            let due = self.db.due_mail(BATCH)?;
            let batch = due.len();
            for message in due {
                // Taken for this sender first: another (on this host or
                // another one sharing the database) that read the same
                // due list skips it.
                if !self.db.claim_mail(message.id, CLAIM_SECONDS)? {
                    continue;
                }
                let outcome = self.transport.deliver(message.id, &message.mail);
                let attempts = message.attempts.saturating_add(1);
                let recorded = match outcome {
                    Ok(()) => {
                        report.sent += 1;
                        tracing::info!(outbox_id = message.id, "mail delivered");
                        self.db.mail_sent(message.id)
                    }
                    Err(DeliveryError::Transient(why)) => match self.retry.after(attempts) {
                        Some(delay) => {
                            report.retrying += 1;
                            tracing::warn!(outbox_id = message.id, attempts, delay, error = %why, "mail not delivered; will retry");
                            self.db.mail_failed(message.id, &why, Some(delay))
                        }
                        None => {
                            report.failed += 1;
                            tracing::error!(outbox_id = message.id, attempts, error = %why, "mail not delivered; giving up");
                            self.db.mail_failed(message.id, &why, None)
                        }
                    },
                    Err(DeliveryError::Permanent(why)) => {
                        report.failed += 1;
                        tracing::error!(outbox_id = message.id, error = %why, "mail refused");
                        self.db.mail_failed(message.id, &why, None)
                    }
                };
                match recorded {
                    // Another sender recorded it first.
                    Err(plinth_store::Error::NotFound) => {}
                    other => other?,
                }
            }
            if batch < BATCH as usize {
                if report.sent + report.failed > 0 {
                    // The scrubbed bodies' older page versions leave the log.
                    self.db.checkpoint();
                }
                return Ok(report);
            }
        }
    }

    /// Runs [`deliver_due`](Self::deliver_due) on a thread of its own every
    /// `every`, until the returned handle is dropped (or stopped).
    ///
    /// # Errors
    /// [`Error::Thread`] when the thread cannot be started.
    pub fn spawn(mut self, every: Duration) -> Result<SenderHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plinth-mail".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if let Err(e) = self.deliver_due() {
                        tracing::error!(error = %e, "mail sender pass failed");
                    }
                    // Sleep in small steps, so that a stop is prompt.
                    let mut slept = Duration::ZERO;
                    while slept < every && !flag.load(Ordering::Relaxed) {
                        let step = (every - slept).min(Duration::from_millis(50));
                        std::thread::sleep(step);
                        slept += step;
                    }
                }
            })
            .map_err(Error::Thread)?;
        Ok(SenderHandle {
            stop,
            thread: Some(thread),
        })
    }
}

/// A running sender; dropping it stops the sender after its current pass.
pub struct SenderHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SenderHandle {
    /// Stops the sender and waits for its current pass to end.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SenderHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_its_cap_and_ends_at_the_last_attempt() {
        let r = Retry {
            max_attempts: 5,
            first_delay: 60,
            max_delay: 200,
        };
        assert_eq!(
            (1..=5).map(|a| r.after(a)).collect::<Vec<_>>(),
            [Some(60), Some(120), Some(200), Some(200), None]
        );
    }
}
