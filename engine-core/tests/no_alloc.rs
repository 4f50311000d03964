//! The dispatch path must not allocate: `Topic::matches`, a cached `HookTable` route and an
//! uncontended queue push/pop. A counting global allocator checks it, per thread so that
//! other test threads cannot disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use event_engine_core::{topic_hash, BoundedQueue, HookTable, Topic};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// thread-local counter, which needs no allocation (const-initialised `Cell`).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 8])));
    assert_eq!(n, 1);
    let n = allocations_during(|| {
        drop(
            Topic::parse("a.{b}")
                .unwrap()
                .match_detail(&Topic::default()),
        )
    });
    assert!(n > 0);
}

#[test]
fn matching_does_not_allocate() {
    let hook = Topic::parse("Market.{kind}.(AAPL|MSFT)./^L[0-9]$/").unwrap();
    let hit = Topic::parse("Market.Trade.AAPL.L2").unwrap();
    let miss = Topic::parse("Market.Trade.IBM.L2").unwrap();
    // The regex engine sets up its per-thread scratch space on first use.
    assert!(hook.matches(&hit));
    let n = allocations_during(|| {
        for _ in 0..100 {
            assert!(hook.matches(&hit));
            assert!(!hook.matches(&miss));
            assert!(hit.matches(&hit));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn a_cached_route_does_not_allocate() {
    let mut table = HookTable::new();
    table.insert(Topic::parse("Market.Trade.AAPL").unwrap(), 1);
    table.insert(Topic::parse("Market.{kind}.+symbol").unwrap(), 2);
    table.insert(Topic::parse("Market./^T/.(AAPL|MSFT)").unwrap(), 3);
    let published = Topic::parse("Market.Trade.AAPL").unwrap();
    let hash = topic_hash(published.literal());
    assert_eq!(table.route(&published).count(), 3);
    let n = allocations_during(|| {
        for _ in 0..100 {
            assert_eq!(table.route(&published).copied().sum::<i32>(), 6);
            assert_eq!(table.route_literal(hash, "Market.Trade.AAPL").count(), 3);
            assert!(!table.find_route(hash, "Market.Trade.AAPL").is_empty());
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn uncontended_queue_operations_do_not_allocate() {
    let queue = BoundedQueue::new(16);
    let mut out = Vec::with_capacity(16);
    let n = allocations_during(|| {
        for i in 0..100u32 {
            queue.try_push(i).unwrap();
            queue.push_wait(i, 10, None).unwrap();
            assert_eq!(queue.try_pop(), Some(i));
            assert_eq!(queue.pop_wait(10, None), Some(i));
            queue.try_push(i).unwrap();
            out.clear();
            assert_eq!(queue.pop_batch(&mut out, 16, None), 1);
        }
    });
    assert_eq!(n, 0);
}
