//! Market ticks for Python consumers: what `tick-producer` publishes, in two encodings.
//!
//! * Raw (`Codec::Raw`, the Python handler receives one `bytes` argument), little-endian:
//!   bytes 0..8 `seq` (u64), 8..16 `price` (f64), 16..24 `size` (u64), 24..32 the symbol in ASCII
//!   padded with NUL bytes (at most 8 characters), then zeros up to the requested size.
//! * Pickled (`Codec::Pickle`): `((seq, price, symbol), {"size": size})`, so the handler is
//!   called as `handler(seq, price, symbol, size=size)`.
//!
//! `seq` counts each symbol's ticks from 0; price and size are functions of it ([`price`],
//! [`size`]), so a consumer can check what it received.

use anyhow::{bail, Result};
use shm_ring::{Bus, BusError, Codec, Publisher, PyValue, Role};
use std::time::{Duration, Instant};

/// Smallest raw payload: the fixed fields.
pub const RAW_MIN: usize = 32;
/// Longest symbol a raw payload carries.
pub const RAW_SYMBOL_MAX: usize = 8;

/// Price of tick `seq`.
pub fn price(seq: u64) -> f64 {
    100.0 + (seq % 10_000) as f64 / 100.0
}

/// Size of tick `seq`.
pub fn size(seq: u64) -> u64 {
    (seq % 10 + 1) * 100
}

/// The topic of `symbol`'s ticks.
pub fn topic(symbol: &str) -> String {
    format!("Market.Data.{symbol}")
}

/// Writes raw tick `seq` of `symbol` into `buf` (at least [`RAW_MIN`] bytes).
pub fn write_raw(buf: &mut [u8], seq: u64, symbol: &str) {
    buf.fill(0);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&price(seq).to_le_bytes());
    buf[16..24].copy_from_slice(&size(seq).to_le_bytes());
    let s = symbol.as_bytes();
    let n = s.len().min(RAW_SYMBOL_MAX);
    buf[24..24 + n].copy_from_slice(&s[..n]);
}

/// A decoded raw tick: `(seq, price, size, symbol)`.
pub fn read_raw(buf: &[u8]) -> Result<(u64, f64, u64, String)> {
    if buf.len() < RAW_MIN {
        bail!(
            "raw tick of {} bytes, expected at least {RAW_MIN}",
            buf.len()
        );
    }
    let u = |r: std::ops::Range<usize>| u64::from_le_bytes(buf[r].try_into().expect("8 bytes"));
    let sym = &buf[24..32];
    let end = sym.iter().position(|&b| b == 0).unwrap_or(sym.len());
    Ok((
        u(0..8),
        f64::from_bits(u(8..16)),
        u(16..24),
        String::from_utf8_lossy(&sym[..end]).into_owned(),
    ))
}

/// The pickled call of tick `seq` of `symbol`: args and kwargs.
pub fn pickled_call(seq: u64, symbol: &str) -> (Vec<PyValue>, [(&'static str, PyValue); 1]) {
    (
        vec![
            PyValue::Int(seq as i64),
            PyValue::Float(price(seq)),
            PyValue::Str(symbol.to_string()),
        ],
        [("size", PyValue::Int(size(seq) as i64))],
    )
}

/// How each tick is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Raw bytes of this size.
    Raw(usize),
    /// A pickle of `(args, kwargs)`.
    Pickled,
}

/// Publishes tick `seq` of `symbol` on `topic`.
pub fn publish(
    p: &mut Publisher,
    topic: &str,
    symbol: &str,
    seq: u64,
    enc: Encoding,
    timeout: Duration,
) -> Result<(), BusError> {
    match enc {
        Encoding::Raw(n) => p
            .publish_with(topic, Codec::Raw, n, Some(timeout), |b| {
                write_raw(b, seq, symbol)
            })
            .map(drop),
        Encoding::Pickled => {
            let (args, kwargs) = pickled_call(seq, symbol);
            p.publish_pickled(topic, &args, &kwargs, Some(timeout))
                .map(drop)
        }
    }
}

/// Consumers (fan-out subscribers and group members) attached to `bus` and alive.
pub fn consumers(bus: &Bus) -> usize {
    bus.snapshot()
        .processes
        .iter()
        .filter(|p| p.alive && matches!(p.role, Role::Subscriber | Role::GroupMember))
        .count()
}

/// Waits until at least `k` consumers are attached to `bus`, polling its table.
pub fn wait_consumers(bus: &Bus, k: usize, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let n = consumers(bus);
        if n >= k {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!(
                "only {n} of {k} subscribers attached to bus {:?} after {:.1} s (raise --wait-timeout or start the consumers)",
                bus.name(),
                timeout.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_and_short_buffer() {
        let mut b = [0xffu8; 64];
        write_raw(&mut b, 42, "AAPL");
        let (seq, px, sz, sym) = read_raw(&b).unwrap();
        assert_eq!(
            (seq, px, sz, sym.as_str()),
            (42, price(42), size(42), "AAPL")
        );
        assert!(b[32..].iter().all(|&x| x == 0));
        assert!(read_raw(&b[..31]).is_err());
    }

    #[test]
    fn pickled_call_decodes() {
        let (args, kwargs) = pickled_call(7, "MSFT");
        let body = shm_ring::wire::pickle::encode_call(&args, &kwargs);
        let v = shm_ring::wire::pickle::decode(&body).unwrap();
        let want = PyValue::Tuple(vec![
            PyValue::Tuple(vec![
                PyValue::Int(7),
                PyValue::Float(price(7)),
                PyValue::Str("MSFT".into()),
            ]),
            PyValue::Dict(vec![("size".into(), PyValue::Int(800))]),
        ]);
        assert_eq!(v, want);
    }
}
