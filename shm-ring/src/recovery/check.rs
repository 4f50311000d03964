//! Consistency checks of a region's shared state, for [`crate::Snapshot::corruption`]: what no
//! run of the protocol can produce, found by reading only (the region may be live).
//!
//! Every check reads the words it needs, then re-reads what could have moved in between (the
//! ring head, a slot's sequence, a free-list head) and reports only what stayed wrong, so that a
//! busy bus is not reported as corrupt because a publisher or subscriber moved while it was read.

use crate::blocks::atomics::Ordering;
use crate::blocks::entry;
use crate::blocks::ring::dist;
use crate::blocks::slab::TaggedIndex;
use crate::region::layout::CONSUMER_LIVE;
use crate::region::message::read_message;
use crate::region::Region;

/// Positions are compared modulo 2^48, as group cursors store them.
const POS_MASK: u64 = (1 << 48) - 1;

/// What is wrong with the region, one sentence each; empty when nothing is.
pub(crate) fn problems(region: &Region) -> Vec<String> {
    let mut out = Vec::new();
    ring(region, &mut out);
    cursors(region, &mut out);
    free_lists(region, &mut out);
    out
}

fn ring(region: &Region, out: &mut Vec<String>) {
    let ring = region.ring();
    if let Some((head, seq)) = ring.head_overrun() {
        out.push(format!(
            "the ring head is at position {head} but its slot's sequence is {seq}, ahead of it \
             (publishers would find the ring full for ever)"
        ));
    }
    let cap = ring.capacity();
    let h0 = ring.head.load(Ordering::SeqCst);
    for (i, slot) in region.slots().iter().enumerate() {
        let i = i as u64;
        let seq = slot.seq.load(Ordering::Acquire);
        let h1 = ring.head.load(Ordering::SeqCst);
        // Free for `pos` (seq = pos), published (seq = pos + 1) or released (seq = pos + cap),
        // for some position `pos` of this slot within a ring of the head.
        let in_range = dist(seq, h0.wrapping_sub(cap)) >= 0 && dist(seq, h1.wrapping_add(cap)) <= 0;
        let phase = seq.wrapping_sub(i) & (cap - 1);
        if !in_range || (phase != 0 && phase != 1) {
            if slot.seq.load(Ordering::Acquire) == seq {
                out.push(format!(
                    "ring slot {i} has sequence {seq}, which no position near the head \
                     ({h1}) gives it"
                ));
            }
            continue;
        }
        if phase == 1 && cap > 1 {
            let pos = seq.wrapping_sub(1);
            if let Err(e) = read_message(region, pos) {
                if slot.seq.load(Ordering::Acquire) == seq {
                    out.push(e.to_string());
                }
            }
        }
    }
}

fn cursors(region: &Region, out: &mut Vec<String>) {
    let l = region.layout();
    let head = &region.header().head;
    let cap = l.ring_capacity as u64;
    for (i, c) in region
        .consumers()
        .iter()
        .enumerate()
        .take(l.max_subscribers as usize)
    {
        if c.state.load(Ordering::Acquire) != CONSUMER_LIVE {
            continue;
        }
        let lossy = region.header().lossy_mask.load(Ordering::Acquire) & 1 << i != 0;
        let h0 = head.load(Ordering::SeqCst);
        let cursor = entry::position(c.cursor.load(Ordering::Acquire), lossy, h0) & POS_MASK;
        let h0 = h0 & POS_MASK;
        let h1 = head.load(Ordering::SeqCst) & POS_MASK;
        let ahead = cursor.wrapping_sub(h1) & POS_MASK;
        let behind = h0.wrapping_sub(cursor) & POS_MASK;
        // A consumer is never past the head. It may be any distance behind: one that nothing
        // is addressed to does not move its cursor until something is.
        let _ = behind;
        if ahead != 0 && ahead < POS_MASK / 2 {
            out.push(format!(
                "consumer {i} has its cursor at position {cursor}, outside the ring \
                 (head {h1}, capacity {cap})"
            ));
        }
    }
}

fn free_lists(region: &Region, out: &mut Vec<String>) {
    for (i, class) in region.layout().classes.iter().enumerate() {
        let list = region.free_list(i);
        // A walk races with pops and pushes; only a damage seen twice over an unchanged head
        // is reported.
        let mut tries = 0;
        for _ in 0..16 {
            let before = list.head.load(Ordering::Acquire);
            match list.len() {
                Ok(_) => break,
                Err(bad) if list.head.load(Ordering::Acquire) == before => {
                    tries += 1;
                    if tries >= 2 {
                        out.push(format!(
                            "the free list of slab class {i} ({} bytes) is damaged at block {} \
                             (a link out of range, a cycle, or a block in use); top {}",
                            class.block_size,
                            bad.0,
                            TaggedIndex::from(before).index
                        ));
                        break;
                    }
                }
                Err(_) => {}
            }
        }
    }
}
