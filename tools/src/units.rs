//! Sizes and durations as an operator types them: `64MiB`, `2GiB`, `4096` (bytes); `60s`,
//! `1.5m`, `500ms`, `60` (seconds). Used as clap value parsers, so a bad value is a usage error
//! that says what is accepted.

const SIZE_UNITS: [(&str, u64); 9] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
    ("T", 1 << 40),
    ("B", 1),
];

/// A size in bytes: a whole or decimal number with an optional binary unit (`KiB`, `MiB`,
/// `GiB`, `TiB`, or `K`, `M`, `G`, `T`; `B` or none: bytes), case-insensitive, spaces allowed
/// before the unit. The result must be a whole number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a size: write a number of bytes, or a number with KiB, MiB or GiB \
             (e.g. 4096, 64MiB, 1.5GiB)"
        )
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let scale = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(unit))
            .map(|&(_, s)| s)
            .ok_or_else(bad)?
    };
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(scale)
            .ok_or_else(|| format!("{text:?} is too large"));
    }
    let n: f64 = number.parse().map_err(|_| bad())?;
    let bytes = n * scale as f64;
    if !bytes.is_finite() || bytes.fract() != 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!(
            "{text:?} is not a whole number of bytes ({bytes} bytes)"
        ));
    }
    Ok(bytes as u64)
}

/// A duration in seconds: a number with an optional unit (`ms`, `s`, `m`, `h`; none: seconds).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .iter()
        .find_map(|&(u, s)| t.strip_suffix(u).map(|n| (n.trim(), s)))
        .unwrap_or((t, 1.0));
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n * scale),
        _ => Err(format!(
            "{text:?} is not a duration: write seconds, or a number with ms, s, m or h (e.g. 60s, \
             10m, 500ms)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5kib"), Ok(1536));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in ["", "MiB", "64 MB", "-1", "1.5", "x64", "1e3"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("64 MB").unwrap_err().contains("64MiB"));
        assert!(parse_size("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("60"), Ok(60.0));
        assert_eq!(parse_seconds("60s"), Ok(60.0));
        assert_eq!(parse_seconds("1.5m"), Ok(90.0));
        assert_eq!(parse_seconds("500ms"), Ok(0.5));
        assert_eq!(parse_seconds("2h"), Ok(7200.0));
        for bad in ["", "s", "-1s", "ten", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
