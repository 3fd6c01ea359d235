//! The activity index hands out exactly the records a scan of every record
//! finds: a property test over generated activity (records written before
//! and after the indexer was installed, overwritten with other keys, and
//! pruned), on a real RocksDB store, read page by page, writable and
//! read-only.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latch_audit::{ActivityOf, ActivityRecord, ActivityRecordIndexer};
use latch_core::{AccountId, TokenId};
use latch_store::EventStore;
use proptest::prelude::*;

const ACCOUNTS: usize = 4;
const TOKENS: usize = 6;

/// Who a generated record is about (indices into fixed accounts and
/// tokens; `None` for an unauthenticated request).
type About = (Option<usize>, Option<usize>);

fn about() -> impl Strategy<Value = About> {
    (
        proptest::option::of(0..ACCOUNTS),
        proptest::option::of(0..TOKENS),
    )
}

struct Ids {
    accounts: Vec<AccountId>,
    tokens: Vec<TokenId>,
}

fn record(ids: &Ids, n: usize, (account, token): About) -> ActivityRecord {
    ActivityRecord {
        id: uuid::Uuid::from_u128(n as u128 + 1),
        at: Utc.timestamp_opt(1_780_000_000 + n as i64, 0).unwrap(),
        request_id: format!("req-{n}"),
        method: "GET".into(),
        route: "/v1/tokens/{id}".into(),
        path: format!("/v1/tokens/{n}"),
        remote_addr: "127.0.0.1:9".into(),
        account_id: account.map(|a| ids.accounts[a]),
        token_id: token.map(|t| ids.tokens[t]),
        status: Some(200),
        duration_us: Some(n as u64),
        verifier_uses: None,
    }
}

fn questions(ids: &Ids) -> Vec<ActivityOf> {
    let mut all: Vec<_> = ids.accounts.iter().map(|a| ActivityOf::Account(*a)).collect();
    all.extend(ids.tokens.iter().map(|t| ActivityOf::Token(*t)));
    all.push(ActivityOf::Token(TokenId::new()));
    all.push(ActivityOf::Account(AccountId::new()));
    all
}

/// What a scan of every record finds about `of`.
fn scanned(store: &EventStore, of: ActivityOf) -> Vec<String> {
    let mut found = Vec::new();
    ActivityRecord::scan(store, None, |record| {
        if of.matches(record.account_id, record.token_id) {
            found.push(serde_json::to_string(&record).unwrap());
        }
        true
    })
    .unwrap();
    found
}

/// What `scan_of` hands out about `of`, `page` records at a time.
fn paged(store: &EventStore, of: ActivityOf, page: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let mut this_page = Vec::new();
        ActivityRecord::scan_of(store, of, after, |record| {
            this_page.push(record);
            this_page.len() < page
        })
        .unwrap();
        let Some(last) = this_page.last() else {
            return found;
        };
        after = Some(last.id);
        found.extend(this_page.iter().map(|r| serde_json::to_string(r).unwrap()));
    }
}

fn check(store: &EventStore, ids: &Ids) {
    for of in questions(ids) {
        let expected = scanned(store, of);
        for page in [1, 3, 1000] {
            assert_eq!(paged(store, of, page), expected, "{of:?}, {page} a page");
        }
    }
}

fn check_activity(before: Vec<About>, after: Vec<About>, overwrites: Vec<(usize, About)>, prune: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ids = Ids {
        accounts: (0..ACCOUNTS).map(|_| AccountId::new()).collect(),
        tokens: (0..TOKENS).map(|_| TokenId::new()).collect(),
    };
    let store = Arc::new(EventStore::open(dir.path()).unwrap());
    let mut written = Vec::new();
    // An older latchd's records, with no index.
    for about in before {
        let record = record(&ids, written.len(), about);
        record.store(&store).unwrap();
        written.push(record);
    }
    assert!(!store.activity_index_is_complete(ActivityRecordIndexer::VERSION).unwrap());
    check(&store, &ids);
    let indexing = store.index_activity_with(Arc::new(ActivityRecordIndexer)).unwrap();
    assert_eq!(indexing.wait().unwrap(), written.len() as u64);
    assert!(store.activity_index_is_complete(ActivityRecordIndexer::VERSION).unwrap());
    for about in after {
        let record = record(&ids, written.len(), about);
        record.store(&store).unwrap();
        written.push(record);
    }
    // A request's record is written when it starts and again when it
    // ends, by then knowing (or no longer claiming) its caller.
    for (which, about) in overwrites {
        if !written.is_empty() {
            let n = which % written.len();
            let mut again = record(&ids, n, about);
            again.status = Some(403);
            again.store(&store).unwrap();
        }
    }
    check(&store, &ids);
    if !written.is_empty() {
        let end = *written[prune % written.len()].id.as_bytes();
        store.delete_activity_before(end).unwrap();
    }
    check(&store, &ids);
    drop(store);

    let read_only = EventStore::open_read_only(dir.path()).unwrap();
    assert!(read_only.activity_index_is_complete(ActivityRecordIndexer::VERSION).unwrap());
    check(&read_only, &ids);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_indexed_activity_answer_is_the_answer_a_scan_of_every_record_gives(
        before in proptest::collection::vec(about(), 0..12),
        after in proptest::collection::vec(about(), 0..40),
        overwrites in proptest::collection::vec((0usize..64, about()), 0..10),
        prune in 0usize..64,
    ) {
        check_activity(before, after, overwrites, prune);
    }
}
