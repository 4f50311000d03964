//! A pickle encoder for `(args, kwargs)` built in Rust, so a Python handler receives ordinary
//! arguments, and a decoder for the same value subset (as Python itself writes it, protocols 2 to
//! 5), so tools can show pickled arguments as Python-like text.
//!
//! The encoder writes protocol 2 (protocol 3 when a `bytes` value needs `SHORT_BINBYTES`/`BINBYTES`)
//! without memo opcodes; values are `None`, `bool`, `int` (i64), `float`, `str`, `bytes`, `list`,
//! `tuple` and `dict` with string keys. Pickle runs code when loaded by Python, which is why the bus
//! trusts its writers; the decoder here only builds values and never runs anything.

use super::objects;
pub use super::value::PyValue;

/// Why a pickle could not be decoded.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The data ended before `STOP`.
    #[error("pickle data ends early")]
    Truncated,
    /// An opcode outside the supported subset.
    #[error("unsupported pickle opcode {0:#04x} at offset {1}")]
    Unsupported(u8, usize),
    /// The stack or memo did not hold what an opcode needs.
    #[error("malformed pickle at offset {0}: {1}")]
    Malformed(usize, &'static str),
    /// Decoding would nest deeper than [`MAX_DEPTH`] or cost more than [`MAX_UNITS`].
    #[error("pickle exceeds the decoder's limits at offset {0}: {1}")]
    TooLarge(usize, &'static str),
}

/// Pickles the call arguments `(args, kwargs)`.
pub fn encode_call(args: &[PyValue], kwargs: &[(&str, PyValue)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let proto = if args
        .iter()
        .chain(kwargs.iter().map(|(_, v)| v))
        .any(has_bytes)
    {
        3
    } else {
        2
    };
    out.extend_from_slice(&[0x80, proto]);
    encode_seq(&mut out, args.iter(), args.len(), true);
    if kwargs.is_empty() {
        out.push(b'}');
    } else {
        out.extend_from_slice(b"}(");
        for (k, v) in kwargs {
            encode_str(&mut out, k);
            encode(&mut out, v);
        }
        out.push(b'u');
    }
    out.extend_from_slice(&[0x86, b'.']);
    out
}

fn has_bytes(v: &PyValue) -> bool {
    match v {
        PyValue::Bytes(_) => true,
        PyValue::List(xs) | PyValue::Tuple(xs) => xs.iter().any(has_bytes),
        PyValue::Dict(kv) => kv.iter().any(|(_, v)| has_bytes(v)),
        _ => false,
    }
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_seq<'a>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = &'a PyValue>,
    n: usize,
    tuple: bool,
) {
    if tuple {
        match n {
            0 => out.push(b')'),
            1..=3 => {
                items.for_each(|v| encode(out, v));
                out.push(0x84 + n as u8);
            }
            _ => {
                out.push(b'(');
                items.for_each(|v| encode(out, v));
                out.push(b't');
            }
        }
    } else {
        out.push(b']');
        if n > 0 {
            out.push(b'(');
            items.for_each(|v| encode(out, v));
            out.push(b'e');
        }
    }
}

fn encode(out: &mut Vec<u8>, v: &PyValue) {
    match v {
        PyValue::None => out.push(b'N'),
        PyValue::Bool(b) => out.push(if *b { 0x88 } else { 0x89 }),
        PyValue::Int(i) => {
            if (0..=0xff).contains(i) {
                out.extend_from_slice(&[b'K', *i as u8]);
            } else if (0..=0xffff).contains(i) {
                out.push(b'M');
                out.extend_from_slice(&(*i as u16).to_le_bytes());
            } else if i32::try_from(*i).is_ok() {
                out.push(b'J');
                out.extend_from_slice(&(*i as i32).to_le_bytes());
            } else {
                // LONG1: minimal little-endian two's complement.
                let bytes = i.to_le_bytes();
                let mut n = 8;
                while n > 1 {
                    let top = bytes[n - 1];
                    let next_sign = bytes[n - 2] & 0x80;
                    if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                        n -= 1;
                    } else {
                        break;
                    }
                }
                out.extend_from_slice(&[0x8a, n as u8]);
                out.extend_from_slice(&bytes[..n]);
            }
        }
        PyValue::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        PyValue::Str(s) => encode_str(out, s),
        // Values only decoding makes are written as their text.
        PyValue::Global(_) | PyValue::Object(..) | PyValue::Buffer { .. } => {
            encode_str(out, &v.to_string())
        }
        PyValue::Bytes(b) => {
            if b.len() < 256 {
                out.extend_from_slice(&[b'C', b.len() as u8]);
            } else {
                out.push(b'B');
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            }
            out.extend_from_slice(b);
        }
        PyValue::List(xs) => encode_seq(out, xs.iter(), xs.len(), false),
        PyValue::Tuple(xs) => encode_seq(out, xs.iter(), xs.len(), true),
        PyValue::Dict(kv) => {
            out.push(b'}');
            if !kv.is_empty() {
                out.push(b'(');
                for (k, v) in kv {
                    encode_str(out, k);
                    encode(out, v);
                }
                out.push(b'u');
            }
        }
    }
}

enum Item {
    Mark,
    /// A value and its nesting depth (1 for a scalar or an empty container).
    Value(PyValue, u32),
}

/// Deepest nesting [`decode`] builds: deeper pickles are refused (Python's own calls are a few
/// levels deep; a crafted one could nest until dropping or printing the value overflows the stack).
pub const MAX_DEPTH: u32 = 32;
/// Most work [`decode`] does: one unit per value built plus one per byte of text, including the
/// copies a memo read makes (a crafted pickle can otherwise double its size with every memo read).
pub const MAX_UNITS: u64 = 1 << 20;

/// Units a value costs (see [`MAX_UNITS`]); bounded by [`MAX_DEPTH`] in recursion.
fn units(v: &PyValue) -> u64 {
    match v {
        PyValue::Str(s) => 1 + s.len() as u64,
        PyValue::Bytes(b) => 1 + b.len() as u64,
        PyValue::List(xs) | PyValue::Tuple(xs) => 1 + xs.iter().map(units).sum::<u64>(),
        PyValue::Dict(kv) => {
            1 + kv
                .iter()
                .map(|(k, v)| k.len() as u64 + units(v))
                .sum::<u64>()
        }
        PyValue::Global(name) => 1 + name.len() as u64,
        PyValue::Object(class, args) => {
            1 + class.len() as u64 + args.iter().map(units).sum::<u64>()
        }
        PyValue::Buffer { details, .. } => 1 + details.iter().map(|d| d.len() as u64).sum::<u64>(),
        _ => 1,
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A text line (GLOBAL's module and name), without its newline.
    fn line(&mut self) -> Result<&'a str, DecodeError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(1024)
            .position(|&b| b == b'\n')
            .ok_or(DecodeError::Truncated)?;
        let at = self.pos;
        let line = self.take(n + 1)?;
        std::str::from_utf8(&line[..n]).map_err(|_| DecodeError::Malformed(at, "name is not UTF-8"))
    }
    fn len64(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.u64()?).map_err(|_| DecodeError::Truncated)
    }
}

fn key_text(v: PyValue) -> String {
    match v {
        PyValue::Str(s) => s,
        other => other.to_string(),
    }
}

/// Decodes a pickle of the supported subset (as written by [`encode_call`] or by Python's
/// `pickle.dumps` with protocols 2 to 5).
pub fn decode(bytes: &[u8]) -> Result<PyValue, DecodeError> {
    decode_with_buffers(bytes, &[])
}

/// [`decode`] of a pickle whose out-of-band buffers have the sizes `buffers`, in order (a
/// [`super::Codec::PickleBuffers`] payload): each shows as its type, details and size (see
/// docs/wire-format.md). Classes and functions named by the pickle are shown, never imported or
/// called.
pub fn decode_with_buffers(bytes: &[u8], buffers: &[u64]) -> Result<PyValue, DecodeError> {
    let mut next_buffer = buffers.iter().copied();
    let mut r = Reader {
        data: bytes,
        pos: 0,
    };
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: Vec<Option<(PyValue, u32)>> = Vec::new();
    let malformed = |at: usize, what: &'static str| DecodeError::Malformed(at, what);
    fn pop_mark(stack: &mut Vec<Item>, at: usize) -> Result<(Vec<PyValue>, u32), DecodeError> {
        let mark = stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or(DecodeError::Malformed(at, "no MARK"))?;
        let items = stack.split_off(mark + 1);
        stack.pop();
        let mut depth = 0;
        let values = items
            .into_iter()
            .filter_map(|i| {
                if let Item::Value(v, d) = i {
                    depth = depth.max(d);
                    Some(v)
                } else {
                    None
                }
            })
            .collect();
        Ok((values, depth))
    }
    fn pop_value(stack: &mut Vec<Item>, at: usize) -> Result<(PyValue, u32), DecodeError> {
        match stack.pop() {
            Some(Item::Value(v, d)) => Ok((v, d)),
            _ => Err(DecodeError::Malformed(at, "stack empty")),
        }
    }
    let mut spent: u64 = 0;
    // Charges `cost` units, within the limit.
    fn charge(spent: &mut u64, cost: u64, at: usize) -> Result<(), DecodeError> {
        *spent += cost;
        if *spent > MAX_UNITS {
            return Err(DecodeError::TooLarge(at, "too many values"));
        }
        Ok(())
    }
    // Pushes a value of depth `d` costing `cost` units, within the limits.
    fn push(
        stack: &mut Vec<Item>,
        spent: &mut u64,
        v: PyValue,
        d: u32,
        cost: u64,
        at: usize,
    ) -> Result<(), DecodeError> {
        charge(spent, cost, at)?;
        if d > MAX_DEPTH {
            return Err(DecodeError::TooLarge(at, "nested too deeply"));
        }
        stack.push(Item::Value(v, d));
        Ok(())
    }
    fn memo_put(
        memo: &mut Vec<Option<(PyValue, u32)>>,
        idx: usize,
        v: (PyValue, u32),
        at: usize,
    ) -> Result<(), DecodeError> {
        if idx > 1 << 20 {
            return Err(DecodeError::Malformed(at, "memo index too large"));
        }
        if memo.len() <= idx {
            memo.resize(idx + 1, None);
        }
        memo[idx] = Some(v);
        Ok(())
    }
    loop {
        let at = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?;
            }
            0x95 => {
                r.u64()?;
            }
            b'.' => return pop_value(&mut stack, at).map(|(v, _)| v),
            b'(' => stack.push(Item::Mark),
            b'N' => push(&mut stack, &mut spent, PyValue::None, 1, 1, at)?,
            0x88 => push(&mut stack, &mut spent, PyValue::Bool(true), 1, 1, at)?,
            0x89 => push(&mut stack, &mut spent, PyValue::Bool(false), 1, 1, at)?,
            b'K' => push(
                &mut stack,
                &mut spent,
                PyValue::Int(r.u8()? as i64),
                1,
                1,
                at,
            )?,
            b'M' => {
                let b = r.take(2)?;
                let v = PyValue::Int(u16::from_le_bytes([b[0], b[1]]) as i64);
                push(&mut stack, &mut spent, v, 1, 1, at)?;
            }
            b'J' => push(
                &mut stack,
                &mut spent,
                PyValue::Int(r.u32()? as i32 as i64),
                1,
                1,
                at,
            )?,
            0x8a => {
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return Err(malformed(at, "integer wider than 64 bits"));
                }
                let fill = if b.last().is_some_and(|x| x & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut full = [fill; 8];
                full[..n].copy_from_slice(b);
                push(
                    &mut stack,
                    &mut spent,
                    PyValue::Int(i64::from_le_bytes(full)),
                    1,
                    1,
                    at,
                )?;
            }
            b'G' => {
                let b = r.take(8)?;
                let v = PyValue::Float(f64::from_be_bytes(b.try_into().expect("8 bytes")));
                push(&mut stack, &mut spent, v, 1, 1, at)?;
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => r.u32()? as usize,
                    0x8c => r.u8()? as usize,
                    _ => r.len64()?,
                };
                let s = std::str::from_utf8(r.take(n)?)
                    .map_err(|_| malformed(at, "string is not UTF-8"))?;
                push(
                    &mut stack,
                    &mut spent,
                    PyValue::Str(s.to_string()),
                    1,
                    1 + n as u64,
                    at,
                )?;
            }
            b'C' | b'B' | 0x8e => {
                let n = match op {
                    b'C' => r.u8()? as usize,
                    b'B' => r.u32()? as usize,
                    _ => r.len64()?,
                };
                push(
                    &mut stack,
                    &mut spent,
                    PyValue::Bytes(r.take(n)?.to_vec()),
                    1,
                    1 + n as u64,
                    at,
                )?;
            }
            b']' => push(&mut stack, &mut spent, PyValue::List(Vec::new()), 1, 1, at)?,
            b')' => push(&mut stack, &mut spent, PyValue::Tuple(Vec::new()), 1, 1, at)?,
            b'}' => push(&mut stack, &mut spent, PyValue::Dict(Vec::new()), 1, 1, at)?,
            b't' => {
                let (items, d) = pop_mark(&mut stack, at)?;
                push(&mut stack, &mut spent, PyValue::Tuple(items), d + 1, 1, at)?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                let mut d = 0;
                for _ in 0..n {
                    let (v, vd) = pop_value(&mut stack, at)?;
                    d = d.max(vd);
                    items.push(v);
                }
                items.reverse();
                push(&mut stack, &mut spent, PyValue::Tuple(items), d + 1, 1, at)?;
            }
            b'a' | b'e' => {
                let (items, d) = if op == b'a' {
                    let (v, d) = pop_value(&mut stack, at)?;
                    (vec![v], d)
                } else {
                    pop_mark(&mut stack, at)?
                };
                match stack.last_mut() {
                    Some(Item::Value(PyValue::List(xs), depth)) => {
                        *depth = (*depth).max(d + 1);
                        if *depth > MAX_DEPTH {
                            return Err(DecodeError::TooLarge(at, "nested too deeply"));
                        }
                        xs.extend(items)
                    }
                    _ => return Err(malformed(at, "append to a non-list")),
                }
            }
            b's' | b'u' => {
                let (items, d) = if op == b's' {
                    let (v, vd) = pop_value(&mut stack, at)?;
                    let (k, kd) = pop_value(&mut stack, at)?;
                    (vec![k, v], vd.max(kd))
                } else {
                    pop_mark(&mut stack, at)?
                };
                if items.len() % 2 != 0 {
                    return Err(malformed(at, "odd number of dict items"));
                }
                let Some(Item::Value(PyValue::Dict(kv), depth)) = stack.last_mut() else {
                    return Err(malformed(at, "set item on a non-dict"));
                };
                *depth = (*depth).max(d + 1);
                if *depth > MAX_DEPTH {
                    return Err(DecodeError::TooLarge(at, "nested too deeply"));
                }
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    kv.push((key_text(k), v));
                }
            }
            0x94 | b'q' | b'r' => {
                let idx = match op {
                    0x94 => memo.len(),
                    b'q' => r.u8()? as usize,
                    _ => r.u32()? as usize,
                };
                let top = match stack.last() {
                    Some(Item::Value(v, d)) => (v.clone(), *d),
                    _ => return Err(malformed(at, "memoize with an empty stack")),
                };
                charge(&mut spent, units(&top.0), at)?;
                memo_put(&mut memo, idx, top, at)?;
            }
            b'h' | b'j' => {
                let idx = if op == b'h' {
                    r.u8()? as usize
                } else {
                    r.u32()? as usize
                };
                let (v, d) = memo
                    .get(idx)
                    .cloned()
                    .flatten()
                    .ok_or(malformed(at, "memo get of an unset index"))?;
                let cost = units(&v);
                push(&mut stack, &mut spent, v, d, cost, at)?;
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                let v = PyValue::Global(format!("{module}.{name}"));
                push(
                    &mut stack,
                    &mut spent,
                    v,
                    1,
                    1 + (module.len() + name.len()) as u64,
                    at,
                )?;
            }
            0x93 => {
                let (name, _) = pop_value(&mut stack, at)?;
                let (module, _) = pop_value(&mut stack, at)?;
                let (PyValue::Str(module), PyValue::Str(name)) = (module, name) else {
                    return Err(malformed(at, "STACK_GLOBAL of a non-string"));
                };
                let cost = 1 + (module.len() + name.len()) as u64;
                let v = PyValue::Global(format!("{module}.{name}"));
                push(&mut stack, &mut spent, v, 1, cost, at)?;
            }
            b'R' | 0x81 => {
                let (args, ad) = pop_value(&mut stack, at)?;
                let (callable, cd) = pop_value(&mut stack, at)?;
                let PyValue::Tuple(args) = args else {
                    return Err(malformed(at, "REDUCE or NEWOBJ with arguments not a tuple"));
                };
                let v = objects::call(callable, args);
                push(&mut stack, &mut spent, v, ad.max(cd) + 1, 1, at)?;
            }
            0x92 => {
                let (_kwargs, _) = pop_value(&mut stack, at)?;
                let (args, ad) = pop_value(&mut stack, at)?;
                let (class, cd) = pop_value(&mut stack, at)?;
                let PyValue::Tuple(args) = args else {
                    return Err(malformed(at, "NEWOBJ_EX with arguments not a tuple"));
                };
                let v = objects::call(class, args);
                push(&mut stack, &mut spent, v, ad.max(cd) + 1, 1, at)?;
            }
            b'b' => {
                let (state, _) = pop_value(&mut stack, at)?;
                let (obj, d) = pop_value(&mut stack, at)?;
                push(&mut stack, &mut spent, objects::build(obj, state), d, 1, at)?;
            }
            0x96 => {
                let n = r.len64()?;
                let v = PyValue::Object(
                    "bytearray".into(),
                    vec![PyValue::Bytes(r.take(n)?.to_vec())],
                );
                push(&mut stack, &mut spent, v, 2, 2 + n as u64, at)?;
            }
            0x97 => {
                let size = next_buffer
                    .next()
                    .ok_or(malformed(at, objects::NO_BUFFER_LEFT))?;
                push(&mut stack, &mut spent, objects::buffer(size), 1, 1, at)?;
            }
            // The buffer is shown the same, writable or not.
            0x98 => {}
            b'Q' => {
                let (pid, d) = pop_value(&mut stack, at)?;
                let v = objects::persistent(pid, &mut next_buffer).map_err(|e| malformed(at, e))?;
                push(&mut stack, &mut spent, v, d, 1, at)?;
            }
            _ => return Err(DecodeError::Unsupported(op, at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<PyValue>, Vec<(&'static str, PyValue)>) {
        let args = vec![
            PyValue::Int(1),
            PyValue::Int(-5),
            PyValue::Int(70_000),
            PyValue::Int(1 << 40),
            PyValue::Int(i64::MIN),
            PyValue::Float(2.5),
            PyValue::Str("héllo".into()),
            PyValue::Bytes(vec![0, 1, 255]),
            PyValue::List(vec![PyValue::None, PyValue::Bool(true)]),
            PyValue::Tuple(vec![PyValue::Int(1)]),
            PyValue::Tuple(vec![]),
            PyValue::Tuple((0..5).map(PyValue::Int).collect()),
            PyValue::Dict(vec![("k".into(), PyValue::Bool(false))]),
        ];
        (
            args,
            vec![("price", PyValue::Float(1.0)), ("n", PyValue::Int(300))],
        )
    }

    #[test]
    fn round_trip() {
        let (args, kwargs) = sample();
        let bytes = encode_call(&args, &kwargs);
        assert_eq!(&bytes[..2], &[0x80, 3]);
        let expected = PyValue::Tuple(vec![
            PyValue::Tuple(args),
            PyValue::Dict(
                kwargs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        ]);
        assert_eq!(decode(&bytes), Ok(expected));
    }

    #[test]
    fn protocol_two_without_bytes() {
        let bytes = encode_call(&[PyValue::Int(7)], &[]);
        assert_eq!(bytes, [0x80, 2, b'K', 7, 0x85, b'}', 0x86, b'.']);
        assert_eq!(decode(&bytes).unwrap().to_string(), "((7,), {})");
    }

    #[test]
    fn decodes_python_protocol_4_with_memo_and_frame() {
        // pickle.dumps((("a", [1, 2]), {"x": None}), protocol=4)
        let data: &[u8] = b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x01a\x94]\x94(K\x01K\x02e\x86\x94}\x94\x8c\x01x\x94Ns\x86\x94.";
        assert_eq!(
            decode(data).unwrap().to_string(),
            "(('a', [1, 2]), {'x': None})"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [
            &b""[..],
            b"\x80",
            b"e.",
            b"(u.",
            b"\x8c\xff",
            b"h\x05.",
            b"\x00",
            b"K\x01\x86.",
        ] {
            assert!(decode(data).is_err(), "{data:?}");
        }
    }
}
