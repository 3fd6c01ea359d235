//! Serde for the domain's text types: serialised with `Display`, read back
//! with `FromStr`, so the wire form and the validated form are one.
//!
//! Read by parsing the text where the input holds it: serde's own
//! `String` (and `Cow<str>`, which never borrows) copied every name and
//! permission of every event and checkpoint into a string of its own
//! first, only to parse it into another.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{Error, Visitor};

macro_rules! serde_as_text {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str($crate::serde_as_text::FromText::<$type>::new())
            }
        }
    };
}

pub(crate) use serde_as_text;

/// Parses a string, borrowed or not, with `FromStr`.
pub(crate) struct FromText<T>(PhantomData<T>);

impl<T> FromText<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Visitor<'_> for FromText<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}
