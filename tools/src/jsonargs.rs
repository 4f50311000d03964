//! Turning JSON given on the command line into the Python values a handler receives.
//!
//! `publish NAME TOPIC '[1, "a"]'` calls handlers as `handler(1, 'a')`; a JSON value that is not
//! an array is one argument (`'{"px": 1.5}'` -> `handler({'px': 1.5})`); `--kwargs '{"k": 1}'`
//! gives keyword arguments. Inside values, arrays become lists and objects dicts.

use shm_ring::PyValue;

/// Why a JSON argument could not be used.
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum ArgsError {
    /// The text is not JSON.
    #[error("{what} is not valid JSON: {reason}")]
    Syntax {
        /// Which argument.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A number Python would read as an int, but too large for the 64-bit ints the bus encodes.
    #[error("{what}: integer {value} does not fit in 64 bits")]
    IntRange {
        /// Which argument.
        what: &'static str,
        /// The number as written.
        value: String,
    },
    /// `--kwargs` was not a JSON object.
    #[error("--kwargs must be a JSON object such as '{{\"qty\": 5}}', not {found}")]
    KwargsNotObject {
        /// The kind of JSON value given.
        found: &'static str,
    },
}

/// One JSON value as a Python value: null -> None, true/false -> bool, integers -> int, other
/// numbers -> float, strings -> str, arrays -> list, objects -> dict.
pub fn to_py(v: &serde_json::Value, what: &'static str) -> Result<PyValue, ArgsError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => PyValue::None,
        J::Bool(b) => PyValue::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                PyValue::Int(i)
            } else if n.is_u64() {
                return Err(ArgsError::IntRange {
                    what,
                    value: n.to_string(),
                });
            } else {
                PyValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => PyValue::Str(s.clone()),
        J::Array(xs) => PyValue::List(
            xs.iter()
                .map(|x| to_py(x, what))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(kv) => PyValue::Dict(
            kv.iter()
                .map(|(k, x)| Ok((k.clone(), to_py(x, what)?)))
                .collect::<Result<_, ArgsError>>()?,
        ),
    })
}

fn parse(text: &str, what: &'static str) -> Result<serde_json::Value, ArgsError> {
    serde_json::from_str(text).map_err(|e| ArgsError::Syntax {
        what,
        reason: e.to_string(),
    })
}

fn kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value as J;
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

/// Positional arguments from `ARGS_JSON`: the elements of a JSON array, or the one value given.
pub fn positional(text: &str) -> Result<Vec<PyValue>, ArgsError> {
    const WHAT: &str = "ARGS_JSON";
    match parse(text, WHAT)? {
        serde_json::Value::Array(xs) => xs.iter().map(|x| to_py(x, WHAT)).collect(),
        v => Ok(vec![to_py(&v, WHAT)?]),
    }
}

/// Keyword arguments from `--kwargs`, which must be a JSON object.
pub fn keywords(text: &str) -> Result<Vec<(String, PyValue)>, ArgsError> {
    const WHAT: &str = "--kwargs";
    match parse(text, WHAT)? {
        serde_json::Value::Object(kv) => kv
            .iter()
            .map(|(k, v)| Ok((k.clone(), to_py(v, WHAT)?)))
            .collect(),
        v => Err(ArgsError::KwargsNotObject { found: kind(&v) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PyValue as P;

    #[test]
    fn array_is_positional_arguments() {
        assert_eq!(
            positional(r#"[1, -2, 1.5, "a", true, null]"#).unwrap(),
            vec![
                P::Int(1),
                P::Int(-2),
                P::Float(1.5),
                P::Str("a".into()),
                P::Bool(true),
                P::None
            ]
        );
        assert_eq!(positional("[]").unwrap(), vec![]);
    }

    #[test]
    fn scalar_or_object_is_one_argument() {
        assert_eq!(positional("42").unwrap(), vec![P::Int(42)]);
        assert_eq!(positional(r#""x""#).unwrap(), vec![P::Str("x".into())]);
        assert_eq!(
            positional(r#"{"px": 1.5, "legs": [1, [2]]}"#).unwrap(),
            vec![P::Dict(vec![
                ("px".into(), P::Float(1.5)),
                (
                    "legs".into(),
                    P::List(vec![P::Int(1), P::List(vec![P::Int(2)])])
                ),
            ])]
        );
    }

    #[test]
    fn numbers_keep_their_python_type() {
        assert_eq!(positional("2.0").unwrap(), vec![P::Float(2.0)]);
        assert_eq!(positional("1e3").unwrap(), vec![P::Float(1000.0)]);
        assert_eq!(
            positional("-9223372036854775808").unwrap(),
            vec![P::Int(i64::MIN)]
        );
        assert!(matches!(
            positional("18446744073709551615"),
            Err(ArgsError::IntRange { .. })
        ));
    }

    #[test]
    fn kwargs_must_be_an_object() {
        // Written order is kept, as Python keeps keyword order.
        assert_eq!(
            keywords(r#"{"side": "buy", "qty": 5}"#).unwrap(),
            vec![
                ("side".into(), P::Str("buy".into())),
                ("qty".into(), P::Int(5))
            ]
        );
        let err = keywords("[1]").unwrap_err();
        assert_eq!(err, ArgsError::KwargsNotObject { found: "an array" });
        assert!(err.to_string().contains("JSON object"));
    }

    #[test]
    fn bad_json_names_the_argument() {
        let err = positional("[1,").unwrap_err();
        assert!(
            err.to_string().starts_with("ARGS_JSON is not valid JSON"),
            "{err}"
        );
        let err = keywords("{x}").unwrap_err();
        assert!(
            err.to_string().starts_with("--kwargs is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn converted_values_pickle_as_python_would_show_them() {
        let args = positional(r#"[1, "a", [true, null], {"k": 2.5}]"#).unwrap();
        let kwargs = keywords(r#"{"venue": "X"}"#).unwrap();
        let kw: Vec<(&str, P)> = kwargs
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let bytes = shm_ring::wire::pickle::encode_call(&args, &kw);
        assert_eq!(
            shm_ring::wire::pickle::decode(&bytes).unwrap().to_string(),
            "((1, 'a', [True, None], {'k': 2.5}), {'venue': 'X'})"
        );
    }
}
