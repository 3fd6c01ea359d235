//! `ExchangedJtis`: the OIDC tokens exchanged (`<issuer> <jti>`), each with
//! when it expires: until then it is refused again (a replayed identity
//! token mints nothing).
//!
//! Entries past their expiry are dropped as exchanges arrive, soonest
//! first from a queue ordered by expiry. They used to be dropped by a walk
//! over every entry on every exchange: a thousand exchanges a minute of
//! identity tokens valid an hour kept 60,000 entries, each exchange walked
//! all of them, in latchd and again in every replay of the log.
//!
//! Serialised as the map alone (as before the queue existed, so
//! checkpoints are unchanged); the queue is rebuilt on reading.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default)]
pub(crate) struct ExchangedJtis {
    expiry: HashMap<String, DateTime<Utc>>,
    /// `(expiry, key)` of every entry of `expiry`, soonest first.
    queue: BTreeSet<(DateTime<Utc>, String)>,
}

impl ExchangedJtis {
    /// When the token under `key` expires, if it was exchanged and its
    /// entry not dropped yet.
    pub(crate) fn expires_at(&self, key: &str) -> Option<DateTime<Utc>> {
        self.expiry.get(key).copied()
    }

    /// Records an exchange at `now` of the token under `key`, refused
    /// again until `expires_at`, after dropping every entry expired at
    /// `now`.
    pub(crate) fn record(&mut self, key: String, expires_at: DateTime<Utc>, now: DateTime<Utc>) {
        while let Some(first) = self.queue.first()
            && first.0 <= now
        {
            let (_, dropped) = self.queue.pop_first().expect("a first entry");
            self.expiry.remove(&dropped);
        }
        if let Some(before) = self.expiry.insert(key.clone(), expires_at) {
            self.queue.remove(&(before, key.clone()));
        }
        self.queue.insert((expires_at, key));
    }

    #[cfg(test)]
    fn entries(&self) -> &HashMap<String, DateTime<Utc>> {
        &self.expiry
    }
}

impl PartialEq for ExchangedJtis {
    fn eq(&self, other: &Self) -> bool {
        self.expiry == other.expiry
    }
}

impl Eq for ExchangedJtis {}

impl Serialize for ExchangedJtis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.expiry.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ExchangedJtis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expiry = HashMap::<String, DateTime<Utc>>::deserialize(deserializer)?;
        let queue = expiry.iter().map(|(key, at)| (*at, key.clone())).collect();
        Ok(Self { expiry, queue })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use proptest::prelude::*;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    /// What `record` did before the queue: keep what is live at `now`,
    /// then insert.
    fn walked(model: &mut HashMap<String, DateTime<Utc>>, key: String, expires_at: DateTime<Utc>, now: DateTime<Utc>) {
        model.retain(|_, expiry| *expiry > now);
        model.insert(key, expires_at);
    }

    proptest! {
        /// Any sequence of exchanges (keys seen again, expiries in any
        /// order, clocks that step back) leaves exactly the entries the
        /// walk over every entry left; and so does a copy read back from
        /// its serialised form and fed the rest of the sequence.
        #[test]
        fn drops_exactly_what_a_walk_over_every_entry_dropped(
            steps in proptest::collection::vec((0u8..12, -5i64..40, -3i64..10), 1..120),
            split in 0usize..120,
        ) {
            let mut jtis = ExchangedJtis::default();
            let mut model = HashMap::new();
            let mut now = 0i64;
            for (index, (key, lifetime, step)) in steps.into_iter().enumerate() {
                if index == split {
                    let text = serde_json::to_string(&jtis).unwrap();
                    jtis = serde_json::from_str(&text).unwrap();
                }
                now += step;
                let key = format!("https://issuer.example jti-{key}");
                jtis.record(key.clone(), at(now + lifetime), at(now));
                walked(&mut model, key, at(now + lifetime), at(now));
                prop_assert_eq!(jtis.entries(), &model);
                prop_assert_eq!(jtis.queue.len(), model.len());
            }
        }
    }

    #[test]
    fn an_entry_is_kept_until_its_expiry_and_dropped_at_it() {
        let mut jtis = ExchangedJtis::default();
        jtis.record("i a".into(), at(60), at(0));
        jtis.record("i b".into(), at(10), at(0));
        jtis.record("i c".into(), at(30), at(9));
        assert_eq!(jtis.expires_at("i b"), Some(at(10)));
        jtis.record("i d".into(), at(100), at(10));
        assert_eq!(jtis.expires_at("i b"), None, "expired at 10, dropped at 10");
        assert_eq!(jtis.expires_at("i a"), Some(at(60)));
        assert_eq!(jtis.expires_at("i c"), Some(at(30)));
        jtis.record("i e".into(), at(200), at(60) + TimeDelta::seconds(1));
        assert_eq!(jtis.entries().len(), 2);
    }

    #[test]
    fn it_is_written_as_the_map_it_always_was() {
        let mut jtis = ExchangedJtis::default();
        jtis.record("i a".into(), at(60), at(0));
        let mut map = HashMap::new();
        map.insert("i a".to_owned(), at(60));
        assert_eq!(serde_json::to_value(&jtis).unwrap(), serde_json::to_value(&map).unwrap());
    }
}
