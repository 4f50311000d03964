//! Showing a message payload as text for `tail`: the arguments a Python handler would receive,
//! as Python would write the call's argument list, whatever the codec (decoded by
//! `shm_ring::wire::render`, which bounds its work on hostile input).

use shm_ring::wire::render::{decode_args, Undecodable};
use shm_ring::Codec;
use std::fmt::Write;

/// `payload` (tagged `codec`) as one line of at most about `max_chars` characters, or the reason
/// it cannot be decoded (the caller counts those) with the start of its bytes in hex. A raw
/// payload shows as its `bytes` literal, any other as the call's argument list.
pub fn describe(codec: u8, payload: &[u8], max_chars: usize) -> Result<String, String> {
    match decode_args(codec, payload) {
        Ok(call) if codec == Codec::Raw as u8 => Ok(truncate(call.args[0].to_string(), max_chars)),
        Ok(call) => Ok(truncate(call.to_string(), max_chars)),
        Err(Undecodable { codec, reason }) => Err(truncate(
            format!(
                "undecodable {codec} payload ({reason}): {}",
                hex(payload, max_chars)
            ),
            max_chars,
        )),
    }
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
    use shm_ring::wire::{compact, pickle};
    use shm_ring::PyValue;

    #[test]
    fn a_python_put_reads_as_its_arguments_for_every_codec() {
        let args = [
            PyValue::Int(4242),
            PyValue::Float(123.5),
            PyValue::Str("ZQXW".into()),
        ];
        let kwargs = [("size", PyValue::Int(100))];
        let compact = compact::encode_call(&args, &kwargs).unwrap();
        let pickled = pickle::encode_call(&args, &kwargs);
        for (codec, bytes) in [(Codec::Compact, compact), (Codec::Pickle, pickled)] {
            assert_eq!(
                describe(codec as u8, &bytes, 200).unwrap(),
                "(4242, 123.5, 'ZQXW', size=100)"
            );
        }
    }

    #[test]
    fn raw_is_a_bytes_literal() {
        assert_eq!(describe(0, b"a'\x00", 80).unwrap(), "b'a\\'\\x00'");
    }

    #[test]
    fn undecodable_and_unknown_codecs_are_errors_with_hex() {
        let e = describe(1, b"\x80\x02\xff", 80).unwrap_err();
        assert!(e.starts_with("undecodable pickle payload"), "{e}");
        assert!(e.ends_with("8002ff"), "{e}");
        let e = describe(7, b"\x01", 80).unwrap_err();
        assert!(e.contains("codec 7") && e.ends_with("01"), "{e}");
    }

    #[test]
    fn long_payloads_are_cut() {
        let text = describe(0, &[b'x'; 500], 40).unwrap();
        assert!(text.len() <= 43 && text.ends_with("..."), "{text}");
    }
}
