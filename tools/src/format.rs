//! Number formatting shared by the readable (non-JSON) outputs: sizes, ages, percentages,
//! rates.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `n` with the noun that agrees: `1 process`, `3 processes`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A byte count in binary units: `512 B`, `4.0 KiB`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A block size: in the largest binary unit that divides it exactly (`256 B`, `4 KiB`,
/// `1 MiB`), else in bytes, so that neighbouring size classes never read the same.
pub fn block_size(n: u64) -> String {
    match n {
        0 => "0 B".into(),
        n if n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n % 1024 == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// A duration in seconds, coarsely: `42s`, `7m`, `3h`, `2d`.
pub fn age_secs(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The time from `then_ns` to `now_ns` (nanoseconds since the epoch), coarsely as
/// [`age_secs`]; `-` for 0 (never set).
pub fn age_ns(then_ns: u64, now_ns: u64) -> String {
    if then_ns == 0 {
        return "-".into();
    }
    age_secs(now_ns.saturating_sub(then_ns) / 1_000_000_000)
}

/// How long ago the instant `then_ns` (nanoseconds since the epoch) was, from `now_ns`;
/// `-` for 0 (never set).
pub fn ago(then_ns: u64, now_ns: u64) -> String {
    if then_ns == 0 {
        return "-".into();
    }
    let d = now_ns.saturating_sub(then_ns);
    if d < 10_000_000_000 {
        format!("{:.1}s ago", d as f64 / 1e9)
    } else {
        format!("{} ago", age_secs(d / 1_000_000_000))
    }
}

/// `part` as a percentage of `whole` with one decimal (`0.0%` when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// An optional number, `-` when absent.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A rate for people: `0`, `12.5`, `1.2k`, `3.4M` per second; `-` when there is none.
pub fn rate(per_s: Option<f64>, unit: &str) -> String {
    let Some(r) = per_s else {
        return "-".into();
    };
    let (value, prefix) = match r {
        r if r >= 1e9 => (r / 1e9, "G"),
        r if r >= 1e6 => (r / 1e6, "M"),
        r if r >= 1e3 => (r / 1e3, "k"),
        r => (r, ""),
    };
    let digits = if prefix.is_empty() && value >= 100.0 || value == 0.0 {
        0
    } else {
        1
    };
    format!("{value:.digits$}{prefix}{unit}/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(block_size(256), "256 B");
        assert_eq!(block_size(16384), "16 KiB");
        assert_eq!(block_size(1 << 20), "1 MiB");
        assert_eq!(block_size((1 << 20) + 512), "1049088 B");
        assert_eq!(age_secs(59), "59s");
        assert_eq!(age_secs(600), "10m");
        assert_eq!(age_secs(3 * 86_400), "3d");
        assert_eq!(ago(0, 5), "-");
        assert_eq!(ago(1_000_000_000, 2_500_000_000), "1.5s ago");
        assert_eq!(percent(1, 4), "25.0%");
        assert_eq!(percent(1, 0), "0.0%");
        assert_eq!(opt(None::<u64>), "-");
    }

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(rate(None, ""), "-");
        assert_eq!(rate(Some(0.0), ""), "0/s");
        assert_eq!(rate(Some(12.5), ""), "12.5/s");
        assert_eq!(rate(Some(250.0), ""), "250/s");
        assert_eq!(rate(Some(1234.0), "B"), "1.2kB/s");
        assert_eq!(rate(Some(3_400_000.0), ""), "3.4M/s");
    }
}
