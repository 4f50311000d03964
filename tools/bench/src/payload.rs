//! The 64-byte W4 message: sequence number, send timestamp and a filler derived from the
//! sequence number, so the receiver checks order, loss and integrity of every message.

/// Size of a W4 payload in bytes.
pub const SIZE: usize = 64;

/// A W4 payload as a plain value (the in-process and iceoryx2 peers move it by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Payload {
    /// Bytes as they travel.
    pub bytes: [u8; SIZE],
}

/// Filler byte `i` of message `seq`.
#[inline]
fn filler(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_add(i as u8)
}

/// Writes message `seq`, sent at `sent_ns`, into `buf` (exactly [`SIZE`] bytes).
#[inline]
pub fn write(buf: &mut [u8], seq: u64, sent_ns: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&sent_ns.to_le_bytes());
    for (i, b) in buf[16..SIZE].iter_mut().enumerate() {
        *b = filler(seq, i);
    }
}

/// A payload value for message `seq`.
#[inline]
pub fn make(seq: u64, sent_ns: u64) -> Payload {
    let mut p = Payload { bytes: [0; SIZE] };
    write(&mut p.bytes, seq, sent_ns);
    p
}

/// Reads `(seq, sent_ns)` back, checking the length and the filler (first and last byte, which
/// catches a torn or misplaced copy without costing a full compare per message).
#[inline]
pub fn read(buf: &[u8]) -> Result<(u64, u64), String> {
    if buf.len() != SIZE {
        return Err(format!("payload of {} bytes, expected {SIZE}", buf.len()));
    }
    let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    let sent = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    if buf[16] != filler(seq, 0) || buf[SIZE - 1] != filler(seq, SIZE - 17) {
        return Err(format!("payload of message {seq} is damaged"));
    }
    Ok((seq, sent))
}

/// Checks that received messages arrive exactly once and in order: 0, 1, 2, ...
#[derive(Debug, Default)]
pub struct OrderCheck {
    /// The sequence number expected next (= messages accepted so far).
    pub next: u64,
}

impl OrderCheck {
    /// Accepts message `seq` or says what went wrong.
    #[inline]
    pub fn accept(&mut self, seq: u64) -> Result<(), String> {
        if seq != self.next {
            let what = if seq < self.next {
                "a duplicate or reordered message"
            } else {
                "a lost message"
            };
            return Err(format!("{what}: got message {seq}, expected {}", self.next));
        }
        self.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let p = make(300, 12345);
        assert_eq!(read(&p.bytes), Ok((300, 12345)));
        let mut bad = p;
        bad.bytes[63] ^= 1;
        assert!(read(&bad.bytes).is_err());
        assert!(read(&p.bytes[..63]).is_err());
    }

    #[test]
    fn order_check_rejects_gaps_and_repeats() {
        let mut c = OrderCheck::default();
        c.accept(0).unwrap();
        c.accept(1).unwrap();
        assert!(c.accept(1).unwrap_err().contains("duplicate"));
        assert!(c.accept(3).unwrap_err().contains("lost"));
        c.accept(2).unwrap();
        assert_eq!(c.next, 3);
    }
}
