//! Serde for the state's times: RFC 3339 text where the format is read by
//! people (JSON: exactly chrono's own form), seconds and nanoseconds where
//! it is not (postcard checkpoints: no text to format or parse, which was
//! most of the cost of reading a million-token checkpoint).
//!
//! Use as `#[serde(with = "crate::serde_time")]`, or `serde_time::option`
//! for an `Option`. Events' times use it too: text is read without
//! chrono's general parser when it is in the form chrono writes.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        at.serialize(serializer)
    } else {
        (at.timestamp(), at.timestamp_subsec_nanos()).serialize(serializer)
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(TextVisitor)
    } else {
        let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
        DateTime::from_timestamp(seconds, nanos)
            .ok_or_else(|| serde::de::Error::custom("a time out of range"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` with one to nine digits of fraction: the
/// form chrono writes a `DateTime<Utc>` in, and so every time in the log.
/// Read here by position, without chrono's general parser (a fifth of the
/// cost of decoding an event); `None` for any other text, which chrono then
/// reads, or refuses, as it always has. Leap seconds go to chrono too.
fn parse_written(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[bytes.len() - 1] == b'Z';
    if !shaped {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |number, &digit| {
            digit.is_ascii_digit().then(|| number * 10 + u32::from(digit - b'0'))
        })
    };
    let nanoseconds = match &bytes[19..bytes.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let second = number(&bytes[17..19])?;
    if second >= 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&bytes[0..4])?).ok()?,
        number(&bytes[5..7])?,
        number(&bytes[8..10])?,
    )?;
    let time = NaiveTime::from_hms_nano_opt(
        number(&bytes[11..13])?,
        number(&bytes[14..16])?,
        second,
        nanoseconds,
    )?;
    Some(date.and_time(time).and_utc())
}

/// Reads a time from its text: `parse_written`, else chrono's own reading.
struct TextVisitor;

impl de::Visitor<'_> for TextVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an RFC 3339 time")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        match parse_written(text) {
            Some(at) => Ok(at),
            None => text
                .parse::<DateTime<FixedOffset>>()
                .map(|at| at.with_timezone(&Utc))
                .map_err(E::custom),
        }
    }
}

/// Always as text, in every format (chrono's own serde, read faster):
/// for the events, whose form is their JSON.
pub mod text {
    use super::*;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        at.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }

    /// For an `Option`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            at.serialize(serializer)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Text(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Text>::deserialize(deserializer)?.map(|Text(at)| at))
        }
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

    mod text {
        use chrono::{DateTime, Utc};
        use proptest::prelude::*;

        /// What chrono's own serde reads from `text` (the reading before
        /// `parse_written`), as a result comparable with ours.
        fn chronos(text: &str) -> Option<DateTime<Utc>> {
            serde_json::from_value::<DateTime<Utc>>(serde_json::Value::String(text.into())).ok()
        }

        fn ours(text: &str) -> Option<DateTime<Utc>> {
            #[derive(serde::Deserialize)]
            struct Text(#[serde(with = "crate::serde_time::text")] DateTime<Utc>);
            serde_json::from_value::<Text>(serde_json::Value::String(text.into())).ok().map(|t| t.0)
        }

        proptest! {
            /// Every time chrono writes (whole seconds, milli-, micro- and
            /// nanoseconds), from year 0 to 9999, reads back the same by
            /// the fast path, and as chrono reads it.
            #[test]
            fn a_written_time_reads_back_as_chrono_reads_it(
                seconds in -62_167_219_200i64..253_402_300_799,
                nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|n| n * 1_000_000),
                    (0u32..1_000_000).prop_map(|n| n * 1000), 0u32..1_000_000_000],
            ) {
                let at = DateTime::from_timestamp(seconds, nanos).unwrap();
                let text = serde_json::to_value(at).unwrap();
                let text = text.as_str().unwrap();
                prop_assert_eq!(super::super::parse_written(text), Some(at));
                prop_assert_eq!(ours(text), chronos(text));
            }

            /// Any text near that form (a character changed, dropped or
            /// added; offsets; leap seconds) reads as chrono reads it, or
            /// is refused as chrono refuses it.
            #[test]
            fn any_other_text_reads_as_chrono_reads_it(
                seconds in 0i64..4_102_444_800,
                at_char in 0usize..40,
                with in prop::sample::select(vec!['0', '9', '6', ':', '-', 'T', 't', ' ', 'Z', 'z', '.', '+', 'x', '\u{e9}']),
                edit in 0u8..3,
            ) {
                let text = serde_json::to_value(DateTime::from_timestamp(seconds, 123_000_000).unwrap()).unwrap();
                let mut chars: Vec<char> = text.as_str().unwrap().chars().collect();
                let at_char = at_char.min(chars.len());
                match edit {
                    0 if at_char < chars.len() => chars[at_char] = with,
                    1 if at_char < chars.len() => { chars.remove(at_char); }
                    _ => chars.insert(at_char, with),
                }
                let text: String = chars.into_iter().collect();
                prop_assert_eq!(ours(&text), chronos(&text), "{}", text);
            }
        }

        #[test]
        fn offsets_and_leap_seconds_are_chronos_to_read() {
            for text in [
                "2026-12-07T09:30:00+01:00",
                "2026-12-07T09:30:00.5-00:30",
                "2016-12-31T23:59:60Z",
                "2016-12-31T23:59:60.5Z",
                "2026-02-30T00:00:00Z",
                "2026-12-07T24:00:00Z",
                "2026-12-07T09:30:00.1234567891Z",
                "2026-12-07 09:30:00Z",
                "+2026-12-07T09:30:00Z",
            ] {
                assert_eq!(ours(text), chronos(text), "{text}");
            }
            assert!(chronos("2016-12-31T23:59:60Z").is_some());
        }
    }
}
