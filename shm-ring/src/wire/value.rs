//! [`PyValue`]: a Python value as the wire's Rust side writes it (pickle, compact) and as the
//! display decoder reads it back, with its Python `repr`-like text.

use std::fmt;

/// A Python value of the supported subset.
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `tuple`.
    Tuple(Vec<PyValue>),
    /// A `dict` (keys are strings when encoding; any value when decoding, shown by key repr).
    Dict(Vec<(String, PyValue)>),
    /// Decoding only: a class or function named by a pickle (`module.name`), never imported.
    Global(String),
    /// Decoding only: an object a pickle builds by calling `class` with `args` (the call is
    /// not made), shown as `class(args)`.
    Object(String, Vec<PyValue>),
    /// Decoding only: an out-of-band buffer (see [`super::buffers`]), shown by its type, its
    /// details (dtype and shape of an array, say) and its size, never by its bytes:
    /// `ndarray(uint8, (1024, 1024), 1.0 MiB)`, or `<buffer 1.0 MiB>` with no `kind`.
    Buffer {
        /// The Python type, when known (`ndarray`, `bytes`, `memoryview`...).
        kind: Option<String>,
        /// What else describes it (dtype or format, shape).
        details: Vec<String>,
        /// Its size in bytes.
        size: u64,
    },
}

fn write_seq(f: &mut fmt::Formatter<'_>, xs: &[PyValue]) -> fmt::Result {
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    Ok(())
}

/// Python `repr`-like text.
impl fmt::Display for PyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::None => f.write_str("None"),
            PyValue::Bool(true) => f.write_str("True"),
            PyValue::Bool(false) => f.write_str("False"),
            PyValue::Int(i) => write!(f, "{i}"),
            PyValue::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 => {
                write!(f, "{x:.1}")
            }
            PyValue::Float(x) if x.is_nan() => f.write_str("nan"),
            PyValue::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "inf" } else { "-inf" })
            }
            PyValue::Float(x) => write!(f, "{x}"),
            PyValue::Str(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            PyValue::Bytes(b) => {
                f.write_str("b'")?;
                for &c in b {
                    match c {
                        b'\\' => f.write_str("\\\\")?,
                        b'\'' => f.write_str("\\'")?,
                        b'\n' => f.write_str("\\n")?,
                        0x20..=0x7e => write!(f, "{}", c as char)?,
                        _ => write!(f, "\\x{c:02x}")?,
                    }
                }
                f.write_str("'")
            }
            PyValue::List(xs) => {
                f.write_str("[")?;
                write_seq(f, xs)?;
                f.write_str("]")
            }
            PyValue::Tuple(xs) => {
                f.write_str("(")?;
                write_seq(f, xs)?;
                f.write_str(if xs.len() == 1 { ",)" } else { ")" })
            }
            PyValue::Dict(kv) => {
                f.write_str("{")?;
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "'{k}': {v}")?;
                }
                f.write_str("}")
            }
            PyValue::Global(name) => f.write_str(name),
            PyValue::Object(class, args) => {
                write!(f, "{class}(")?;
                write_seq(f, args)?;
                f.write_str(")")
            }
            PyValue::Buffer {
                kind: None, size, ..
            } => write!(f, "<buffer {}>", human_size(*size)),
            PyValue::Buffer {
                kind: Some(kind),
                details,
                size,
            } => {
                write!(f, "{kind}(")?;
                for d in details {
                    write!(f, "{d}, ")?;
                }
                write!(f, "{})", human_size(*size))
            }
        }
    }
}

/// `100 B`, `64.0 KiB`, `1.0 MiB`, `2.5 GiB`.
pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut x = n as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit < UNITS.len() - 1 {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}
