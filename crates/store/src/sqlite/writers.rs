//! The queue a unit waits in for SQLite's write lock: first come, first
//! served, within one process.
//!
//! SQLite's own wait for a lock another connection holds (its busy handler,
//! set by `busy_timeout`) polls: it sleeps, tries again, sleeps longer (up
//! to 100 ms at a time). A waiter that wakes while the lock is held sleeps
//! again; a writer that releases the lock and asks for it again at once
//! takes it straight back. One client calling a slow writing export back to
//! back could so keep every other writer out until its busy timeout, each
//! of them answering `busy` after seconds of waiting, though the lock was
//! free between every two of its calls.
//!
//! So, before `BEGIN IMMEDIATE`, a unit takes its turn here: a unit that
//! asks while another of this process's units holds the lock (or waits for
//! it) queues behind them, and is handed the turn when every unit ahead of
//! it has committed or rolled back. Only the unit whose turn it is runs
//! `BEGIN IMMEDIATE`, so within the process the lock goes in the order it
//! was asked for, and SQLite's busy wait is left only with what other
//! processes hold. A wait here ends at the unit's deadline like SQLite's
//! does, and a unit that gives up leaves the queue.
//!
//! The queue is per file and per process: every [`Db`](crate::Db) of this
//! process on one file shares it (files are told apart by device and inode,
//! as SQLite tells them apart for its own locks). Between processes the
//! lock is SQLite's, and its busy wait is as unfair as described above:
//! fairness holds among the writers of one process, not between hosts
//! sharing a file. (Several hosts that need it should share PostgreSQL.)
//!
//! A turn is held by a unit, not by a thread: a unit asks once, at its first
//! write, and keeps the turn until it ends. A second unit that asks while
//! the first is alive waits for it like any other — on the same thread it
//! waits until its deadline and answers `busy`, as SQLite would have made it
//! (a unit cannot take the lock its own thread's other unit holds).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

/// The writers of one file in this process: who holds the turn, and who
/// waits for it, in order.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether a unit holds the turn. A turn that ends while others wait
    /// goes straight to the first of them (it stays held), so that no unit
    /// asking later can take it in between.
    held: bool,
    waiting: VecDeque<Arc<Waiter>>,
}

/// One unit waiting for its turn.
#[derive(Debug, Default)]
struct Waiter {
    /// Set (under the queue's lock) when the turn was handed to it.
    granted: std::sync::atomic::AtomicBool,
    /// Signalled when it is.
    wake: Condvar,
}

impl Writers {
    /// Waits until it is the caller's turn to write, at most until `until`.
    /// `None` when `until` passed first; the caller then is no longer in the
    /// queue.
    pub(crate) fn turn(self: &Arc<Self>, until: Instant) -> Option<Turn> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut state = self.lock();
        if !state.held && state.waiting.is_empty() {
            state.held = true;
            return Some(Turn(self.clone()));
        }
        let me = Arc::new(Waiter::default());
        state.waiting.push_back(me.clone());
        loop {
            // Before the deadline is looked at: a turn handed over just as
            // the wait ended is taken, not lost.
            if me.granted.load(Relaxed) {
                return Some(Turn(self.clone()));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.waiting.retain(|w| !Arc::ptr_eq(w, &me));
                return None;
            }
            state = me
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Hands the turn to the first waiter, or frees it.
    fn pass(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut state = self.lock();
        match state.waiting.pop_front() {
            Some(next) => {
                next.granted.store(true, Relaxed);
                next.wake.notify_one();
            }
            None => state.held = false,
        }
    }

    /// The state is changed only whole, under the lock: one poisoned by a
    /// panic elsewhere is used as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many wait (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// A unit's turn to hold the write lock; passed on when dropped. Dropped
/// only once the unit's transaction has ended (committed or rolled back),
/// so that the next unit finds the lock free.
#[derive(Debug)]
pub(crate) struct Turn(Arc<Writers>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.pass();
    }
}

/// How a file is told apart from others.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileKey {
    /// Device and inode: the same file by whatever path.
    #[cfg(unix)]
    Inode(u64, u64),
    /// Where the identity cannot be read: the path, made absolute.
    Path(PathBuf),
}

fn file_key(path: &Path) -> FileKey {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return FileKey::Inode(meta.dev(), meta.ino());
        }
    }
    FileKey::Path(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// The queue of the file at `path`, shared by every database of this
/// process on that file.
pub(crate) fn of_file(path: &Path) -> Arc<Writers> {
    static FILES: Mutex<Vec<(FileKey, Weak<Writers>)>> = Mutex::new(Vec::new());
    let key = file_key(path);
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    files.retain(|(_, writers)| writers.strong_count() > 0);
    if let Some(writers) = files
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return writers;
    }
    let writers = Arc::new(Writers::default());
    files.push((key, Arc::downgrade(&writers)));
    writers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn waiters_get_the_turn_in_the_order_they_asked() -> std::thread::Result<()> {
        let writers = Arc::new(Writers::default());
        let first = writers.turn(soon(1000));
        assert!(first.is_some());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..4 {
            let (queue, order) = (writers.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let turn = queue.turn(soon(5000));
                order.lock().unwrap_or_else(PoisonError::into_inner).push(i);
                // Hold it a moment: a later waiter must not overtake.
                std::thread::sleep(Duration::from_millis(5));
                drop(turn);
            }));
            // Each asks once the one before it waits.
            while writers.waiting() < i + 1 {
                std::thread::yield_now();
            }
        }
        drop(first);
        for t in threads {
            t.join()?;
        }
        let order = order.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(*order, [0, 1, 2, 3]);
        Ok(())
    }

    #[test]
    fn a_wait_ends_at_its_deadline_and_leaves_the_queue() {
        let writers = Arc::new(Writers::default());
        let held = writers.turn(soon(1000));
        let asked = Instant::now();
        assert!(writers.turn(soon(30)).is_none());
        assert!(asked.elapsed() >= Duration::from_millis(30));
        assert_eq!(writers.waiting(), 0);
        // A deadline already past: no wait at all.
        assert!(writers.turn(Instant::now()).is_none());
        drop(held);
        // Free again, for the next that asks.
        assert!(writers.turn(soon(0)).is_some());
    }

    #[test]
    fn a_released_turn_goes_to_the_waiter_not_to_a_newcomer() -> std::thread::Result<()> {
        let writers = Arc::new(Writers::default());
        let held = writers.turn(soon(1000));
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let waiter = {
            let writers = writers.clone();
            std::thread::spawn(move || {
                let turn = writers.turn(soon(5000));
                let _ = finish.recv();
                turn.is_some()
            })
        };
        while writers.waiting() < 1 {
            std::thread::yield_now();
        }
        drop(held);
        // The turn was handed over: someone asking now must wait.
        assert!(writers.turn(Instant::now()).is_none());
        drop(done);
        assert!(waiter.join()?);
        assert!(writers.turn(soon(0)).is_some());
        Ok(())
    }

    #[test]
    fn one_file_one_queue_whatever_the_path() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"")?;
        let other = dir.path().join(".").join("a.db");
        let a = of_file(&path);
        assert!(Arc::ptr_eq(&a, &of_file(&other)));
        std::fs::write(dir.path().join("b.db"), b"")?;
        assert!(!Arc::ptr_eq(&a, &of_file(&dir.path().join("b.db"))));
        Ok(())
    }
}
