//! Decoding any payload for display, as the command line shows it: the call's arguments as
//! Python would write them, `(4242, 123.5, 'ZQXW', size=100)`, whatever the codec.
//!
//! Everything here reads bytes that any process may have written, so every decoder is bounded:
//! the compact reader refuses nesting and checks every length; the pickle decoder refuses values
//! nested deeper than [`super::pickle::MAX_DEPTH`] or costing more than
//! [`super::pickle::MAX_UNITS`]. A payload that cannot be decoded is an [`Undecodable`] error
//! naming the codec and the reason, never a panic.

use super::pickle::{self, PyValue};
use super::{buffers, compact, Codec};

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
/// payload is one `bytes` argument; a pickle of `(args, kwargs)` (its buffers in band or out
/// of band) or a compact call gives its arguments; a pickle of any other value is that one
/// argument. Out-of-band buffers show as their type, shape and size, not their bytes.
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
        Some(Codec::Pickle) => pickle::decode(payload)
            .map(call_of)
            .map_err(|e| fail("pickle", e.to_string())),
        Some(Codec::PickleBuffers) => {
            let layout = buffers::parse(payload).map_err(|e| fail("pickle-buffers", e.0.into()))?;
            let sizes: Vec<u64> = layout.buffers.iter().map(|r| r.len() as u64).collect();
            pickle::decode_with_buffers(&payload[layout.pickle], &sizes)
                .map(call_of)
                .map_err(|e| fail("pickle-buffers", e.to_string()))
        }
        None => Err(fail(&format!("codec {codec}"), "unknown codec id".into())),
    }
}

/// The call a pickled value stands for: a pickle of `(args, kwargs)` gives its arguments; any
/// other value is the one argument.
fn call_of(value: PyValue) -> CallArgs {
    match value {
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

    /// A pickle as the Python binding writes it (numpy 2): `((zeros((1024, 1024), uint8),
    /// arange(12, dtype='>i4').reshape(3, 4)[:, ::2], memoryview(bytes(100)).cast('B', (10,
    /// 10)), 7), {'blob': bytes(65536), 'f': ones(3)})`, its buffers out of band.
    const ARRAYS_PICKLE: &str = "8005951701000000000000288c136e756d70792e5f636f72652e6e756d65\
        726963948c0b5f66726f6d62756666657294939428978c056e756d7079948c0564747970659493948c0275\
        3194898887945294284b038c017c944e4e4e4affffffff4affffffff4b007494624d00044d000486948c01\
        4394749452948c076e6461727261799468058c02693494898887945294284b038c013e944e4e4e4affffff\
        ff4affffffff4b007494624b034b0286948794518c0a6d656d6f727976696577948c0142944b0a4b0a8694\
        8794514b0774947d94288c04626c6f62948c056279746573948594518c0166946802289768058c02663894\
        898887945294284b038c013c944e4e4e4affffffff4affffffff4b007494624b038594680c749452947586\
        942e";
    const ARRAYS_SIZES: [usize; 5] = [1 << 20, 24, 100, 65536, 24];

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn buffers_payload(topic_len: usize, pickle: &[u8], sizes: &[usize]) -> Vec<u8> {
        let layout = buffers::plan(topic_len, pickle.len(), sizes).unwrap();
        let mut out = vec![0x5a; layout.len];
        buffers::write_header(&layout, &mut out);
        out[layout.pickle.clone()].copy_from_slice(pickle);
        out
    }

    #[test]
    fn out_of_band_buffers_show_as_type_shape_and_size() {
        let payload = buffers_payload(9, &hex(ARRAYS_PICKLE), &ARRAYS_SIZES);
        let call = decode_args(Codec::PickleBuffers as u8, &payload).unwrap();
        assert_eq!(
            call.to_string(),
            "(ndarray(uint8, (1024, 1024), 1.0 MiB), ndarray(>i4, (3, 2), 24 B), \
             memoryview(B, (10, 10), 100 B), 7, blob=bytes(64.0 KiB), \
             f=ndarray(float64, (3,), 24 B))"
        );
        // An unknown object around a buffer shows its class, and the buffer its size alone.
        let pickle = [
            &[0x80, 5, b'c'][..],
            b"pandas.core\nFrame\n",
            &[0x97, 0x85, b'R', 0x85, b'}', 0x86, b'.'],
        ]
        .concat();
        let payload = buffers_payload(0, &pickle, &[3 << 20]);
        let call = decode_args(Codec::PickleBuffers as u8, &payload).unwrap();
        assert_eq!(call.to_string(), "(pandas.core.Frame(<buffer 3.0 MiB>))");
    }

    #[test]
    fn crafted_buffer_payloads_are_refused_not_crashed_on() {
        let pickle = hex(ARRAYS_PICKLE);
        // Fewer buffers carried than the pickle refers to.
        let e = decode_args(
            Codec::PickleBuffers as u8,
            &buffers_payload(0, &pickle, &ARRAYS_SIZES[..2]),
        )
        .unwrap_err();
        assert!(e.reason.contains("more buffers"), "{e}");
        // A header pointing outside the payload.
        let mut bad = buffers_payload(0, &pickle, &ARRAYS_SIZES);
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = decode_args(Codec::PickleBuffers as u8, &bad).unwrap_err();
        assert_eq!(e.codec, "pickle-buffers");
        assert!(e.reason.contains("past the payload"), "{e}");
        // An unknown persistent id.
        let pid = [&[0x80, 5][..], b"\x8c\x03abc\x85Q\x85}\x86."].concat();
        let e =
            decode_args(Codec::PickleBuffers as u8, &buffers_payload(0, &pid, &[])).unwrap_err();
        assert!(e.reason.contains("persistent"), "{e}");
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
