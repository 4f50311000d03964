//! Showing a message payload as text for `tail`: pickled calls as Python would write the call's
//! arguments, raw payloads as a Python `bytes` literal, anything else in hex.

use shm_ring::{pickle, Codec, PyValue};
use std::fmt::Write;

/// `payload` (tagged `codec`) as one line of at most about `max_chars` characters.
pub fn describe(codec: u8, payload: &[u8], max_chars: usize) -> String {
    let text = if codec == Codec::Pickle as u8 {
        match pickle::decode(payload) {
            Ok(value) => call_text(&value),
            Err(e) => format!("undecodable pickle ({e}): {}", hex(payload, max_chars)),
        }
    } else if codec == Codec::Raw as u8 {
        PyValue::Bytes(payload.to_vec()).to_string()
    } else {
        format!("codec {codec}: {}", hex(payload, max_chars))
    };
    truncate(text, max_chars)
}

/// An `(args, kwargs)` pair as the argument list of a call, `(1, 'a', venue='X')`; any other
/// value as itself.
fn call_text(value: &PyValue) -> String {
    let PyValue::Tuple(pair) = value else {
        return value.to_string();
    };
    let [PyValue::Tuple(args), PyValue::Dict(kwargs)] = pair.as_slice() else {
        return value.to_string();
    };
    let mut parts: Vec<String> = args.iter().map(ToString::to_string).collect();
    parts.extend(kwargs.iter().map(|(k, v)| format!("{k}={v}")));
    format!("({})", parts.join(", "))
}

fn hex(bytes: &[u8], max_chars: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(max_chars) * 2);
    for b in bytes.iter().take(max_chars / 2 + 1) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn truncate(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickled_call_reads_like_python() {
        let bytes = pickle::encode_call(
            &[PyValue::Int(1), PyValue::Str("a".into())],
            &[("venue", PyValue::Str("X".into()))],
        );
        assert_eq!(describe(1, &bytes, 200), "(1, 'a', venue='X')");
        let one = pickle::encode_call(&[PyValue::Float(1.5)], &[]);
        assert_eq!(describe(1, &one, 200), "(1.5)");
    }

    #[test]
    fn raw_is_a_bytes_literal() {
        assert_eq!(describe(0, b"hi\x00", 200), "b'hi\\x00'");
    }

    #[test]
    fn undecodable_and_unknown_codecs_are_hex() {
        let d = describe(1, &[0xde, 0xad], 200);
        assert!(d.starts_with("undecodable pickle"), "{d}");
        assert!(d.ends_with("dead"), "{d}");
        assert_eq!(describe(7, &[1, 2], 200), "codec 7: 0102");
    }

    #[test]
    fn long_payloads_are_cut() {
        let d = describe(0, &[b'x'; 1000], 20);
        assert_eq!(d.chars().count(), 23);
        assert!(d.ends_with("..."));
    }
}
