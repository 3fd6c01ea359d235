//! Deserialising the state's large maps at their full size at once.
//!
//! serde's own `HashMap` impl caps what it reserves up front (a defence
//! for formats that read lengths from untrusted input), so a checkpoint of
//! 800,000 tokens grew its maps by doubling: every token moved some twenty
//! times, with the pages zeroed for each new table. A checkpoint is
//! latchd's own file: its length is trusted, up to a bound.
//!
//! Use as `#[serde(deserialize_with = "crate::presized_map::deserialize")]`.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// The most entries reserved before any is read (16M): beyond it the map
/// grows as it is filled.
const MOST_RESERVED: usize = 1 << 24;

pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<HashMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
{
    struct Presized<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Presized<K, V>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
    {
        type Value = HashMap<K, V>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
            let mut map = HashMap::with_capacity(entries.size_hint().unwrap_or(0).min(MOST_RESERVED));
            while let Some((key, value)) = entries.next_entry()? {
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(Presized(PhantomData))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "super::deserialize")]
        map: HashMap<u32, String>,
    }

    #[test]
    fn a_map_reads_back_whole_and_at_its_size() {
        let holder = Holder {
            map: (0..10_000).map(|i| (i, i.to_string())).collect(),
        };
        let bytes = postcard::to_stdvec(&holder).unwrap();
        let read: Holder = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, holder);
        assert!(read.map.capacity() >= 10_000);
        let json = serde_json::to_string(&holder).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder);
    }
}
