//! ADR 0027: records stored as JSON (every log before the binary format)
//! and as binary are read alike, verify on one chain, and a log's JSON
//! records upgraded in place keep every hash — against real RocksDB.

use latch_core::Position;
use latch_store::*;

fn event(stream: &str, n: u64) -> NewEvent {
    NewEvent {
        stream: stream.to_owned(),
        data: RawValue::from_string(format!(r#"{{"n":{n},"note":"h\u00e9llo \"quoted\""}}"#))
            .unwrap(),
    }
}

fn append(store: &EventStore, from: u64, count: u64) {
    let events = (from..from + count)
        .map(|n| event(&format!("stream-{}\t\"{}\"", n % 7, n % 3), n))
        .collect();
    let request = AppendRequest {
        events,
        expectations: Vec::new(),
        idempotency: None,
    };
    store.append(&[request]).unwrap();
}

/// A log of `batches` appends of `size` events each, written as JSON records.
fn json_log(dir: &std::path::Path, batches: u64, size: u64) -> EventStore {
    let store = EventStore::open(dir).unwrap();
    store.set_record_format(RecordFormat::Json);
    for batch in 0..batches {
        append(&store, batch * size, size);
    }
    store
}

fn every_event(store: &EventStore) -> Vec<(u64, String, u64, String, String, String)> {
    store
        .iter_from(Position::FIRST)
        .map(|stored| {
            let stored = stored.unwrap();
            (
                stored.position.get(),
                stored.stream.clone(),
                stored.version,
                stored.prev_hash.to_hex(),
                stored.hash.to_hex(),
                stored.data.get().to_owned(),
            )
        })
        .collect()
}

fn exported(store: &EventStore) -> Vec<u8> {
    let mut out = Vec::new();
    write_export(store, Position::FIRST, store.head().position, &mut out).unwrap();
    out
}

fn intact(store: &EventStore) -> ChainVerdict {
    let verdict = store.verify_chain().unwrap();
    assert!(
        matches!(verdict, ChainVerdict::Intact { .. }),
        "{verdict:?}"
    );
    verdict
}

#[test]
fn a_json_log_upgraded_in_place_keeps_its_head_events_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    store.set_record_format(RecordFormat::Json);
    append(&store, 0, 40);
    store.set_record_format(RecordFormat::Binary);
    append(&store, 40, 10);
    assert_eq!(
        store.record_formats().unwrap(),
        RecordFormatCounts {
            json: 40,
            binary: 10,
            unknown: 0
        }
    );
    let verdict = intact(&store);
    let events = every_event(&store);
    let export = exported(&store);

    let upgrade = store.upgrade_records(|_, _| true).unwrap();
    assert_eq!(
        upgrade,
        RecordUpgrade {
            rewritten: 40,
            already_binary: 10,
            kept_json: 0
        }
    );
    assert_eq!(
        store.record_formats().unwrap(),
        RecordFormatCounts {
            json: 0,
            binary: 50,
            unknown: 0
        }
    );
    assert_eq!(intact(&store), verdict, "the same head hash");
    assert_eq!(every_event(&store), events);
    assert_eq!(
        exported(&store),
        export,
        "exports carry the canonical record"
    );
    assert!(matches!(
        verify_export(std::io::Cursor::new(export)),
        ExportVerdict::Intact { .. }
    ));
    drop(store);

    // Reopened (as after a restart), read-only too: the same.
    let store = EventStore::open_read_only(dir.path()).unwrap();
    assert_eq!(intact(&store), verdict);
    assert_eq!(every_event(&store), events);
    assert!(matches!(
        store.upgrade_records(|_, _| true),
        Err(StoreError::ReadOnly)
    ));
}

#[test]
fn records_replicated_into_a_binary_log_match_the_json_log_they_came_from() {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = EventStore::open(from.path()).unwrap();
    leader.set_record_format(RecordFormat::Json);
    append(&leader, 0, 12);
    let follower = EventStore::open(to.path()).unwrap();
    let records: Vec<ReplicatedEvent> = leader
        .iter_from(Position::FIRST)
        .map(|stored| ReplicatedEvent {
            record: stored.unwrap().record(),
            idempotency: None,
        })
        .collect();
    let head = follower.append_replicated(&records, 12).unwrap();
    assert_eq!(head, leader.head());
    assert_eq!(follower.record_formats().unwrap().binary, 12);
    assert_eq!(every_event(&follower), every_event(&leader));
    assert_eq!(exported(&follower), exported(&leader));
}

/// The upgrade reads a consistent view of the log, then writes its batches
/// while the log moves on. A tail truncated away and written anew (an HA
/// node rejoining) meanwhile must not be overwritten by the upgrade's stale
/// copies of the old tail: the chain would break, or worse, old events
/// come back.
#[test]
fn an_upgrade_never_writes_over_a_tail_truncated_and_rewritten_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let store = json_log(dir.path(), 12, 1000);
    let mut replaced = false;
    let upgrade = store
        .upgrade_records(|done, _| {
            if !replaced {
                replaced = true;
                assert!(done.get() < 10_000, "a batch is smaller than the log");
                let removed = store.truncate_after(Position::new(10_000), None).unwrap();
                assert_eq!(removed.len(), 2_000);
                append(&store, 50_000, 5);
            }
            true
        })
        .unwrap();
    assert!(replaced);
    assert!(upgrade.rewritten < 12_000, "{upgrade:?}");
    intact(&store);
    assert_eq!(store.head().position, Position::new(10_005));
    let tail = store.event(Position::new(10_001)).unwrap().unwrap();
    assert!(
        tail.data.get().contains("50000"),
        "the new tail, not the old: {}",
        tail.data.get()
    );
    assert!(
        store.event(Position::new(10_006)).unwrap().is_none(),
        "nothing came back"
    );
    let again = store.upgrade_records(|_, _| true).unwrap();
    assert_eq!(again.rewritten + again.already_binary, 10_005, "{again:?}");
    assert_eq!(store.record_formats().unwrap().json, 0);
    intact(&store);
}

#[test]
fn an_upgrade_stops_at_a_broken_chain_and_can_be_stopped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = json_log(dir.path(), 3, 9000);
        // Stopped after its first batch: the rest stays JSON, all reads.
        let stopped = store.upgrade_records(|_, _| false).unwrap();
        assert!(
            stopped.rewritten > 0 && stopped.rewritten < 27_000,
            "{stopped:?}"
        );
        let formats = store.record_formats().unwrap();
        assert_eq!(formats.binary, stopped.rewritten);
        assert_eq!(formats.json, 27_000 - stopped.rewritten);
        intact(&store);
    }
    // A JSON record altered in place (its last byte before the closing brace).
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), names).unwrap();
        let cf = db.cf_handle("events").unwrap();
        let key = 20_000u64.to_be_bytes();
        let mut value = db.get_cf(cf, key).unwrap().unwrap();
        let at = value.len() - 3;
        value[at] ^= 0x01;
        db.put_cf(cf, key, value).unwrap();
    }
    let store = EventStore::open(dir.path()).unwrap();
    let before = store.record_formats().unwrap();
    match store.upgrade_records(|_, _| true) {
        Err(StoreError::ChainBroken { position, .. }) => assert_eq!(position.get(), 20_000),
        other => panic!("expected the break at 20000, got {other:?}"),
    }
    // Nothing at or past the break was rewritten (only whole batches
    // before it were).
    let after = store.record_formats().unwrap();
    assert!(after.binary > before.binary && after.binary < 20_000, "{before:?} → {after:?}");
    assert_eq!(after.json, 27_000 - after.binary);
    match store.verify_chain().unwrap() {
        ChainVerdict::Broken { position, .. } => assert_eq!(position.get(), 20_000),
        intact => panic!("the altered record passed: {intact:?}"),
    }
}

fn raw_events(dir: &std::path::Path) -> rocksdb::DB {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names).unwrap()
}

/// A binary record flipped, cut short, moved to another key or swapped with
/// another: each is named at its position by `verify_chain`, and a read of
/// the one record by `event_checked` refuses it.
#[test]
fn an_altered_binary_record_is_found_at_its_position() {
    type Alteration = fn(&rocksdb::DB, &rocksdb::ColumnFamily);
    let alterations: [(&str, u64, Alteration); 4] = [
        ("a byte of its data flipped", 5, |db, cf| {
            let mut value = db.get_cf(cf, 5u64.to_be_bytes()).unwrap().unwrap();
            let at = value.len() - 4;
            value[at] ^= 0x20;
            db.put_cf(cf, 5u64.to_be_bytes(), value).unwrap();
        }),
        ("cut short", 6, |db, cf| {
            let value = db.get_cf(cf, 6u64.to_be_bytes()).unwrap().unwrap();
            db.put_cf(cf, 6u64.to_be_bytes(), &value[..value.len() - 2]).unwrap();
        }),
        ("moved to the next key", 7, |db, cf| {
            let value = db.get_cf(cf, 7u64.to_be_bytes()).unwrap().unwrap();
            db.delete_cf(cf, 7u64.to_be_bytes()).unwrap();
            db.put_cf(cf, 8u64.to_be_bytes(), value).unwrap();
        }),
        ("swapped with another", 3, |db, cf| {
            let three = db.get_cf(cf, 3u64.to_be_bytes()).unwrap().unwrap();
            let nine = db.get_cf(cf, 9u64.to_be_bytes()).unwrap().unwrap();
            db.put_cf(cf, 3u64.to_be_bytes(), nine).unwrap();
            db.put_cf(cf, 9u64.to_be_bytes(), three).unwrap();
        }),
    ];
    for (what, position, alter) in alterations {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EventStore::open(dir.path()).unwrap();
            append(&store, 0, 12);
            assert_eq!(store.record_formats().unwrap().binary, 12);
        }
        {
            let db = raw_events(dir.path());
            alter(&db, db.cf_handle("events").unwrap());
        }
        let store = EventStore::open_read_only(dir.path()).unwrap();
        match store.verify_chain().unwrap() {
            ChainVerdict::Broken { position: at, .. } => assert_eq!(at.get(), position, "{what}"),
            intact => panic!("{what}: not found ({intact:?})"),
        }
        let read = store.event_checked(Position::new(position));
        assert!(!matches!(read, Ok(Some(_))), "{what}: read as if intact: {read:?}");
    }
}

/// Appends go on while the upgrade runs, on another thread: every event is
/// there after, in one intact chain, and a second upgrade leaves none JSON.
#[test]
fn appends_go_on_while_the_log_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(json_log(dir.path(), 20, 1000));
    let appender = {
        let store = store.clone();
        std::thread::spawn(move || {
            for batch in 0..200 {
                append(&store, 100_000 + batch * 10, 10);
            }
        })
    };
    let upgraded = store.upgrade_records(|_, _| true).unwrap();
    appender.join().unwrap();
    assert!(upgraded.rewritten >= 20_000, "{upgraded:?}");
    assert_eq!(store.head().position, Position::new(22_000));
    let verdict = intact(&store);
    assert!(matches!(verdict, ChainVerdict::Intact { checked: 22_000, .. }));
    store.upgrade_records(|_, _| true).unwrap();
    assert_eq!(store.record_formats().unwrap().json, 0);
    assert_eq!(intact(&store), verdict);
}

/// The replication wire carries canonical JSON records: a binary one (or
/// anything else) is refused, and the follower's log is left as it was.
#[test]
fn a_replicated_record_that_is_not_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let follower = EventStore::open(dir.path()).unwrap();
    let mut binary = vec![0x02];
    binary.extend_from_slice(&1u64.to_be_bytes());
    binary.extend_from_slice(&1u64.to_be_bytes());
    binary.extend_from_slice(&[0; 32]);
    binary.extend_from_slice(&1u32.to_be_bytes());
    binary.extend_from_slice(b"s{}");
    let record = String::from_utf8(binary).unwrap();
    let refused = follower.append_replicated(&[ReplicatedEvent { record, idempotency: None }], 1);
    assert!(matches!(refused, Err(StoreError::Replication(_))), "{refused:?}");
    assert_eq!(follower.head().position, Position::ZERO);
    assert!(follower.event(Position::FIRST).unwrap().is_none());
}
