//! The layout of a [`Codec::PickleBuffers`](super::Codec::PickleBuffers) payload: a pickle
//! (protocol 5) of `(args, kwargs)` whose buffers travel out of band, after it, each starting
//! on a 64-byte boundary of the slab block so that arrays viewing them are aligned.
//!
//! ```text
//! u32 count, u32 pickle_len                  (little-endian)
//! count x (u64 offset, u64 len)              each buffer, offsets from the payload's start
//! pickle_len bytes of pickle
//! the buffers' bytes, in order, each at its offset (zero padding between)
//! ```
//!
//! A block holds the topic's bytes then the payload, and starts 64-aligned: a writer pads so
//! that `topic_len + offset` is a multiple of [`ALIGN`] ([`plan`]). Readers rely on nothing of
//! that: [`parse`] checks every length and offset against the payload (it was written by
//! another process), and a buffer may start anywhere after the pickle.

use std::ops::Range;

/// The boundary every buffer's data starts on, counted from the start of the slab block.
pub const ALIGN: usize = 64;
/// Bytes of the fixed header (count and pickle length).
const FIXED: usize = 8;
/// Bytes per buffer entry (offset and length).
const ENTRY: usize = 16;

/// Where each piece of a payload lies, as byte ranges of the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The pickle.
    pub pickle: Range<usize>,
    /// Each out-of-band buffer, in the order the pickle refers to them.
    pub buffers: Vec<Range<usize>>,
    /// The payload's whole length.
    pub len: usize,
}

/// Why a payload does not have this layout.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("malformed buffers payload: {0}")]
pub struct LayoutError(pub &'static str);

/// The layout of a payload carrying a `pickle_len`-byte pickle and buffers of `buffer_lens`
/// bytes, on a topic of `topic_len` bytes (the topic precedes the payload in its block).
/// `None` when the sizes overflow `usize`.
pub fn plan(topic_len: usize, pickle_len: usize, buffer_lens: &[usize]) -> Option<Layout> {
    let header = buffer_lens.len().checked_mul(ENTRY)?.checked_add(FIXED)?;
    let pickle = header..header.checked_add(pickle_len)?;
    let mut end = pickle.end;
    let mut buffers = Vec::with_capacity(buffer_lens.len());
    for &n in buffer_lens {
        // The first offset at or after `end` where `topic_len + offset` is a multiple of ALIGN.
        let at = topic_len
            .checked_add(end)?
            .checked_next_multiple_of(ALIGN)?
            .checked_sub(topic_len)?;
        end = at.checked_add(n)?;
        buffers.push(at..end);
    }
    // u32 fields.
    if u32::try_from(buffer_lens.len()).is_err() || u32::try_from(pickle_len).is_err() {
        return None;
    }
    Some(Layout {
        pickle,
        buffers,
        len: end,
    })
}

/// The layout of a payload carrying a `pickle_len`-byte pickle and one buffer of `len` bytes
/// that already lies at payload offset `at` (a loaned block the producer filled in place):
/// `None` when the header and the pickle do not fit before it.
pub fn plan_at(pickle_len: usize, at: usize, len: usize) -> Option<Layout> {
    let header = FIXED + ENTRY;
    let pickle = header..header.checked_add(pickle_len)?;
    if pickle.end > at || u32::try_from(pickle_len).is_err() {
        return None;
    }
    let end = at.checked_add(len)?;
    Some(Layout {
        pickle,
        buffers: std::iter::once(at..end).collect(),
        len: end,
    })
}

/// Writes the header of `layout` at the start of `out` (which is `layout.len` bytes: the
/// whole payload), and zeroes the padding; the pickle and the buffers are the caller's to copy
/// to their ranges.
pub fn write_header(layout: &Layout, out: &mut [u8]) {
    out[..4].copy_from_slice(&(layout.buffers.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(layout.pickle.len() as u32).to_le_bytes());
    let mut at = FIXED;
    let mut end = layout.pickle.end;
    for b in &layout.buffers {
        out[at..at + 8].copy_from_slice(&(b.start as u64).to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(b.len() as u64).to_le_bytes());
        at += ENTRY;
        out[end..b.start].fill(0);
        end = b.end;
    }
}

/// Reads the layout of `payload`, checking it: the header fits, the pickle lies within the
/// payload after the header, and the buffers lie within the payload after the pickle, in order,
/// without overlapping.
pub fn parse(payload: &[u8]) -> Result<Layout, LayoutError> {
    let word =
        |at: usize| -> u32 { u32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes")) };
    if payload.len() < FIXED {
        return Err(LayoutError("shorter than its header"));
    }
    let count = word(0) as usize;
    let pickle_len = word(4) as usize;
    let header = count
        .checked_mul(ENTRY)
        .and_then(|n| n.checked_add(FIXED))
        .filter(|&h| h <= payload.len())
        .ok_or(LayoutError("more buffer entries than the payload holds"))?;
    let pickle = header..header + pickle_len;
    if pickle.end > payload.len() {
        return Err(LayoutError("the pickle runs past the payload's end"));
    }
    let mut end = pickle.end;
    let mut buffers = Vec::with_capacity(count);
    for i in 0..count {
        let at = FIXED + i * ENTRY;
        let read = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8"));
        let (start, len) = (read(at), read(at + 8));
        let start = usize::try_from(start).map_err(|_| LayoutError("offset out of range"))?;
        let len = usize::try_from(len).map_err(|_| LayoutError("length out of range"))?;
        if start < end {
            return Err(LayoutError(
                "a buffer overlaps the header, the pickle or the buffer before it",
            ));
        }
        let stop = start
            .checked_add(len)
            .filter(|&s| s <= payload.len())
            .ok_or(LayoutError("a buffer runs past the payload's end"))?;
        buffers.push(start..stop);
        end = stop;
    }
    Ok(Layout {
        pickle,
        buffers,
        len: payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(topic_len: usize, pickle: &[u8], bufs: &[&[u8]]) -> Vec<u8> {
        let lens: Vec<usize> = bufs.iter().map(|b| b.len()).collect();
        let layout = plan(topic_len, pickle.len(), &lens).unwrap();
        let mut out = vec![0xAA; layout.len];
        write_header(&layout, &mut out);
        out[layout.pickle.clone()].copy_from_slice(pickle);
        for (r, b) in layout.buffers.iter().zip(bufs) {
            out[r.clone()].copy_from_slice(b);
        }
        out
    }

    #[test]
    fn buffers_start_on_block_boundaries_whatever_the_topic_length() {
        for topic_len in [0, 1, 17, 63, 64, 65, 200, 512] {
            let layout = plan(topic_len, 37, &[1000, 0, 5, 64]).unwrap();
            assert_eq!(layout.pickle, 72..109);
            let mut end = layout.pickle.end;
            for (b, n) in layout.buffers.iter().zip([1000, 0, 5, 64]) {
                assert_eq!((topic_len + b.start) % ALIGN, 0, "{topic_len} {b:?}");
                assert!(b.start >= end && b.start - end < ALIGN);
                assert_eq!(b.len(), n);
                end = b.end;
            }
            assert_eq!(layout.len, end);
        }
    }

    #[test]
    fn a_written_payload_reads_back() {
        let payload = build(11, b"PICKLE", &[b"abc", b"", &[7; 300]]);
        let layout = parse(&payload).unwrap();
        assert_eq!(&payload[layout.pickle.clone()], b"PICKLE");
        let got: Vec<&[u8]> = layout.buffers.iter().map(|r| &payload[r.clone()]).collect();
        assert_eq!(got, [&b"abc"[..], b"", &[7; 300][..]]);
        // Padding is zeroed, not left as whatever the block held.
        assert!(payload[layout.pickle.end..layout.buffers[0].start]
            .iter()
            .all(|&b| b == 0));
        let none = build(0, b"P", &[]);
        assert_eq!(parse(&none).unwrap().buffers, Vec::<Range<usize>>::new());
    }

    #[test]
    fn crafted_headers_are_refused() {
        let good = build(3, b"PICKLE", &[b"abc", b"defg"]);
        let set = |at: usize, v: &[u8]| {
            let mut p = good.clone();
            p[at..at + v.len()].copy_from_slice(v);
            p
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..5].to_vec(), "shorter"),
            (set(0, &u32::MAX.to_le_bytes()), "entries"),
            (set(4, &u32::MAX.to_le_bytes()), "pickle runs past"),
            // First buffer's offset inside the pickle.
            (set(8, &10u64.to_le_bytes()), "overlaps"),
            // First buffer's length past the end.
            (set(16, &u64::MAX.to_le_bytes()), "past the payload"),
            // Second buffer's offset before the first one's end.
            (set(24, &60u64.to_le_bytes()), "overlaps"),
            (good[..good.len() - 1].to_vec(), "past the payload"),
        ];
        for (payload, want) in cases {
            let e = parse(&payload).unwrap_err();
            assert!(e.to_string().contains(want), "{e} / {want}");
        }
        assert!(parse(&good).is_ok());
    }
}
