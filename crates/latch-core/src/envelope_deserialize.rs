//! `Deserialize` for `EventEnvelope`, written out.
//!
//! The derived form (`#[serde(flatten)]` over the adjacently tagged
//! `Event`) buffers every envelope into serde's generic `Content` tree and
//! decodes it a second time; replay decodes every event of the log, so that
//! doubled the cost of a rebuild. This visitor reads the envelope's own
//! fields directly and hands `data` straight to `Event`'s derived decoder,
//! presenting it the `{"type","data"}` pair it expects (`TaggedData`). Only
//! when `data` comes before `type` (a writer that reorders keys) is `data`
//! buffered, as a `serde_json::Value`.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, Error as _, IgnoredAny, IntoDeserializer, MapAccess,
    Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};

use crate::envelope::EventEnvelope;
use crate::event::Event;
use crate::idempotency_key_digest::IdempotencyKeyDigest;

impl<'de> Deserialize<'de> for EventEnvelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Id,
    At,
    Actor,
    RequestId,
    /// Written by latchd before the key was digested: read as its digest.
    IdempotencyKey,
    IdempotencyKeySha256,
    Type,
    Data,
    #[serde(other)]
    Other,
}

/// The envelope's time, read by `serde_time::text`.
#[derive(Deserialize)]
struct Time(#[serde(with = "crate::serde_time::text")] chrono::DateTime<chrono::Utc>);

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = EventEnvelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Latch event envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventEnvelope, A::Error> {
        let mut id = None;
        let mut at = None;
        let mut actor = None;
        let mut request_id = None;
        let mut idempotency_key = None;
        let mut kind: Option<String> = None;
        let mut event = None;
        let mut early_data: Option<serde_json::Value> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Id => id = Some(map.next_value()?),
                Field::At => at = Some(map.next_value::<Time>()?.0),
                Field::Actor => actor = Some(map.next_value()?),
                Field::RequestId => request_id = map.next_value()?,
                Field::IdempotencyKey => {
                    idempotency_key = map
                        .next_value::<Option<String>>()?
                        .map(|key| IdempotencyKeyDigest::of(&key))
                }
                Field::IdempotencyKeySha256 => idempotency_key = map.next_value()?,
                Field::Type => kind = Some(map.next_value()?),
                Field::Data => match &kind {
                    Some(kind) => event = Some(map.next_value_seed(EventSeed { kind })?),
                    None => early_data = Some(map.next_value()?),
                },
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| A::Error::missing_field("type"))?;
        let event = match (event, early_data) {
            (Some(event), _) => event,
            (None, Some(data)) => EventSeed { kind: &kind }
                .deserialize(data)
                .map_err(A::Error::custom)?,
            (None, None) => return Err(A::Error::missing_field("data")),
        };
        Ok(EventEnvelope {
            id: id.ok_or_else(|| A::Error::missing_field("id"))?,
            at: at.ok_or_else(|| A::Error::missing_field("at"))?,
            actor: actor.ok_or_else(|| A::Error::missing_field("actor"))?,
            request_id,
            idempotency_key_sha256: idempotency_key,
            event,
        })
    }
}

/// Decodes an `Event` from its `data`, its `type` already read.
struct EventSeed<'a> {
    kind: &'a str,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Event;

    fn deserialize<D: Deserializer<'de>>(self, data: D) -> Result<Event, D::Error> {
        Event::deserialize(TaggedData {
            kind: self.kind,
            data,
        })
    }
}

/// Presents `type` and `data` as the map `Event`'s derived decoder reads.
struct TaggedData<'a, D> {
    kind: &'a str,
    data: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TaggedData<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_map(TaggedDataAccess {
            kind: self.kind,
            data: Some(self.data),
            read: 0,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct TaggedDataAccess<'a, D> {
    kind: &'a str,
    data: Option<D>,
    /// How many entries have been read: `type`, then `data`.
    read: u8,
}

impl<'de, D: Deserializer<'de>> MapAccess<'de> for TaggedDataAccess<'_, D> {
    type Error = D::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        let key = match self.read {
            0 => "type",
            1 => "data",
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, D::Error> {
        self.read += 1;
        match self.read {
            1 => seed.deserialize(self.kind.into_deserializer()),
            _ => match self.data.take() {
                Some(data) => seed.deserialize(data),
                None => Err(de::Error::custom("an event's data was read twice")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope() -> serde_json::Value {
        json!({
            "id": "0190b1a4-0000-7000-8000-000000000001",
            "at": "2026-11-28T10:00:00Z",
            "actor": "system",
            "request_id": "req-1",
            "type": "account.disabled",
            "data": {"account_id": "0190b1a4-0000-7000-8000-000000000002", "reason": "left"}
        })
    }

    #[test]
    fn an_envelope_decodes_as_it_was_written_in_any_key_order() {
        let written = envelope();
        let decoded: EventEnvelope = serde_json::from_value(written.clone()).expect("decodes");
        assert_eq!(serde_json::to_value(&decoded).expect("encodes"), written);
        // `data` before `type`, and a field this version does not know.
        let reordered = r#"{"data":{"reason":"left","account_id":"0190b1a4-0000-7000-8000-000000000002"},
            "later_field":[1,2],"type":"account.disabled","actor":"system",
            "at":"2026-11-28T10:00:00Z","request_id":"req-1","id":"0190b1a4-0000-7000-8000-000000000001"}"#;
        let decoded_again: EventEnvelope = serde_json::from_str(reordered).expect("decodes");
        assert_eq!(decoded_again, decoded);
    }

    #[test]
    fn a_broken_envelope_is_refused_with_what_is_wrong() {
        let mut no_type = envelope();
        no_type.as_object_mut().unwrap().remove("type");
        let error = serde_json::from_value::<EventEnvelope>(no_type).unwrap_err();
        assert!(
            error.to_string().contains("missing field `type`"),
            "{error}"
        );

        let mut no_actor = envelope();
        no_actor.as_object_mut().unwrap().remove("actor");
        let error = serde_json::from_value::<EventEnvelope>(no_actor).unwrap_err();
        assert!(
            error.to_string().contains("missing field `actor`"),
            "{error}"
        );

        let mut unknown_type = envelope();
        unknown_type["type"] = json!("account.exploded");
        let error = serde_json::from_value::<EventEnvelope>(unknown_type).unwrap_err();
        assert!(error.to_string().contains("account.exploded"), "{error}");

        let mut bad_data = envelope();
        bad_data["data"] = json!({"account_id": 7});
        assert!(serde_json::from_value::<EventEnvelope>(bad_data).is_err());
    }

    #[test]
    fn a_key_written_by_an_older_latchd_reads_back_as_its_digest_only() {
        let mut legacy = envelope();
        legacy["idempotency_key"] = json!("rotate-admin-1");
        let decoded: EventEnvelope = serde_json::from_value(legacy).expect("decodes");
        assert_eq!(
            decoded.idempotency_key_sha256,
            Some(IdempotencyKeyDigest::of("rotate-admin-1"))
        );
        let written = serde_json::to_string(&decoded).expect("encodes");
        assert!(!written.contains("rotate-admin-1"), "{written}");
        assert!(written.contains("idempotency_key_sha256"), "{written}");
        let again: EventEnvelope = serde_json::from_str(&written).expect("decodes");
        assert_eq!(again, decoded);
    }
}
