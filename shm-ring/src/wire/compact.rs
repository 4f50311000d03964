//! The compact codec (tag [`crate::Codec::Compact`]): a call's positional and keyword arguments
//! when they are all primitive values, in a flat little-endian form that is cheaper to write and
//! read than pickle on both the Python and the Rust side.
//!
//! Layout: `u16 nargs, u16 nkwargs`, then `nargs` values, then `nkwargs` pairs of
//! (`u16 key length`, key UTF-8, value). A value is a one-byte tag followed by its body:
//! `0` None, `1` False, `2` True, `3` int (i64), `4` float (f64), `5` str (`u32` length + UTF-8),
//! `6` bytes (`u32` length + bytes), `7` tuple / `8` list (`u32` count + that many values, which
//! are never themselves tuples or lists). The writer and the reader here are the only code that
//! knows this layout; the Python binding drives them.

use crate::wire::pickle::PyValue;

const T_NONE: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STR: u8 = 5;
const T_BYTES: u8 = 6;
const T_TUPLE: u8 = 7;
const T_LIST: u8 = 8;

/// Why a compact payload could not be read.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("compact payload: {0}")]
pub struct CompactError(pub &'static str);

/// Appends a compact payload to a byte buffer. Call [`CompactWriter::begin`] once, then write
/// exactly the announced positional values, then the announced keyword pairs.
pub struct CompactWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> CompactWriter<'a> {
    /// Starts a payload of `nargs` positional and `nkwargs` keyword arguments; `None` if either
    /// count does not fit the format (65,535 at most).
    pub fn begin(buf: &'a mut Vec<u8>, nargs: usize, nkwargs: usize) -> Option<CompactWriter<'a>> {
        let nargs = u16::try_from(nargs).ok()?;
        let nkwargs = u16::try_from(nkwargs).ok()?;
        buf.extend_from_slice(&nargs.to_le_bytes());
        buf.extend_from_slice(&nkwargs.to_le_bytes());
        Some(CompactWriter { buf })
    }

    /// `None`.
    pub fn none(&mut self) {
        self.buf.push(T_NONE);
    }

    /// A bool.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(if v { T_TRUE } else { T_FALSE });
    }

    /// An int.
    pub fn int(&mut self, v: i64) {
        self.buf.push(T_INT);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A float.
    pub fn float(&mut self, v: f64) {
        self.buf.push(T_FLOAT);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A str; false (nothing written) if it is 4 GiB or longer.
    pub fn str(&mut self, v: &str) -> bool {
        self.sized(T_STR, v.as_bytes())
    }

    /// A bytes value; false (nothing written) if it is 4 GiB or longer.
    pub fn bytes(&mut self, v: &[u8]) -> bool {
        self.sized(T_BYTES, v)
    }

    /// Starts a tuple (`list == false`) or list of `n` scalar values; false if `n` is too large.
    pub fn sequence(&mut self, list: bool, n: usize) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        self.buf.push(if list { T_LIST } else { T_TUPLE });
        self.buf.extend_from_slice(&n.to_le_bytes());
        true
    }

    /// A keyword's name (before its value); false if it is 64 KiB or longer.
    pub fn key(&mut self, name: &str) -> bool {
        let Ok(n) = u16::try_from(name.len()) else {
            return false;
        };
        self.buf.extend_from_slice(&n.to_le_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        true
    }

    fn sized(&mut self, tag: u8, v: &[u8]) -> bool {
        let Ok(n) = u32::try_from(v.len()) else {
            return false;
        };
        self.buf.push(tag);
        self.buf.extend_from_slice(&n.to_le_bytes());
        self.buf.extend_from_slice(v);
        true
    }
}

/// One value read from a compact payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(&'a str),
    /// A bytes value.
    Bytes(&'a [u8]),
    /// A tuple of this many scalar values, which follow.
    Tuple(u32),
    /// A list of this many scalar values, which follow.
    List(u32),
}

/// Reads a compact payload. Every length is checked against the bytes that are left, so a
/// truncated or corrupt payload gives an error, never a panic.
pub struct CompactReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Scalars still owed to the tuple or list being read.
    in_seq: u32,
}

impl<'a> CompactReader<'a> {
    /// Reads the header: returns the reader and the positional and keyword counts.
    pub fn new(bytes: &'a [u8]) -> Result<(CompactReader<'a>, usize, usize), CompactError> {
        let mut r = CompactReader {
            bytes,
            pos: 0,
            in_seq: 0,
        };
        let nargs = u16::from_le_bytes(r.take::<2>()?) as usize;
        let nkwargs = u16::from_le_bytes(r.take::<2>()?) as usize;
        Ok((r, nargs, nkwargs))
    }

    /// The next value.
    pub fn value(&mut self) -> Result<Item<'a>, CompactError> {
        let [tag] = self.take::<1>()?;
        let nested = self.in_seq > 0;
        if nested {
            self.in_seq -= 1;
        }
        Ok(match tag {
            T_NONE => Item::None,
            T_FALSE => Item::Bool(false),
            T_TRUE => Item::Bool(true),
            T_INT => Item::Int(i64::from_le_bytes(self.take::<8>()?)),
            T_FLOAT => Item::Float(f64::from_le_bytes(self.take::<8>()?)),
            T_STR => {
                let b = self.sized()?;
                Item::Str(std::str::from_utf8(b).map_err(|_| CompactError("str is not UTF-8"))?)
            }
            T_BYTES => Item::Bytes(self.sized()?),
            T_TUPLE | T_LIST if nested => return Err(CompactError("nested sequence")),
            T_TUPLE | T_LIST => {
                let n = u32::from_le_bytes(self.take::<4>()?);
                // Each element takes at least one byte: a count beyond what is left is corrupt.
                if n as usize > self.bytes.len() - self.pos {
                    return Err(CompactError("sequence count exceeds the payload"));
                }
                self.in_seq = n;
                if tag == T_TUPLE {
                    Item::Tuple(n)
                } else {
                    Item::List(n)
                }
            }
            _ => return Err(CompactError("unknown value tag")),
        })
    }

    /// The next keyword's name.
    pub fn key(&mut self) -> Result<&'a str, CompactError> {
        let n = u16::from_le_bytes(self.take::<2>()?) as usize;
        let b = self.slice(n)?;
        std::str::from_utf8(b).map_err(|_| CompactError("keyword is not UTF-8"))
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.pos == self.bytes.len() && self.in_seq == 0
    }

    fn sized(&mut self) -> Result<&'a [u8], CompactError> {
        let n = u32::from_le_bytes(self.take::<4>()?) as usize;
        self.slice(n)
    }

    fn slice(&mut self, n: usize) -> Result<&'a [u8], CompactError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(CompactError("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CompactError> {
        let s = self.slice(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
}

fn write_scalar(w: &mut CompactWriter<'_>, v: &PyValue) -> bool {
    match v {
        PyValue::None => w.none(),
        PyValue::Bool(b) => w.bool(*b),
        PyValue::Int(i) => w.int(*i),
        PyValue::Float(f) => w.float(*f),
        PyValue::Str(s) => return w.str(s),
        PyValue::Bytes(b) => return w.bytes(b),
        _ => return false,
    }
    true
}

fn write_value(w: &mut CompactWriter<'_>, v: &PyValue) -> bool {
    match v {
        PyValue::Tuple(items) | PyValue::List(items) => {
            w.sequence(matches!(v, PyValue::List(_)), items.len())
                && items.iter().all(|i| write_scalar(w, i))
        }
        other => write_scalar(w, other),
    }
}

/// Encodes a call from Rust values; `None` when a value has no compact form (a dict, or a
/// tuple or list holding a tuple, list or dict): use [`crate::wire::pickle::encode_call`] then.
pub fn encode_call(args: &[PyValue], kwargs: &[(&str, PyValue)]) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = CompactWriter::begin(&mut buf, args.len(), kwargs.len())?;
    for a in args {
        if !write_value(&mut w, a) {
            return None;
        }
    }
    for (k, v) in kwargs {
        if !(w.key(k) && write_value(&mut w, v)) {
            return None;
        }
    }
    Some(buf)
}

fn read_value(r: &mut CompactReader<'_>) -> Result<PyValue, CompactError> {
    Ok(match r.value()? {
        Item::None => PyValue::None,
        Item::Bool(b) => PyValue::Bool(b),
        Item::Int(i) => PyValue::Int(i),
        Item::Float(f) => PyValue::Float(f),
        Item::Str(s) => PyValue::Str(s.to_owned()),
        Item::Bytes(b) => PyValue::Bytes(b.to_vec()),
        Item::Tuple(n) => PyValue::Tuple(read_items(r, n)?),
        Item::List(n) => PyValue::List(read_items(r, n)?),
    })
}

fn read_items(r: &mut CompactReader<'_>, n: u32) -> Result<Vec<PyValue>, CompactError> {
    (0..n).map(|_| read_value(r)).collect()
}

/// A decoded call: positional arguments and keyword arguments.
pub type Call = (Vec<PyValue>, Vec<(String, PyValue)>);

/// Decodes a compact payload into Rust values (for tools and Rust subscribers).
pub fn decode_call(bytes: &[u8]) -> Result<Call, CompactError> {
    let (mut r, nargs, nkwargs) = CompactReader::new(bytes)?;
    let args = (0..nargs)
        .map(|_| read_value(&mut r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut kwargs = Vec::with_capacity(nkwargs.min(bytes.len()));
    for _ in 0..nkwargs {
        let k = r.key()?.to_owned();
        kwargs.push((k, read_value(&mut r)?));
    }
    if !r.is_done() {
        return Err(CompactError("trailing bytes"));
    }
    Ok((args, kwargs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let args = [
            PyValue::Int(-7),
            PyValue::Float(123.45),
            PyValue::Str("AAPL".into()),
            PyValue::None,
            PyValue::Bool(true),
            PyValue::Bytes(vec![0, 255]),
            PyValue::List(vec![PyValue::Int(1), PyValue::Str("x".into())]),
            PyValue::Tuple(vec![]),
        ];
        let kwargs = [("size", PyValue::Int(100)), ("ok", PyValue::Bool(false))];
        let bytes = encode_call(&args, &kwargs).unwrap();
        let (a, k) = decode_call(&bytes).unwrap();
        assert_eq!(format!("{a:?}"), format!("{:?}", args.to_vec()));
        assert_eq!(k.len(), 2);
        assert_eq!((k[0].0.as_str(), &k[0].1), ("size", &PyValue::Int(100)));
    }

    #[test]
    fn values_without_a_compact_form_are_refused() {
        let nested = PyValue::List(vec![PyValue::List(vec![])]);
        assert!(encode_call(&[nested], &[]).is_none());
        assert!(encode_call(&[PyValue::Dict(vec![])], &[]).is_none());
    }

    #[test]
    fn truncated_and_garbage_payloads_are_errors() {
        let bytes =
            encode_call(&[PyValue::Str("hello".into())], &[("k", PyValue::Int(1))]).unwrap();
        for n in 0..bytes.len() {
            assert!(decode_call(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        assert!(decode_call(&[1, 0, 0, 0, 99]).is_err());
        assert!(decode_call(&[1, 0, 0, 0, 7, 255, 255, 255, 255]).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_call(&extra).is_err());
    }
}
