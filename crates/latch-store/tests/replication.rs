//! What HA mode asks of the log: prepare a batch without writing it and
//! commit it later; append another log's records byte for byte, refusing
//! any that does not continue the chain; set a tail aside; index
//! idempotency keys by digest (finding older plain keys too); adopt a
//! cluster's log id only while empty.

use latch_core::{LogId, Position};
use latch_store::{
    AppendRequest, Appended, EventStore, IdempotencyKey, NewEvent, RawValue,
    ReplicatedEvent, StoreError,
};

fn event(stream: &str, n: u64) -> NewEvent {
    NewEvent {
        stream: stream.to_owned(),
        data: RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap(),
    }
}

fn keyed(events: Vec<NewEvent>, key: &str) -> AppendRequest {
    AppendRequest {
        events,
        expectations: Vec::new(),
        idempotency: Some(IdempotencyKey {
            key: key.to_owned(),
            fingerprint: "f".to_owned(),
        }),
    }
}

/// Records of `leader` after `after`, as a standby receives them.
fn records_after(leader: &EventStore, after: u64) -> Vec<ReplicatedEvent> {
    leader
        .read_after(Position::new(after), 1000)
        .unwrap()
        .into_iter()
        .map(|stored| ReplicatedEvent {
            record: stored.record(),
            idempotency: None,
        })
        .collect()
}

/// An HA leader publishes the next batch while the one before it awaits
/// the stream: the second is prepared as if the first were written
/// (positions, chain, versions, keys), and commits only after it.
#[test]
fn an_append_prepared_after_a_pending_one_continues_it_and_commits_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    let first = store.prepare(&[keyed(vec![event("a", 1), event("b", 2)], "k1")]).unwrap();
    let second = store
        .prepare_following(&first, &[keyed(vec![event("a", 3)], "k2"), keyed(vec![event("z", 9)], "k1")])
        .unwrap();
    assert_eq!(second.events()[0].position, Position::new(3));
    assert_eq!(second.events()[0].prev_hash, first.events()[1].hash);
    assert_eq!(second.events()[0].version, 2, "stream a's version follows the pending append");
    assert_eq!(second.events().len(), 1, "k1, used by the pending append, is a duplicate");
    assert_eq!(store.head().position, Position::ZERO);

    let second_after = second.after();
    let refused = store.commit(second, Some(9));
    assert!(matches!(refused, Err(StoreError::Replication(_))), "{refused:?}");
    assert_eq!(store.head().position, Position::ZERO, "nothing written out of order");

    // Prepared again after a refusal, in order this time.
    let first = store.prepare(&[keyed(vec![event("a", 1), event("b", 2)], "k1")]).unwrap();
    let second = store.prepare_following(&first, &[keyed(vec![event("a", 3)], "k2")]).unwrap();
    assert_eq!(second.after(), second_after, "the same chain");
    store.commit(first, Some(2)).unwrap();
    store.commit(second, Some(3)).unwrap();
    assert_eq!(store.head().position, Position::new(3));
    assert_eq!(store.stream_sequence().unwrap(), Some(3));
    assert_eq!(store.stream_version("a").unwrap(), 2);
    assert!(matches!(store.verify_chain().unwrap(), latch_store::ChainVerdict::Intact { checked: 3, .. }));
}

#[test]
fn a_prepared_append_is_written_only_on_commit_and_only_if_the_log_did_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    let prepared = store.prepare(&[keyed(vec![event("a", 1), event("b", 2)], "k1")]).unwrap();
    assert_eq!(prepared.events().len(), 2);
    assert_eq!(prepared.events()[1].prev_hash, prepared.events()[0].hash);
    assert_eq!(store.head().position, Position::ZERO, "nothing written before commit");
    assert_eq!(prepared.idempotency_records().len(), 1);
    assert!(prepared.idempotency_records()[0].0.starts_with("sha256:"));
    assert!(!prepared.idempotency_records()[0].0.contains("k1"), "the index holds no key");

    let stale = store.prepare(&[keyed(vec![event("c", 3)], "k2")]).unwrap();
    let outcomes = store.commit(prepared, Some(7)).unwrap();
    assert_eq!(outcomes[0], Ok(Appended::Written { first: Position::new(1), count: 2 }));
    assert_eq!(store.head().position, Position::new(2));
    assert_eq!(store.stream_sequence().unwrap(), Some(7));
    assert!(store.idempotency("k1").unwrap().is_some());
    // Prepared against a head that has moved since: refused, nothing written.
    assert!(matches!(store.commit(stale, Some(8)), Err(StoreError::Replication(_))));
    assert_eq!(store.head().position, Position::new(2));
}

#[test]
fn a_standby_appends_the_leaders_records_byte_for_byte_and_refuses_a_broken_chain() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = EventStore::open(leader_dir.path()).unwrap();
    leader.append(&[keyed(vec![event("a", 1)], "k1")]).unwrap();
    leader.append(&[keyed(vec![event("a", 2), event("b", 3)], "k2")]).unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let standby = EventStore::open(standby_dir.path()).unwrap();
    standby.adopt_log_id(leader.log_id().unwrap()).unwrap();

    let records = records_after(&leader, 0);
    // A record out of place (the second first) is refused, nothing written.
    let swapped = vec![records[1].clone(), records[0].clone()];
    assert!(matches!(standby.append_replicated(&swapped, 2), Err(StoreError::Replication(_))));
    assert_eq!(standby.head().position, Position::ZERO);
    // An altered record no longer continues the chain after it.
    let mut altered = records.clone();
    altered[0].record = altered[0].record.replace("\"n\":1", "\"n\":9");
    assert!(standby.append_replicated(&altered, 3).is_err());
    assert_eq!(standby.head().position, Position::ZERO);

    let head = standby.append_replicated(&records, 3).unwrap();
    assert_eq!(head, leader.head());
    assert_eq!(standby.stream_sequence().unwrap(), Some(3));
    assert_eq!(standby.stream_version("a").unwrap(), 2);
    for position in 1..=3 {
        let (ours, theirs) = (
            leader.event(Position::new(position)).unwrap().unwrap(),
            standby.event(Position::new(position)).unwrap().unwrap(),
        );
        assert_eq!(ours.record(), theirs.record());
        assert_eq!(ours.hash, theirs.hash);
    }
    assert!(matches!(
        standby.verify_chain().unwrap(),
        latch_store::ChainVerdict::Intact { checked: 3, .. }
    ));
}

#[test]
fn a_tail_set_aside_takes_its_versions_keys_and_snapshots_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    store.append(&[keyed(vec![event("a", 1)], "kept")]).unwrap();
    let keep_hash = store.head().hash;
    store.append(&[keyed(vec![event("a", 2), event("b", 3)], "gone")]).unwrap();
    store.save_snapshot(Position::new(3), b"state at 3").unwrap();

    let removed = store.truncate_after(Position::new(1), Some(4)).unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(store.head().position, Position::new(1));
    assert_eq!(store.head().hash, keep_hash);
    assert_eq!(store.stream_version("a").unwrap(), 1);
    assert_eq!(store.stream_version("b").unwrap(), 0);
    assert!(store.idempotency("kept").unwrap().is_some());
    assert!(store.idempotency("gone").unwrap().is_none());
    assert!(store.latest_snapshot().unwrap().is_none());
    assert_eq!(store.stream_sequence().unwrap(), Some(4));
    // The log goes on from there, and its chain holds.
    store.append(&[keyed(vec![event("a", 4)], "next")]).unwrap();
    assert_eq!(store.stream_version("a").unwrap(), 2);
    assert!(matches!(
        store.verify_chain().unwrap(),
        latch_store::ChainVerdict::Intact { checked: 2, .. }
    ));
}

#[test]
fn only_an_empty_log_adopts_another_logs_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path()).unwrap();
    let cluster = LogId::new();
    store.adopt_log_id(cluster).unwrap();
    assert_eq!(store.log_id(), Some(cluster));
    drop(store);
    let store = EventStore::open(dir.path()).unwrap();
    assert_eq!(store.log_id(), Some(cluster), "the adopted id is kept");
    store.append(&[keyed(vec![event("a", 1)], "k")]).unwrap();
    assert!(store.adopt_log_id(LogId::new()).is_err());
    assert_eq!(store.log_id(), Some(cluster));
}
