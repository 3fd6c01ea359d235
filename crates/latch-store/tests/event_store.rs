//! The event log against real RocksDB in a temp dir.

use latch_core::Position;
use latch_store::*;
use proptest::prelude::*;

fn event(stream: &str, n: u64) -> NewEvent {
    NewEvent {
        stream: stream.to_owned(),
        data: RawValue::from_string(format!(r#"{{"n":{n},"note":"hello"}}"#)).unwrap(),
    }
}

fn request(events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        events,
        expectations: Vec::new(),
        idempotency: None,
    }
}

fn written(outcome: &Result<Appended, AppendRejected>) -> (u64, u64) {
    match outcome {
        Ok(Appended::Written { first, count }) => (first.get(), *count),
        other => panic!("expected a write, got {other:?}"),
    }
}

#[test]
fn appends_get_consecutive_positions_and_stream_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(store.head().position, Position::ZERO);
    let outcomes = store
        .append(&[
            request(vec![event("a", 1), event("b", 2)]),
            request(vec![event("a", 3)]),
        ])
        .unwrap();
    assert_eq!(written(&outcomes[0]), (1, 2));
    assert_eq!(written(&outcomes[1]), (3, 1));
    let outcomes = store.append(&[request(vec![event("c", 4)])]).unwrap();
    assert_eq!(written(&outcomes[0]), (4, 1));

    let all: Vec<StoredEvent> = store
        .iter_from(Position::FIRST)
        .collect::<Result<_, _>>()
        .unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert_eq!(all[0].prev_hash, ChainHash::GENESIS);
    assert_eq!(all[1].prev_hash, all[0].hash);
    assert_eq!(store.stream_version("a").unwrap(), 2);
    assert_eq!(store.stream_version("nope").unwrap(), 0);
    let a: Vec<u64> = store
        .read_stream("a", 1, 10)
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(a, [1, 2]);
    let a2 = store.read_stream("a", 2, 10).unwrap();
    assert_eq!((a2.len(), a2[0].position.get()), (1, 3));
    assert_eq!(a2[0].data.get(), r#"{"n":3,"note":"hello"}"#);
    let after_two = store.read_after(Position::new(2), 1).unwrap();
    assert_eq!(after_two[0].position.get(), 3);
}

#[test]
fn the_head_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let store = EventStore::open(dir.path()).unwrap();
        store
            .append(&[request(vec![event("a", 1), event("a", 2)])])
            .unwrap();
        store.head()
    };
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(store.head(), head);
    let outcomes = store.append(&[request(vec![event("a", 3)])]).unwrap();
    assert_eq!(written(&outcomes[0]), (3, 1));
    assert_eq!(store.stream_version("a").unwrap(), 3);
    assert!(matches!(
        store.verify_chain().unwrap(),
        ChainVerdict::Intact { checked: 3, .. }
    ));
}

#[test]
fn a_wrong_expected_version_writes_nothing_of_that_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    store.append(&[request(vec![event("acct", 1)])]).unwrap();
    let head = store.head();

    let mut stale = request(vec![event("acct", 2)]);
    stale.expectations = vec![("acct".into(), ExpectedVersion::Exact(0))];
    let mut fresh = request(vec![event("other", 3)]);
    fresh.expectations = vec![("other".into(), ExpectedVersion::NoStream)];
    let outcomes = store.append(&[stale, fresh]).unwrap();
    assert_eq!(
        outcomes[0],
        Err(AppendRejected::WrongExpectedVersion {
            stream: "acct".into(),
            expected: ExpectedVersion::Exact(0),
            actual: 1
        })
    );
    assert_eq!(
        written(&outcomes[1]),
        (2, 1),
        "the rest of the batch stands"
    );
    assert_eq!(store.stream_version("acct").unwrap(), 1);

    let mut alone = request(vec![event("acct", 4)]);
    alone.expectations = vec![("acct".into(), ExpectedVersion::NoStream)];
    let before = store.head();
    assert!(store.append(&[alone]).unwrap()[0].is_err());
    assert_eq!(store.head(), before, "nothing was written");
    assert_ne!(before, head);

    let mut right = request(vec![event("acct", 5)]);
    right.expectations = vec![("acct".into(), ExpectedVersion::Exact(1))];
    assert_eq!(written(&store.append(&[right]).unwrap()[0]), (3, 1));
}

#[test]
fn expectations_see_earlier_requests_of_the_same_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    let first = request(vec![event("s", 1)]);
    let mut second = request(vec![event("s", 2)]);
    second.expectations = vec![("s".into(), ExpectedVersion::Exact(1))];
    let mut third = request(vec![event("s", 3)]);
    third.expectations = vec![("s".into(), ExpectedVersion::NoStream)];
    let outcomes = store.append(&[first, second, third]).unwrap();
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok() && outcomes[2].is_err());
}

#[test]
fn an_idempotent_retry_returns_the_original_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    let keyed = |n| AppendRequest {
        events: vec![event("t", n), event("u", n)],
        expectations: Vec::new(),
        idempotency: Some(IdempotencyKey {
            key: "caller/key-1".into(),
            fingerprint: "body-a".into(),
        }),
    };
    store.append(&[request(vec![event("x", 0)])]).unwrap();
    assert_eq!(written(&store.append(&[keyed(1)]).unwrap()[0]), (2, 2));
    let head = store.head();
    // Retried later, and twice within one batch: nothing new either way.
    let outcomes = store.append(&[keyed(2), keyed(3)]).unwrap();
    let original = IdempotencyRecord {
        first: Position::new(2),
        count: 2,
        fingerprint: "body-a".into(),
    };
    assert_eq!(
        outcomes,
        vec![
            Ok(Appended::Duplicate(original.clone())),
            Ok(Appended::Duplicate(original.clone()))
        ]
    );
    assert_eq!(store.head(), head);
    assert_eq!(
        original.positions().map(|p| p.get()).collect::<Vec<_>>(),
        [2, 3]
    );
    // And across a restart.
    drop(store);
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(
        store.append(&[keyed(4)]).unwrap(),
        vec![Ok(Appended::Duplicate(original))]
    );
    assert_eq!(store.head(), head);
}

#[test]
fn followers_are_told_when_the_head_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    let mut follower = store.subscribe();
    assert_eq!(*follower.borrow_and_update(), Position::ZERO);
    store
        .append(&[request(vec![event("a", 1), event("a", 2)])])
        .unwrap();
    assert!(follower.has_changed().unwrap());
    assert_eq!(*follower.borrow_and_update(), Position::new(2));
}

fn flip_byte(dir: &std::path::Path, position: u64, offset_from_end: usize) {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names).unwrap();
    let cf = db.cf_handle("events").unwrap();
    let key = position.to_be_bytes();
    let mut value = db.get_cf(cf, key).unwrap().unwrap();
    let at = value.len() - offset_from_end;
    value[at] ^= 0x01;
    db.put_cf(cf, key, value).unwrap();
}

#[test]
fn the_chain_verifies_and_a_flipped_byte_is_found_at_its_position() {
    for (target, offset_from_end) in [(1u64, 5usize), (4, 3), (7, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let head = {
            let store = EventStore::open(dir.path()).unwrap();
            for n in 0..7 {
                store
                    .append(&[request(vec![event(&format!("s{}", n % 3), n)])])
                    .unwrap();
            }
            let verdict = store.verify_chain().unwrap();
            assert_eq!(
                verdict,
                ChainVerdict::Intact {
                    checked: 7,
                    head: Position::new(7),
                    head_hash: store.head().hash
                }
            );
            store.head()
        };
        flip_byte(dir.path(), target, offset_from_end);
        let store = EventStore::open_read_only(dir.path()).unwrap();
        match store.verify_chain().unwrap() {
            ChainVerdict::Broken { position, .. } => assert_eq!(position.get(), target),
            intact => panic!("tampering at {target} not detected: {intact:?} (head was {head:?})"),
        }
    }
}

#[test]
fn a_flipped_hash_byte_is_found_too() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EventStore::open(dir.path()).unwrap();
        for n in 0..5 {
            store.append(&[request(vec![event("s", n)])]).unwrap();
        }
    }
    // The hash is the first 32 bytes of the value.
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), names).unwrap();
        let cf = db.cf_handle("events").unwrap();
        let mut value = db.get_cf(cf, 3u64.to_be_bytes()).unwrap().unwrap();
        value[0] ^= 0x80;
        db.put_cf(cf, 3u64.to_be_bytes(), value).unwrap();
    }
    let store = EventStore::open(dir.path()).unwrap();
    assert!(
        matches!(store.verify_chain().unwrap(), ChainVerdict::Broken { position, .. } if position.get() == 3)
    );
}

#[test]
fn a_read_only_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    EventStore::open(dir.path())
        .unwrap()
        .append(&[request(vec![event("a", 1)])])
        .unwrap();
    let store = EventStore::open_read_only(dir.path()).unwrap();
    assert_eq!(store.head().position, Position::new(1));
    assert!(matches!(
        store.append(&[request(vec![event("a", 2)])]),
        Err(StoreError::ReadOnly)
    ));
}

#[test]
fn snapshots_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(store.latest_snapshot().unwrap(), None);
    store
        .append(&[request((0..5).map(|n| event("a", n)).collect())])
        .unwrap();
    for p in 1..=4u64 {
        store
            .save_snapshot(Position::new(p), format!("state@{p}").as_bytes())
            .unwrap();
    }
    assert_eq!(
        store.latest_snapshot().unwrap(),
        Some((Position::new(4), b"state@4".to_vec()))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever mix of batches and version checks, positions stay gapless,
    /// versions count each stream's events, and the chain holds.
    #[test]
    fn any_append_sequence_keeps_the_log_consistent(
        batches in proptest::collection::vec(
            proptest::collection::vec((proptest::collection::vec(0..3usize, 0..4), proptest::option::of((0..3usize, 0..4u64))), 1..4),
            1..8,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let mut written_total = 0u64;
        for batch in batches {
            let requests: Vec<AppendRequest> = batch.iter().map(|(streams, expectation)| AppendRequest {
                events: streams.iter().map(|s| event(&format!("s{s}"), 0)).collect(),
                expectations: expectation.iter().map(|(s, v)| (format!("s{s}"), ExpectedVersion::Exact(*v))).collect(),
                idempotency: None,
            }).collect();
            for outcome in store.append(&requests).unwrap() {
                if let Ok(Appended::Written { count, .. }) = outcome {
                    written_total += count;
                }
            }
        }
        prop_assert_eq!(store.head().position.get(), written_total);
        let all: Vec<StoredEvent> = store.iter_from(Position::FIRST).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(all.len() as u64, written_total);
        for s in 0..3 {
            let stream = format!("s{s}");
            let count = all.iter().filter(|e| e.stream == stream).count() as u64;
            prop_assert_eq!(store.stream_version(&stream).unwrap(), count);
        }
        let intact = matches!(store.verify_chain().unwrap(), ChainVerdict::Intact { checked, .. } if checked == written_total);
        prop_assert!(intact);
    }
}

#[test]
fn a_log_has_one_random_id_for_life_kept_by_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let first = EventStore::open(dir.path().join("a")).unwrap();
    let id = first.log_id().expect("a new log has an id");
    first.append(&[request(vec![event("s", 1)])]).unwrap();
    first.checkpoint(dir.path().join("backup")).unwrap();
    drop(first);
    let again = EventStore::open(dir.path().join("a")).unwrap();
    assert_eq!(again.log_id(), Some(id), "the id survives a reopen");
    drop(again);
    let other = EventStore::open(dir.path().join("b")).unwrap();
    assert_ne!(other.log_id(), Some(id), "another log has another id");
    let backup = EventStore::open_read_only(dir.path().join("backup")).unwrap();
    assert_eq!(backup.log_id(), Some(id), "a backup is the same log");
}
