//! Activity and usage records live in their own RocksDB beside the log
//! (`<log>/records`), so their unsynced writes never queue behind the log's
//! fsyncs; records an older latchd kept in the log itself stay readable.

use std::sync::Arc;

use latch_store::{EventStore, StoreError};

fn id(n: u8) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[15] = n;
    id
}

fn scanned(store: &EventStore, after: Option<[u8; 16]>) -> Vec<(u8, Vec<u8>)> {
    let mut seen = Vec::new();
    store
        .scan_activity(after, |key, value| {
            seen.push((key[15], value.to_vec()));
            true
        })
        .unwrap();
    seen
}

#[test]
fn records_go_beside_the_log_and_older_ones_in_the_log_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // A log as an older latchd left it: records in the log's own families.
    drop(EventStore::open(&log).unwrap());
    std::fs::remove_dir_all(log.join("records")).unwrap();
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log, names).unwrap();
        db.put_cf(db.cf_handle("activity").unwrap(), id(1), b"old-1")
            .unwrap();
        db.put_cf(db.cf_handle("usage").unwrap(), id(7), b"old-usage")
            .unwrap();
    }
    // Read-only, before any side records exist: the old ones, no writes.
    let read_only = EventStore::open_read_only(&log).unwrap();
    assert_eq!(scanned(&read_only, None), [(1, b"old-1".to_vec())]);
    assert!(matches!(
        read_only.put_activity(id(9), b"x"),
        Err(StoreError::ReadOnly)
    ));
    drop(read_only);

    let store = EventStore::open(&log).unwrap();
    store.put_activity(id(2), b"new-2").unwrap();
    store.put_activity(id(3), b"new-3").unwrap();
    store.put_usage(id(8), b"new-usage").unwrap();
    assert!(log.join("records").is_dir());
    assert_eq!(
        scanned(&store, None),
        [
            (1, b"old-1".to_vec()),
            (2, b"new-2".to_vec()),
            (3, b"new-3".to_vec())
        ]
    );
    assert_eq!(scanned(&store, Some(id(1))).len(), 2);
    assert_eq!(scanned(&store, Some(id(2))), [(3, b"new-3".to_vec())]);
    assert_eq!(store.usage(id(7)).unwrap(), Some(b"old-usage".to_vec()));
    assert_eq!(store.usage(id(8)).unwrap(), Some(b"new-usage".to_vec()));
    assert_eq!(store.usage(id(9)).unwrap(), None);

    // The new records are not in the log's own families.
    drop(store);
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &log, names, false)
        .unwrap();
    assert!(
        db.get_cf(db.cf_handle("activity").unwrap(), id(2))
            .unwrap()
            .is_none()
    );
    drop(db);

    // A checkpoint carries both, and opens as a store.
    let store = EventStore::open(&log).unwrap();
    let copy = dir.path().join("copy");
    store.checkpoint(&copy).unwrap();
    let restored = EventStore::open_read_only(&copy).unwrap();
    assert_eq!(scanned(&restored, None).len(), 3);
    assert_eq!(restored.usage(id(8)).unwrap(), Some(b"new-usage".to_vec()));
}

/// A record `b"k:<keys>"` is indexed under each of its key bytes (in
/// index `index`); any other record under none.
struct KeyBytes {
    version: u32,
    index: u8,
}

/// Version 7, index `k`.
const KEY_BYTES: KeyBytes = KeyBytes { version: 7, index: b'k' };
/// Version 9: the same key bytes under index `o`.
const OTHER_KEYS: KeyBytes = KeyBytes { version: 9, index: b'o' };

impl latch_store::ActivityIndexer for KeyBytes {
    fn version(&self) -> u32 {
        self.version
    }
    fn keys(&self, record: &[u8], keys: &mut Vec<latch_store::IndexKey>) {
        if let Some(named) = record.strip_prefix(b"k:") {
            keys.extend(named.iter().map(|b| latch_store::IndexKey::new(self.index, vec![*b])));
        }
    }
}

fn indexed(store: &EventStore, key: u8, after: Option<[u8; 16]>) -> Vec<u8> {
    let mut seen = Vec::new();
    store
        .scan_activity_by(&latch_store::IndexKey::new(b'k', vec![key]), after, |id, _| {
            seen.push(id[15]);
            true
        })
        .unwrap();
    seen
}

/// The entries the side records' activity index holds, read raw.
fn raw_entries(log: &std::path::Path) -> Vec<Vec<u8>> {
    let path = log.join("records");
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &path, names, false)
        .unwrap();
    let index = db.cf_handle("activity_index").unwrap();
    db.iterator_cf(index, rocksdb::IteratorMode::Start)
        .map(|item| item.unwrap().0.into_vec())
        .collect()
}

#[test]
fn the_activity_index_finds_a_keys_records_and_follows_every_write_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // An older latchd's records, in the log's own family.
    drop(EventStore::open(&log).unwrap());
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log, names).unwrap();
        db.put_cf(db.cf_handle("activity").unwrap(), id(1), b"k:ab")
            .unwrap();
    }
    let store = Arc::new(EventStore::open(&log).unwrap());
    // Written before any indexer: the index is not whole, so not trusted.
    store.put_activity(id(2), b"k:a").unwrap();
    store.put_activity(id(3), b"unkeyed").unwrap();
    assert!(!store.activity_index_is_complete(7).unwrap());

    // Installing the indexer indexes what is there, both places.
    assert_eq!(store.index_activity_with(Arc::new(KEY_BYTES)).unwrap().wait().unwrap(), 3);
    assert!(store.activity_index_is_complete(7).unwrap());
    assert!(!store.activity_index_is_complete(8).unwrap(), "another version's index");
    assert_eq!(store.index_activity_with(Arc::new(KEY_BYTES)).unwrap().wait().unwrap(), 0);
    assert_eq!(indexed(&store, b'a', None), [1, 2]);
    assert_eq!(indexed(&store, b'b', None), [1]);

    // New records are indexed in their own batch; `after` pages.
    store.put_activity(id(4), b"k:b").unwrap();
    store.put_activity(id(5), b"k:ab").unwrap();
    assert_eq!(indexed(&store, b'a', None), [1, 2, 5]);
    assert_eq!(indexed(&store, b'a', Some(id(2))), [5]);
    assert_eq!(indexed(&store, b'b', Some(id(1))), [4, 5]);
    assert_eq!(indexed(&store, b'a', Some([0xFF; 16])), Vec::<u8>::new());
    assert_eq!(indexed(&store, b'z', None), Vec::<u8>::new());

    // Deleting records deletes their entries (a record's entries leave with it).
    store.delete_activity_before(id(3)).unwrap();
    assert_eq!(indexed(&store, b'a', None), [5]);
    assert_eq!(indexed(&store, b'b', None), [4, 5]);
    drop(store);
    let mut expected: Vec<Vec<u8>> = vec![Vec::new()];
    for (key, record) in [(b'b', 4), (b'a', 5), (b'b', 5)] {
        let mut entry = vec![b'k', 1, key];
        entry.extend_from_slice(&id(record));
        expected.push(entry);
    }
    expected.sort();
    assert_eq!(raw_entries(&log), expected, "no entry of a deleted record is left");

    // Read-only, the index answers as it did.
    let read_only = EventStore::open_read_only(&log).unwrap();
    assert!(read_only.activity_index_is_complete(7).unwrap());
    assert_eq!(indexed(&read_only, b'b', None), [4, 5]);
    drop(read_only);

    // An index of another version is cleared, not trusted or added to.
    let store = Arc::new(EventStore::open(&log).unwrap());
    let indexing = store.index_activity_with(Arc::new(OTHER_KEYS)).unwrap();
    assert_eq!(indexing.wait().unwrap(), 3, "records 3 to 5");
    assert!(store.activity_index_is_complete(9).unwrap());
    assert!(!store.activity_index_is_complete(7).unwrap());
    assert_eq!(indexed(&store, b'a', None), Vec::<u8>::new(), "version 7's entries are gone");
    let mut other = Vec::new();
    store
        .scan_activity_by(&latch_store::IndexKey::new(b'o', vec![b'a']), None, |id, _| {
            other.push(id[15]);
            true
        })
        .unwrap();
    assert_eq!(other, [5]);
    drop(store);

    // A store with no indexer installed writes a record: the index is no
    // longer whole, and says so, until it is rebuilt.
    let store = EventStore::open(&log).unwrap();
    store.put_activity(id(6), b"k:a").unwrap();
    assert!(!store.activity_index_is_complete(9).unwrap());
    assert_eq!(store.reindex_activity(&KEY_BYTES).unwrap(), 4, "records 3 to 6");
    assert!(store.activity_index_is_complete(7).unwrap());
    assert_eq!(indexed(&store, b'a', None), [5, 6]);
    // Nor can it follow a deletion: the entries it cannot derive stay, and
    // the index says it is not whole.
    store.delete_activity_before(id(4)).unwrap();
    assert!(!store.activity_index_is_complete(7).unwrap());
}
