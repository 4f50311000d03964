//! What the display decoder ([`super::pickle::decode_with_buffers`]) shows for the objects a
//! pickle builds: numpy arrays (numpy's own out-of-band reconstruction, and the persistent ids
//! of the Python binding's `oob.rs`) as `ndarray(dtype, shape, size)`, `bytes`, `bytearray`
//! and `memoryview` buffers by their size, any other buffer as `<buffer size>`, anything else
//! as its class and arguments. Nothing is imported or run: globals are compared as names.

use super::value::PyValue;

/// numpy's function rebuilding an array from an out-of-band buffer: `(buffer, dtype, shape,
/// order)`, under its numpy 1 and numpy 2 module names.
const FROMBUFFER: [&str; 2] = [
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
];
/// numpy's dtype class: `dtype(code, align, copy)`, then its state (byte order second).
const DTYPE: &str = "numpy.dtype";

/// An out-of-band buffer of `size` bytes, of no known type yet.
pub(crate) fn buffer(size: u64) -> PyValue {
    PyValue::Buffer {
        kind: None,
        details: Vec::new(),
        size,
    }
}

/// What calling `callable` with `args` builds (REDUCE, NEWOBJ).
pub(crate) fn call(callable: PyValue, args: Vec<PyValue>) -> PyValue {
    let name = match callable {
        PyValue::Global(name) => name,
        other => format!("<{other}>"),
    };
    if FROMBUFFER.contains(&name.as_str()) {
        if let [PyValue::Buffer { size, .. }, dtype, PyValue::Tuple(shape), _order] = &args[..] {
            return array(*size, dtype, shape);
        }
    }
    PyValue::Object(name, args)
}

/// An object after BUILD set its `state`: a numpy dtype keeps its byte order (`>` shown, the
/// native and "not applicable" orders not); anything else is shown without its state.
pub(crate) fn build(obj: PyValue, state: PyValue) -> PyValue {
    match (obj, state) {
        (PyValue::Object(class, mut args), PyValue::Tuple(state)) if class == DTYPE => {
            if let (Some(PyValue::Str(code)), Some(PyValue::Str(order))) =
                (args.first_mut(), state.get(1))
            {
                if order == ">" && !code.starts_with('>') {
                    code.insert(0, '>');
                }
            }
            PyValue::Object(class, args)
        }
        (obj, _) => obj,
    }
}

/// What a persistent id of `oob.rs` stands for, taking its buffer's size from `buffers`:
/// `("bytes",)`, `("bytearray",)`, `("memoryview", format, shape)`, `("ndarray", dtype,
/// shape)`. An error for any other id, or when no buffer is left.
pub(crate) fn persistent(
    pid: PyValue,
    buffers: &mut impl Iterator<Item = u64>,
) -> Result<PyValue, &'static str> {
    const UNKNOWN: &str = "unknown persistent id";
    let PyValue::Tuple(items) = pid else {
        return Err(UNKNOWN);
    };
    let Some((PyValue::Str(tag), rest)) = items.split_first() else {
        return Err(UNKNOWN);
    };
    let (kind, details) = match (tag.as_str(), rest) {
        ("bytes" | "bytearray", []) => (tag.clone(), Vec::new()),
        ("memoryview", [PyValue::Str(format), PyValue::Tuple(shape)]) => {
            (tag.clone(), vec![format.clone(), shape_text(shape)])
        }
        ("ndarray", [dtype, PyValue::Tuple(shape)]) => {
            (tag.clone(), vec![dtype_name(dtype), shape_text(shape)])
        }
        _ => return Err(UNKNOWN),
    };
    let size = buffers.next().ok_or(NO_BUFFER_LEFT)?;
    Ok(PyValue::Buffer {
        kind: Some(kind),
        details,
        size,
    })
}

/// The error of a pickle that refers to more out-of-band buffers than its payload carries.
pub(crate) const NO_BUFFER_LEFT: &str = "more buffers referred to than carried";

fn array(size: u64, dtype: &PyValue, shape: &[PyValue]) -> PyValue {
    PyValue::Buffer {
        kind: Some("ndarray".into()),
        details: vec![dtype_name(dtype), shape_text(shape)],
        size,
    }
}

/// A dtype as numpy names it (`uint8`, `float64`, `>i4` for big-endian, the code otherwise).
fn dtype_name(dtype: &PyValue) -> String {
    let code = match dtype {
        PyValue::Object(class, args) if class == DTYPE => match args.first() {
            Some(PyValue::Str(code)) => code.as_str(),
            _ => return "?".into(),
        },
        other => return other.to_string(),
    };
    let (kind, bytes) = code.split_at(code.len().min(1));
    let bits = bytes.parse::<u32>().ok().map(|n| n * 8);
    match (kind, bits) {
        ("b", Some(8)) => "bool".into(),
        ("i", Some(b)) => format!("int{b}"),
        ("u", Some(b)) => format!("uint{b}"),
        ("f", Some(b)) => format!("float{b}"),
        ("c", Some(b)) => format!("complex{b}"),
        _ => code.to_string(),
    }
}

fn shape_text(shape: &[PyValue]) -> String {
    PyValue::Tuple(shape.to_vec()).to_string()
}
