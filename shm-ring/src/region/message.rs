//! A message as a subscriber sees it: a borrowed view of a published slot and its block.

use crate::blocks::atomics::Ordering;
use crate::blocks::ring::INLINE_CAP;
use crate::region::layout::MAX_TOPIC_LEN;
use crate::region::words::SlotMeta;
use crate::region::Region;
use crate::BusError;

/// A message on the bus: a borrowed view of a slot and its block, valid until the next receive
/// call on (or drop of) the subscriber that returned it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Ring position (sequence number) of the message.
    pub seq: u64,
    /// xxh3-64 hash of the topic.
    pub topic_hash: u64,
    /// The topic literal.
    pub topic: &'a str,
    /// Codec tag ([`crate::Codec`] as u8; other values may be used by other languages).
    pub codec: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The slab block holding topic and payload, as index + 1; 0 when they travelled inline in
    /// the slot, or for a copy (a lossy subscriber's, an observer's). See [`crate::Holder`].
    pub block: u32,
    /// Process-table row of the publisher.
    pub publisher: u32,
    /// Pid of the publisher.
    pub publisher_pid: u32,
    /// When it was published, nanoseconds since the Unix epoch, read from the kernel's coarse
    /// clock (`CLOCK_REALTIME_COARSE`): good to a kernel tick (1 to 4 ms), not for latency
    /// measurements, which should carry their own timestamp in the payload.
    pub timestamp_ns: u64,
}

/// Reads position `pos` as a message, range-checking everything taken from the slot.
pub(crate) fn read_message(region: &Region, pos: u64) -> Result<Message<'_>, BusError> {
    let slot = region.ring().slot(pos);
    let SlotMeta { topic_len, codec } = SlotMeta::from(slot.meta.load(Ordering::Relaxed));
    let topic_len = topic_len as usize;
    let len = slot.payload_len.load(Ordering::Relaxed) as usize;
    let block = slot.block.load(Ordering::Relaxed);
    let bad =
        |what: String| BusError::corrupt(region.name(), format!("slot of position {pos}: {what}"));
    if topic_len > MAX_TOPIC_LEN {
        return Err(bad(format!("topic length {topic_len}")));
    }
    let total = topic_len + len;
    let bytes: &[u8] = if block == 0 {
        if total > INLINE_CAP {
            return Err(bad(format!("inline length {total}")));
        }
        // SAFETY: the slot is published and our pending bit keeps it from being reused; its
        // inline bytes are no longer written (see `Slot`'s Sync note).
        unsafe { std::slice::from_raw_parts(slot.inline.get().cast::<u8>(), total) }
    } else {
        let (_, ptr, size) = region
            .block(block - 1)
            .ok_or_else(|| bad(format!("block {}", block - 1)))?;
        if total > size {
            return Err(bad(format!("length {total} exceeds block size {size}")));
        }
        // SAFETY: block `block - 1` is in range (checked), `total <= size`, and the block belongs
        // to this published slot, which our pending bit keeps alive and unwritten.
        unsafe { std::slice::from_raw_parts(ptr, total) }
    };
    let topic =
        std::str::from_utf8(&bytes[..topic_len]).map_err(|_| bad("topic is not UTF-8".into()))?;
    Ok(Message {
        seq: pos,
        topic_hash: slot.topic_hash.load(Ordering::Relaxed),
        topic,
        codec,
        payload: &bytes[topic_len..],
        block,
        publisher: slot.publisher.load(Ordering::Relaxed),
        publisher_pid: slot.publisher_pid.load(Ordering::Relaxed),
        timestamp_ns: slot.timestamp_ns.load(Ordering::Relaxed),
    })
}

/// Copies `len` bytes from shared memory another process may be rewriting, with volatile reads
/// through a raw pointer: no reference to those bytes is ever made, so a concurrent writer makes
/// the copy stale (which the caller detects, as in a seqlock), never undefined behaviour in this
/// process.
///
/// # Safety
/// `src..src + len` must lie inside the mapping.
unsafe fn copy_volatile(src: *const u8, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(len);
    for i in 0..len {
        // SAFETY: in range per the caller; volatile because a concurrent writer may change it.
        out.push(unsafe { std::ptr::read_volatile(src.add(i)) });
    }
}

/// What [`copy_message`] took from a slot besides the bytes.
pub(crate) struct Copied {
    /// The message's ring position.
    pub seq: u64,
    pub topic_hash: u64,
    pub topic_len: usize,
    pub codec: u8,
    pub publisher: u32,
    pub publisher_pid: u32,
    pub timestamp_ns: u64,
}

impl Copied {
    /// The message whose bytes (topic, then payload) [`copy_message`] put in `bytes`. A topic
    /// that is not UTF-8 reads as empty: callers check it before they trust the copy.
    pub fn message<'a>(&self, bytes: &'a [u8]) -> Message<'a> {
        let (topic, payload) = bytes.split_at(self.topic_len.min(bytes.len()));
        Message {
            seq: self.seq,
            topic_hash: self.topic_hash,
            topic: std::str::from_utf8(topic).unwrap_or_default(),
            codec: self.codec,
            payload,
            block: 0,
            publisher: self.publisher,
            publisher_pid: self.publisher_pid,
            timestamp_ns: self.timestamp_ns,
        }
    }
}

/// Copies slot `pos` and its topic and payload bytes into `out`, for readers that hold no bit
/// keeping the slot (an observer) or may lose it while copying (a lossy subscriber). Every length
/// and index is checked against the layout before reading through it; `None` for a slot that
/// cannot be a message. The result may be torn: the caller checks that the slot was still its
/// own after the copy before using it.
pub(crate) fn copy_message(region: &Region, pos: u64, out: &mut Vec<u8>) -> Option<Copied> {
    let slot = region.ring().slot(pos);
    let SlotMeta { topic_len, codec } = SlotMeta::from(slot.meta.load(Ordering::Relaxed));
    let topic_len = topic_len as usize;
    let len = slot.payload_len.load(Ordering::Relaxed) as usize;
    let block = slot.block.load(Ordering::Relaxed);
    if topic_len > MAX_TOPIC_LEN {
        return None;
    }
    let total = topic_len.checked_add(len)?;
    let src: *const u8 = if block == 0 {
        if total > INLINE_CAP {
            return None;
        }
        slot.inline.get().cast::<u8>()
    } else {
        let (_, ptr, size) = region.block(block - 1)?;
        if total > size {
            return None;
        }
        ptr
    };
    // SAFETY: `src..src + total` lies inside the slot's inline bytes or inside block
    // `block - 1`, both within the mapping (checked just above against the layout).
    unsafe { copy_volatile(src, total, out) };
    Some(Copied {
        seq: pos,
        topic_hash: slot.topic_hash.load(Ordering::Relaxed),
        topic_len,
        codec,
        publisher: slot.publisher.load(Ordering::Relaxed),
        publisher_pid: slot.publisher_pid.load(Ordering::Relaxed),
        timestamp_ns: slot.timestamp_ns.load(Ordering::Relaxed),
    })
}
