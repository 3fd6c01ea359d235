//! Whole numbers in JSON bodies as JSON Schema counts them: `346749657.0`
//! is the integer 346749657 (JSON has one number type), so a body the
//! OpenAPI document calls valid is not refused for writing it that way.
//! A fraction, or a number out of range, is still refused.

use serde::{Deserialize, Deserializer, de::Error};

/// An optional `u32` written as an integer or as a number with no
/// fractional part.
pub(crate) fn optional_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(whole), _) => Some(whole),
        (None, Some(float)) if float.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&float) => {
            Some(float as u64)
        }
        _ => None,
    };
    whole
        .and_then(|whole| u32::try_from(whole).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number from 0 to {}", u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "optional_u32")]
        count: Option<u32>,
    }

    fn count(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.count)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integers_and_whole_floats_are_read_and_the_rest_refused() {
        assert_eq!(count("{}"), Ok(None));
        assert_eq!(count(r#"{"count":null}"#), Ok(None));
        assert_eq!(count(r#"{"count":7}"#), Ok(Some(7)));
        assert_eq!(count(r#"{"count":346749657.0}"#), Ok(Some(346_749_657)));
        assert_eq!(count(r#"{"count":4294967295}"#), Ok(Some(u32::MAX)));
        for refused in ["1.5", "-1", "-1.0", "4294967296", "4294967296.0", "1e300", "\"7\""] {
            assert!(count(&format!(r#"{{"count":{refused}}}"#)).is_err(), "{refused}");
        }
    }
}
