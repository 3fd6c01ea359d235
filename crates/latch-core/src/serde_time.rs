//! Serde for the state's times: RFC 3339 text where the format is read by
//! people (JSON: exactly chrono's own form), seconds and nanoseconds where
//! it is not (postcard checkpoints: no text to format or parse, which was
//! most of the cost of reading a million-token checkpoint).
//!
//! Use as `#[serde(with = "crate::serde_time")]`, or `serde_time::option`
//! for an `Option`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        at.serialize(serializer)
    } else {
        (at.timestamp(), at.timestamp_subsec_nanos()).serialize(serializer)
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    if deserializer.is_human_readable() {
        DateTime::<Utc>::deserialize(deserializer)
    } else {
        let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
        DateTime::from_timestamp(seconds, nanos)
            .ok_or_else(|| serde::de::Error::custom("a time out of range"))
    }
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Time<'a>(#[serde(with = "super")] &'a DateTime<Utc>);
        at.as_ref().map(Time).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Time(#[serde(with = "super")] DateTime<Utc>);
        Ok(Option::<Time>::deserialize(deserializer)?.map(|Time(at)| at))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Times {
        #[serde(with = "super")]
        at: chrono::DateTime<chrono::Utc>,
        #[serde(with = "super::option")]
        maybe: Option<chrono::DateTime<chrono::Utc>>,
        #[serde(with = "super::option")]
        never: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn json_keeps_chronos_text_and_postcard_round_trips_to_the_nanosecond() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).unwrap()
            + chrono::TimeDelta::nanoseconds(123_456_789);
        let times = Times {
            at,
            maybe: Some(at),
            never: None,
        };
        let json = serde_json::to_value(&times).unwrap();
        assert_eq!(json["at"], serde_json::to_value(at).unwrap());
        assert_eq!(json["at"], "2026-12-07T09:30:00.123456789Z");
        assert_eq!(json["never"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Times>(json).unwrap(), times);
        let bytes = postcard::to_stdvec(&times).unwrap();
        assert_eq!(postcard::from_bytes::<Times>(&bytes).unwrap(), times);
    }
}
