//! Decoding any payload for display, as the command line shows it: the call's arguments as
//! Python would write them, `(4242, 123.5, 'ZQXW', size=100)`, whatever the codec.
//!
//! Everything here reads bytes that any process may have written, so every decoder is bounded:
//! the compact reader refuses nesting and checks every length; the pickle decoder refuses values
//! nested deeper than [`super::pickle::MAX_DEPTH`] or costing more than
//! [`super::pickle::MAX_UNITS`]. A payload that cannot be decoded is an [`Undecodable`] error
//! naming the codec and the reason, never a panic.

use super::pickle::{self, PyValue};
use super::{compact, Codec};

/// Why a payload could not be shown as arguments.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("undecodable {codec} payload: {reason}")]
pub struct Undecodable {
    /// The codec's name, or `codec N` for an id that is not ours.
    pub codec: String,
    /// What was wrong.
    pub reason: String,
}

/// The arguments of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallArgs {
    /// Positional arguments.
    pub args: Vec<PyValue>,
    /// Keyword arguments, in order.
    pub kwargs: Vec<(String, PyValue)>,
}

impl std::fmt::Display for CallArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(")?;
        let mut first = true;
        for a in &self.args {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{a}")?;
        }
        for (k, v) in &self.kwargs {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        f.write_str(")")
    }
}

/// Decodes `payload`, tagged `codec`, into the arguments a Python handler would receive: a raw
/// payload is one `bytes` argument; a pickle of `(args, kwargs)` or a compact call gives its
/// arguments; a pickle of any other value is that one argument.
pub fn decode_args(codec: u8, payload: &[u8]) -> Result<CallArgs, Undecodable> {
    let fail = |name: &str, reason: String| Undecodable {
        codec: name.to_string(),
        reason,
    };
    match Codec::from_id(codec) {
        Some(Codec::Raw) => Ok(CallArgs {
            args: vec![PyValue::Bytes(payload.to_vec())],
            kwargs: Vec::new(),
        }),
        Some(Codec::Compact) => compact::decode_call(payload)
            .map(|(args, kwargs)| CallArgs { args, kwargs })
            .map_err(|e| fail("compact", e.0.to_string())),
        Some(Codec::Pickle) => {
            let value = pickle::decode(payload).map_err(|e| fail("pickle", e.to_string()))?;
            Ok(match value {
                PyValue::Tuple(pair) if is_call(&pair) => {
                    let mut it = pair.into_iter();
                    match (it.next(), it.next()) {
                        (Some(PyValue::Tuple(args)), Some(PyValue::Dict(kwargs))) => {
                            CallArgs { args, kwargs }
                        }
                        _ => unreachable!("checked by is_call"),
                    }
                }
                other => CallArgs {
                    args: vec![other],
                    kwargs: Vec::new(),
                },
            })
        }
        Some(Codec::PickleBuffers) => Err(fail("pickle-buffers", "not yet".into())),
        None => Err(fail(&format!("codec {codec}"), "unknown codec id".into())),
    }
}

fn is_call(pair: &[PyValue]) -> bool {
    matches!(pair, [PyValue::Tuple(_), PyValue::Dict(_)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w2_args() -> (Vec<PyValue>, Vec<(&'static str, PyValue)>) {
        (
            vec![
                PyValue::Int(4242),
                PyValue::Float(123.5),
                PyValue::Str("ZQXW".into()),
            ],
            vec![("size", PyValue::Int(100))],
        )
    }

    #[test]
    fn every_codec_reads_as_the_call() {
        let (args, kwargs) = w2_args();
        let compact = compact::encode_call(&args, &kwargs).unwrap();
        let pickled = pickle::encode_call(&args, &kwargs);
        for (codec, bytes) in [(Codec::Compact, compact), (Codec::Pickle, pickled)] {
            let call = decode_args(codec as u8, &bytes).unwrap();
            assert_eq!(call.to_string(), "(4242, 123.5, 'ZQXW', size=100)");
        }
        let raw = decode_args(Codec::Raw as u8, b"ab").unwrap();
        assert_eq!(raw.to_string(), "(b'ab')");
    }

    #[test]
    fn crafted_payloads_are_refused_not_crashed_on() {
        // `)` then a million TUPLE1: a tuple nested a million deep.
        let mut deep = vec![0x80, 2, b')'];
        deep.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        deep.push(b'.');
        let e = decode_args(Codec::Pickle as u8, &deep).unwrap_err();
        assert!(e.reason.contains("nested too deeply"), "{e}");
        // A string memoized, then read back and doubled until memory would run out.
        let mut grow = vec![0x80, 2, 0x8c, 64];
        grow.extend([b'x'; 64]);
        grow.extend([0x94]);
        for i in 0..40u8 {
            // MEMO GET i, MEMO GET i, TUPLE2, MEMOIZE (as i + 1)
            grow.extend([b'h', i, b'h', i, 0x86, 0x94]);
        }
        grow.push(b'.');
        let e = decode_args(Codec::Pickle as u8, &grow).unwrap_err();
        assert!(
            e.reason.contains("too many values") || e.reason.contains("nested"),
            "{e}"
        );
        let e = decode_args(9, b"x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "undecodable codec 9 payload: unknown codec id"
        );
    }
}
