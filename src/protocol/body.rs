//! Message bodies: any JSON value, checked against the size and depth limits
//! and converted to BSON for storage exactly as given. The conversion reads
//! JSON as JSON, never as Extended JSON: an object is a document whatever
//! its keys, so `{"$date": 0}` is stored, and comes back, as that object.
//! Integers become int64, other numbers doubles; an integer beyond int64 is
//! refused rather than changed.

use bson::{Bson, Document};
use serde_json::Value;

use super::codes::{ErrorCode, Refusal};

/// The limits a body is checked against (`limits.max_body_bytes` and
/// `limits.max_body_depth`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, measured as compact JSON.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

/// Nesting depth of a body, or `None` if a key holds a NUL byte, which a
/// BSON field name cannot.
fn depth(value: &Value) -> Option<usize> {
    match value {
        Value::Array(items) => items.iter().try_fold(0, |deepest, item| Some(deepest.max(depth(item)?))).map(|d| d + 1),
        Value::Object(map) => map
            .iter()
            .try_fold(0, |deepest, (key, item)| (!key.contains('\0')).then_some(deepest.max(depth(item)?)))
            .map(|d| d + 1),
        _ => Some(0),
    }
}

/// Checks a body against the limits and converts it for storage, as given.
pub fn body_to_bson(body: &Value, limits: BodyLimits) -> Result<Bson, Refusal> {
    let size = serde_json::to_vec(body).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > limits.max_bytes {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("body is {size} bytes, the limit is {}", limits.max_bytes),
        ));
    }
    let Some(depth) = depth(body) else {
        return Err(Refusal::new(ErrorCode::InvalidField, "body: keys must not contain NUL bytes"));
    };
    if depth > limits.max_depth {
        return Err(Refusal::new(ErrorCode::TooDeep, format!("body nests deeper than {} levels", limits.max_depth)));
    }
    json_to_bson(body)
}

/// JSON to BSON, value for value, with no `$` wrapper interpreted.
fn json_to_bson(value: &Value) -> Result<Bson, Refusal> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Bson::Int64(i),
            (None, Some(f)) if !n.is_u64() => Bson::Double(f),
            _ => {
                let message = format!("body: the integer {n} does not fit in 64 bits and would not be stored as sent");
                return Err(Refusal::new(ErrorCode::InvalidField, message));
            }
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(json_to_bson).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut document = Document::new();
            for (key, item) in map {
                document.insert(key.clone(), json_to_bson(item)?);
            }
            Bson::Document(document)
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The body limits of `config/base.yaml`.
    pub fn limits() -> BodyLimits {
        static LIMITS: std::sync::OnceLock<BodyLimits> = std::sync::OnceLock::new();
        *LIMITS.get_or_init(|| {
            let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
            let (settings, _) = crate::settings::Settings::load(&config).expect("the project's configuration loads");
            BodyLimits { max_bytes: settings.limits.max_body_bytes, max_depth: settings.limits.max_body_depth }
        })
    }

    /// Any JSON value, with keys and strings that look like operators and paths.
    pub fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            prop_oneof![Just("$where"), Just("a.b"), Just("\u{0}"), Just("lobby"), Just("$gt")].prop_map(Value::from),
        ];
        let wrapper =
            prop_oneof![Just("$date"), Just("$numberLong"), Just("$oid"), Just("$regularExpression"), Just("$binary")];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner.clone(), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                // Extended JSON wrappers, which must stay plain objects.
                (wrapper.clone(), inner).prop_map(|(key, value)| serde_json::json!({ key: value })),
            ]
        })
    }

    #[test]
    fn extended_json_wrappers_are_plain_objects() {
        for text in [
            r#"{"$date": 0}"#,
            r#"{"$numberLong": "5"}"#,
            r#"{"$oid": "ABCDEF0123456789ABCDEF01"}"#,
            r#"{"$regularExpression": {"pattern": "a\u0000b", "options": ""}}"#,
            r#"{"$binary": {"base64": "", "subType": "00"}}"#,
        ] {
            let body: Value = serde_json::from_str(text).unwrap();
            let bson = body_to_bson(&body, limits()).unwrap();
            assert!(matches!(bson, Bson::Document(_)), "{text} became {bson:?}");
            assert_eq!(bson.into_relaxed_extjson(), body, "{text}");
        }
        let huge: Value = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(body_to_bson(&huge, limits()).unwrap_err().code, ErrorCode::InvalidField);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn bodies_convert_to_bson_or_are_refused(body in json_value()) {
            if let Ok(bson) = body_to_bson(&body, limits()) {
                // Stored as given: what goes in comes back out, value for value.
                let back = bson.into_relaxed_extjson();
                prop_assert_eq!(back, body);
            }
        }
    }
}
