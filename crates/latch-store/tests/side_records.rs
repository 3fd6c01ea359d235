//! Activity and usage records live in their own RocksDB beside the log
//! (`<log>/records`), so their unsynced writes never queue behind the log's
//! fsyncs; records an older latchd kept in the log itself stay readable.

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
