//! The log's index (`EventIndexer`, `index_with`) on real RocksDB: written
//! with the events, followed down a truncation, caught up after appends it
//! did not see, rebuilt when missing or of another version, and a damaged
//! one told apart from a sound one.

use std::sync::Arc;

use latch_core::Position;
use latch_store::*;

/// Indexes `{"keys":["a","b"]}` under each key in index `k`, and `{"at":N}`
/// under N (8 bytes) in index `@`.
struct Keys(u32);

impl EventIndexer for Keys {
    fn version(&self) -> u32 {
        self.0
    }

    fn keys(&self, data: &str, keys: &mut Vec<IndexKey>) -> Result<(), String> {
        let value: serde_json::Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
        for key in value["keys"].as_array().ok_or("no keys")? {
            keys.push(IndexKey::new(b'k', key.as_str().ok_or("a key is text")?.as_bytes()));
        }
        if let Some(at) = value["at"].as_u64() {
            keys.push(IndexKey::new(b'@', at.to_be_bytes()));
        }
        Ok(())
    }
}

fn event(keys: &[&str], at: u64) -> AppendRequest {
    AppendRequest {
        events: vec![NewEvent {
            stream: "s".into(),
            data: RawValue::from_string(serde_json::json!({ "keys": keys, "at": at }).to_string())
                .unwrap(),
        }],
        expectations: Vec::new(),
        idempotency: None,
    }
}

fn positions(store: &EventStore, key: &str) -> Vec<u64> {
    store
        .indexed_positions(
            &IndexKey::new(b'k', key.as_bytes()),
            Position::ZERO,
            store.head().position,
        )
        .map(|p| p.unwrap().get())
        .collect()
}

fn no_progress() -> impl FnMut(Position, Position) {
    |_, _| {}
}

#[test]
fn events_are_found_by_each_of_their_keys_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(store.index_with(Arc::new(Keys(1)), &mut no_progress()).unwrap(), 0);
    store
        .append(&[event(&["a"], 10), event(&["a", "b"], 20), event(&["b"], 20)])
        .unwrap();
    store.append(&[event(&["ab"], 35)]).unwrap();
    assert_eq!(positions(&store, "a"), [1, 2]);
    assert_eq!(positions(&store, "b"), [2, 3]);
    // A key that is a prefix of another finds only its own events.
    assert_eq!(positions(&store, "ab"), [4]);
    assert_eq!(positions(&store, "c"), Vec::<u64>::new());
    let after = store
        .indexed_positions(&IndexKey::new(b'k', "a"), Position::new(1), Position::new(4))
        .map(|p| p.unwrap().get())
        .collect::<Vec<_>>();
    assert_eq!(after, [2]);
    let first = |at: u64| {
        store
            .first_indexed_at_least(b'@', &at.to_be_bytes())
            .unwrap()
            .map(|p| p.get())
    };
    assert_eq!(first(0), Some(1));
    assert_eq!(first(11), Some(2));
    assert_eq!(first(21), Some(4));
    assert_eq!(first(36), None);
    assert!(store.index_status(1).unwrap().is_fresh());
    assert!(store.check_index(&Keys(1), &mut no_progress()).unwrap().is_sound());
}

#[test]
fn appends_the_index_did_not_see_are_indexed_when_it_is_installed_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EventStore::open(dir.path()).unwrap();
        store.index_with(Arc::new(Keys(1)), &mut no_progress()).unwrap();
        store.append(&[event(&["a"], 1)]).unwrap();
    }
    {
        // An older latchd, without an indexer: the index falls behind, and
        // says so rather than answering without these events.
        let store = EventStore::open(dir.path()).unwrap();
        store.append(&[event(&["a"], 2), event(&["b"], 3)]).unwrap();
        assert_eq!(
            store.index_status(1).unwrap(),
            IndexStatus::Behind {
                through: Position::new(1)
            }
        );
    }
    let store = EventStore::open(dir.path()).unwrap();
    let mut reported = Vec::new();
    let indexed = store
        .index_with(Arc::new(Keys(1)), &mut |done, total| reported.push((done, total)))
        .unwrap();
    assert_eq!(indexed, 2, "only the tail is indexed");
    assert_eq!(reported.last(), Some(&(Position::new(3), Position::new(3))));
    assert_eq!(positions(&store, "a"), [1, 2]);
    assert_eq!(positions(&store, "b"), [3]);
    assert!(store.check_index(&Keys(1), &mut no_progress()).unwrap().is_sound());
}

#[test]
fn an_index_of_another_version_or_a_dropped_one_is_rebuilt_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EventStore::open(dir.path()).unwrap();
        store.index_with(Arc::new(Keys(1)), &mut no_progress()).unwrap();
        store.append(&[event(&["a"], 1), event(&["b"], 2)]).unwrap();
    }
    {
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(
            store.index_status(2).unwrap(),
            IndexStatus::OtherVersion { found: 1 }
        );
        assert_eq!(store.index_with(Arc::new(Keys(2)), &mut no_progress()).unwrap(), 2);
        assert!(store.index_status(2).unwrap().is_fresh());
        assert_eq!(positions(&store, "a"), [1]);
    }
    // The family dropped outright: reopened, the log knows it has no index
    // (and a reader would not trust the empty one).
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let mut db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), names).unwrap();
        db.drop_cf("index").unwrap();
    }
    {
        let read_only = EventStore::open_read_only(dir.path()).unwrap();
        assert_eq!(read_only.index_status(2).unwrap(), IndexStatus::Missing);
    }
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(store.index_status(2).unwrap(), IndexStatus::Missing);
    assert_eq!(store.index_with(Arc::new(Keys(2)), &mut no_progress()).unwrap(), 2);
    assert_eq!(positions(&store, "a"), [1]);
    assert_eq!(positions(&store, "b"), [2]);
}

#[test]
fn a_damaged_index_is_told_apart_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EventStore::open(dir.path()).unwrap();
        store.index_with(Arc::new(Keys(1)), &mut no_progress()).unwrap();
        store
            .append(&[event(&["a"], 1), event(&["a"], 2), event(&["b"], 3)])
            .unwrap();
    }
    // Someone with the disk hides event 2 from every question about "a"
    // and points "b" at event 1.
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), names).unwrap();
        let index = db.cf_handle("index").unwrap();
        db.delete_cf(index, [b"k\x01a".as_slice(), &2u64.to_be_bytes()].concat())
            .unwrap();
        db.put_cf(index, [b"k\x01b".as_slice(), &1u64.to_be_bytes()].concat(), [])
            .unwrap();
    }
    let store = EventStore::open(dir.path()).unwrap();
    // Its bookkeeping still says whole: only a check against the events
    // tells.
    assert!(store.index_status(1).unwrap().is_fresh());
    assert_eq!(positions(&store, "a"), [1]);
    let check = store.check_index(&Keys(1), &mut no_progress()).unwrap();
    assert!(!check.is_sound(), "{check:?}");
    assert_eq!(check.expected.entries, check.found.entries, "one removed, one added");

    assert_eq!(store.rebuild_index(&Keys(1), &mut no_progress()).unwrap(), 3);
    assert!(store.check_index(&Keys(1), &mut no_progress()).unwrap().is_sound());
    assert_eq!(positions(&store, "a"), [1, 2]);
    assert_eq!(positions(&store, "b"), [3]);
}

#[test]
fn a_truncated_tail_takes_its_entries_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    store.index_with(Arc::new(Keys(1)), &mut no_progress()).unwrap();
    store
        .append(&[event(&["a"], 1), event(&["a"], 2), event(&["a"], 3)])
        .unwrap();
    store.truncate_after(Position::new(1), None).unwrap();
    assert!(store.index_status(1).unwrap().is_fresh());
    assert_eq!(positions(&store, "a"), [1]);
    assert!(store.check_index(&Keys(1), &mut no_progress()).unwrap().is_sound());
    store.append(&[event(&["a"], 4)]).unwrap();
    assert_eq!(positions(&store, "a"), [1, 2]);
}

#[test]
fn an_event_the_indexer_cannot_read_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    store.index_with(Arc::new(Keys(1)), &mut no_progress()).unwrap();
    let unreadable = AppendRequest {
        events: vec![NewEvent {
            stream: "s".into(),
            data: RawValue::from_string("{\"no\":\"keys\"}".into()).unwrap(),
        }],
        expectations: Vec::new(),
        idempotency: None,
    };
    assert!(store.append(&[unreadable]).is_err());
    assert_eq!(store.head().position, Position::ZERO);
    assert!(store.index_status(1).unwrap().is_fresh());
}
