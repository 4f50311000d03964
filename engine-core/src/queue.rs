//! `BoundedQueue`: the in-process message queue between publishers and the dispatch loop.
//!
//! Storage is crossbeam's lock-free `ArrayQueue`. Waiting is layered on top: a waiter first
//! retries while spinning (with backoff), then parks on a condition variable. Parking is
//! announced in an atomic sleeper count, so the other side only takes the lock and makes the
//! wake-up call when someone actually sleeps: a push or pop that does not have to wait, and
//! that nobody waits for, never locks and never enters the kernel.
//!
//! Closing the queue wakes every waiter. After `close()` pushes fail, and pops still return
//! what is left, then `None` without waiting.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;

/// How many backoff steps `pop_batch` spends before parking.
const BATCH_SPIN: u32 = 64;

/// Where one side of the queue parks (consumers waiting for an item, or producers waiting
/// for a free slot).
///
/// Lost wake-ups are ruled out by a Dekker-style handshake: a sleeper increments `sleepers`,
/// issues a SeqCst fence, then re-checks the queue; a waker changes the queue, issues a
/// SeqCst fence, then reads `sleepers`. Either the sleeper sees the change or the waker sees
/// the sleeper. The sleeper holds `lock` from before its increment until the condvar wait
/// releases it, and the waker notifies under `lock`, so the notification cannot fall between
/// the sleeper's re-check and its wait.
struct Gate {
    /// Threads between their increment (under `lock`) and their decrement after waking.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic elsewhere cannot leave anything inconsistent.
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether anyone sleeps here; call after changing what sleepers wait for.
    fn has_sleepers(&self) -> bool {
        fence(Ordering::SeqCst);
        self.sleepers.load(Ordering::Relaxed) > 0
    }

    /// Wakes one sleeper, if there is one.
    fn wake_one(&self) {
        if self.has_sleepers() {
            let _guard = self.lock();
            self.cond.notify_one();
        }
    }

    /// Wakes every sleeper.
    fn wake_all(&self) {
        if self.has_sleepers() {
            let _guard = self.lock();
            self.cond.notify_all();
        }
    }

    /// Sleeps until woken or `deadline`, unless `ready()` already holds once this thread is
    /// counted as a sleeper. Returns early on spurious wake-ups; callers re-check and loop.
    fn park(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) {
        let guard = self.lock();
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !ready() {
            match deadline {
                None => drop(
                    self.cond
                        .wait(guard)
                        .unwrap_or_else(PoisonError::into_inner),
                ),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        drop(
                            self.cond
                                .wait_timeout(guard, left)
                                .unwrap_or_else(PoisonError::into_inner),
                        );
                    }
                }
            }
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bounded MPMC queue with non-blocking, blocking and timed put/get.
///
/// Waiters spin up to `max_spin` backoff steps, then park (no busy loop while idle).
/// [`close`](Self::close) wakes every waiter.
///
/// ```
/// use event_engine_core::BoundedQueue;
/// use std::time::Duration;
///
/// let queue = BoundedQueue::new(2);
/// queue.try_push(1).unwrap();
/// queue.push_wait(2, 10, None).unwrap();
/// assert_eq!(queue.try_push(3), Err(3)); // full
/// assert_eq!(queue.pop_wait(10, Some(Duration::ZERO)), Some(1));
/// queue.close();
/// assert_eq!(queue.try_pop(), Some(2)); // what is left still comes out
/// assert_eq!(queue.pop_wait(10, None), None); // closed and empty: no waiting
/// ```
pub struct BoundedQueue<T> {
    items: ArrayQueue<T>,
    closed: AtomicBool,
    /// Consumers waiting for an item.
    not_empty: Gate,
    /// Producers waiting for a free slot.
    not_full: Gate,
}

impl<T> BoundedQueue<T> {
    /// A queue holding at most `capacity` items.
    ///
    /// # Panics
    ///
    /// When `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "a BoundedQueue needs a capacity of at least 1"
        );
        BoundedQueue {
            items: ArrayQueue::new(capacity),
            closed: AtomicBool::new(false),
            not_empty: Gate::new(),
            not_full: Gate::new(),
        }
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// The number of items waiting (a snapshot, other threads may change it at once).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `item` if there is room and the queue is open; gives it back otherwise.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        if self.is_closed() {
            return Err(item);
        }
        self.items.push(item)?;
        self.not_empty.wake_one();
        Ok(())
    }

    /// Adds `item`, waiting for room: spins up to `max_spin` backoff steps, then parks.
    /// `timeout` `None` waits for ever. Gives the item back on timeout or when the queue is
    /// (or gets) closed.
    pub fn push_wait(&self, item: T, max_spin: u32, timeout: Option<Duration>) -> Result<(), T> {
        let mut slot = Some(item);
        let pushed = self.wait_with(
            &self.not_full,
            max_spin,
            timeout,
            || {
                let item = slot.take()?;
                self.try_push(item).map_err(|item| slot = Some(item)).ok()
            },
            || !self.items.is_full() || self.is_closed(),
        );
        match (pushed, slot) {
            (Some(()), _) => Ok(()),
            (None, Some(item)) => Err(item),
            (None, None) => unreachable!("a failed push always gives the item back"),
        }
    }

    /// Takes the oldest item, if any.
    pub fn try_pop(&self) -> Option<T> {
        let item = self.items.pop()?;
        self.not_full.wake_one();
        Some(item)
    }

    /// Takes the oldest item, waiting for one: spins up to `max_spin` backoff steps, then
    /// parks. `timeout` `None` waits for ever. `None` on timeout, or when the queue is closed
    /// and empty.
    pub fn pop_wait(&self, max_spin: u32, timeout: Option<Duration>) -> Option<T> {
        self.wait_with(
            &self.not_empty,
            max_spin,
            timeout,
            || self.try_pop(),
            || !self.items.is_empty() || self.is_closed(),
        )
    }

    /// Waits (spin, then park) until at least one item is there, the timeout passes or the
    /// queue is closed, then moves up to `max` items into `out`. Returns how many were moved.
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize, timeout: Option<Duration>) -> usize {
        if max == 0 {
            return 0;
        }
        let first = self.wait_with(
            &self.not_empty,
            BATCH_SPIN,
            timeout,
            || self.items.pop(),
            || !self.items.is_empty() || self.is_closed(),
        );
        let Some(first) = first else {
            return 0;
        };
        out.push(first);
        let mut moved = 1;
        while moved < max {
            match self.items.pop() {
                Some(item) => out.push(item),
                None => break,
            }
            moved += 1;
        }
        self.not_full.wake_all();
        moved
    }

    /// Runs `attempt` until it succeeds: at once, then between backoff steps (up to
    /// `max_spin`), then each time `gate` wakes this thread. Gives up (`None`) when the
    /// timeout, counted from the call, passes, or when the queue is closed and a last attempt
    /// fails. `ready` tells the gate whether an attempt could succeed now.
    fn wait_with<R>(
        &self,
        gate: &Gate,
        max_spin: u32,
        timeout: Option<Duration>,
        mut attempt: impl FnMut() -> Option<R>,
        ready: impl Fn() -> bool,
    ) -> Option<R> {
        if let Some(done) = attempt() {
            return Some(done);
        }
        // A timeout too large to represent is the same as none.
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let expired = || deadline.is_some_and(|deadline| Instant::now() >= deadline);
        let backoff = Backoff::new();
        for _ in 0..max_spin {
            if self.is_closed() {
                return attempt();
            }
            if expired() {
                return None;
            }
            backoff.snooze();
            if let Some(done) = attempt() {
                return Some(done);
            }
        }
        loop {
            if self.is_closed() {
                return attempt();
            }
            if expired() {
                return None;
            }
            gate.park(deadline, &ready);
            if let Some(done) = attempt() {
                return Some(done);
            }
        }
    }

    /// Closes the queue: pushes fail from now on, and every waiter wakes up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.not_empty.wake_all();
        self.not_full.wake_all();
    }

    /// Opens a closed queue again.
    pub fn reopen(&self) {
        self.closed.store(false, Ordering::SeqCst);
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// How many consumers are parked (for tests that must wait until a thread sleeps).
    #[cfg(test)]
    fn parked_consumers(&self) -> usize {
        self.not_empty.sleepers.load(Ordering::SeqCst)
    }

    /// How many producers are parked.
    #[cfg(test)]
    fn parked_producers(&self) -> usize {
        self.not_full.sleepers.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    /// Waits (yielding, not sleeping) until `condition` holds.
    fn until(condition: impl Fn() -> bool) {
        while !condition() {
            thread::yield_now();
        }
    }

    #[test]
    fn fifo_within_capacity() {
        let queue = BoundedQueue::new(3);
        assert_eq!(queue.capacity(), 3);
        assert!(queue.is_empty());
        for i in 0..3 {
            queue.try_push(i).unwrap();
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.try_push(3), Err(3));
        assert_eq!(queue.push_wait(3, 5, Some(Duration::ZERO)), Err(3));
        assert_eq!(queue.try_pop(), Some(0));
        queue.try_push(3).unwrap();
        let drained: Vec<_> = std::iter::from_fn(|| queue.try_pop()).collect();
        assert_eq!(drained, [1, 2, 3]);
        assert_eq!(queue.try_pop(), None);
    }

    #[test]
    #[should_panic(expected = "capacity of at least 1")]
    fn zero_capacity_is_refused() {
        let _ = BoundedQueue::<u8>::new(0);
    }

    #[test]
    fn timeouts_give_up() {
        let queue = BoundedQueue::new(1);
        assert_eq!(queue.pop_wait(3, Some(Duration::from_millis(5))), None);
        queue.try_push('a').unwrap();
        assert_eq!(
            queue.push_wait('b', 3, Some(Duration::from_millis(5))),
            Err('b')
        );
        let mut out = Vec::new();
        assert_eq!(queue.pop_batch(&mut out, 0, None), 0, "max 0 moves nothing");
        assert_eq!(queue.pop_batch(&mut out, 8, Some(Duration::ZERO)), 1);
        assert_eq!(
            queue.pop_batch(&mut out, 8, Some(Duration::from_millis(5))),
            0
        );
        assert_eq!(out, ['a']);
        // A timeout too large for the clock waits like no timeout; here an item is there.
        queue.try_push('c').unwrap();
        assert_eq!(queue.pop_wait(0, Some(Duration::MAX)), Some('c'));
    }

    #[test]
    fn close_refuses_pushes_but_lets_leftovers_out() {
        let queue = BoundedQueue::new(4);
        queue.try_push(1).unwrap();
        queue.try_push(2).unwrap();
        queue.close();
        assert!(queue.is_closed());
        assert_eq!(queue.try_push(3), Err(3));
        assert_eq!(queue.push_wait(3, 10, None), Err(3));
        assert_eq!(queue.pop_wait(10, None), Some(1));
        let mut out = Vec::new();
        assert_eq!(queue.pop_batch(&mut out, 10, None), 1);
        assert_eq!(out, [2]);
        assert_eq!(
            queue.pop_wait(10, None),
            None,
            "closed and empty: no waiting"
        );
        assert_eq!(queue.pop_batch(&mut out, 10, None), 0);
        queue.reopen();
        assert!(!queue.is_closed());
        queue.try_push(4).unwrap();
        assert_eq!(queue.try_pop(), Some(4));
    }

    #[test]
    fn a_parked_consumer_wakes_on_push() {
        let queue = Arc::new(BoundedQueue::new(2));
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.pop_wait(0, None))
        };
        until(|| queue.parked_consumers() == 1);
        queue.try_push(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Some(7));
    }

    #[test]
    fn a_parked_batch_consumer_wakes_on_push() {
        let queue = Arc::new(BoundedQueue::new(2));
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut out = Vec::new();
                let n = queue.pop_batch(&mut out, 5, None);
                (n, out)
            })
        };
        until(|| queue.parked_consumers() == 1);
        queue.try_push(7).unwrap();
        let (n, out) = consumer.join().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(out[0], 7);
    }

    #[test]
    fn a_parked_producer_wakes_on_pop() {
        let queue = Arc::new(BoundedQueue::new(1));
        queue.try_push(1).unwrap();
        let producer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.push_wait(2, 0, None))
        };
        until(|| queue.parked_producers() == 1);
        assert_eq!(queue.try_pop(), Some(1));
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(queue.try_pop(), Some(2));
    }

    #[test]
    fn close_wakes_every_waiter() {
        let empty = Arc::new(BoundedQueue::<u32>::new(1));
        let full = Arc::new(BoundedQueue::new(1));
        full.try_push(0).unwrap();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let queue = Arc::clone(&empty);
                thread::spawn(move || queue.pop_wait(0, None))
            })
            .collect();
        let producers: Vec<_> = (1..4)
            .map(|i| {
                let queue = Arc::clone(&full);
                thread::spawn(move || queue.push_wait(i, 0, None))
            })
            .collect();
        until(|| empty.parked_consumers() == 3 && full.parked_producers() == 3);
        empty.close();
        full.close();
        for consumer in consumers {
            assert_eq!(consumer.join().unwrap(), None);
        }
        let mut refused: Vec<_> = producers
            .into_iter()
            .map(|p| p.join().unwrap().unwrap_err())
            .collect();
        refused.sort();
        assert_eq!(refused, [1, 2, 3]);
    }

    /// Several producers and consumers through a small queue: every item arrives exactly
    /// once, and each producer's items arrive in order at any one consumer.
    fn exactly_once(batch: bool) {
        const PRODUCERS: u64 = 4;
        const CONSUMERS: usize = 3;
        const PER_PRODUCER: u64 = 20_000;
        let queue = Arc::new(BoundedQueue::new(8));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        // Alternate spinning and parking producers.
                        let spin = if p % 2 == 0 { 0 } else { 20 };
                        queue.push_wait(p * PER_PRODUCER + i, spin, None).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut got = Vec::new();
                    if batch {
                        while queue.pop_batch(&mut got, 5, None) > 0 {}
                    } else {
                        let spin = if c % 2 == 0 { 0 } else { 20 };
                        while let Some(item) = queue.pop_wait(spin, None) {
                            got.push(item);
                        }
                    }
                    got
                })
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        queue.close();
        let mut all = Vec::new();
        for consumer in consumers {
            let got = consumer.join().unwrap();
            for p in 0..PRODUCERS {
                let mine: Vec<_> = got.iter().filter(|&&x| x / PER_PRODUCER == p).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "per-producer order");
            }
            all.extend(got);
        }
        all.sort_unstable();
        assert_eq!(all.len() as u64, PRODUCERS * PER_PRODUCER);
        assert!(all.iter().copied().eq(0..PRODUCERS * PER_PRODUCER));
    }

    #[test]
    fn every_item_arrives_exactly_once() {
        exactly_once(false);
    }

    #[test]
    fn every_item_arrives_exactly_once_in_batches() {
        exactly_once(true);
    }

    #[test]
    fn leftover_items_are_dropped_with_the_queue() {
        let item = Arc::new(());
        let queue = BoundedQueue::new(4);
        queue.try_push(Arc::clone(&item)).unwrap();
        queue.try_push(Arc::clone(&item)).unwrap();
        assert_eq!(Arc::strong_count(&item), 3);
        drop(queue);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    #[test]
    fn the_queue_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BoundedQueue<String>>();
    }
}
