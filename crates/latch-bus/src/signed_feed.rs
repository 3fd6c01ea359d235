//! The signed feed: how latchd signs each event it publishes and how a
//! follower (the verifier, `latch watch`) checks it before applying it.
//!
//! Each event message carries, besides the CloudEvent fields, the stored
//! record itself (`latchrecord`: the exact bytes the log hashed, holding
//! the previous hash and the event envelope), and the headers
//! `Latch-Log-Id`, `Latch-Hash` (SHA-256 of the record: the chain hash) and
//! `Latch-Signature` (over log id, position, event id and chain hash; see
//! `feed_signing`). A follower recomputes the hash from the record, checks
//! the signature, checks that the record continues its chain (its
//! `prev_hash` is the hash of the last event it applied, its position the
//! next), and applies the event decoded from the record, never from the
//! unauthenticated CloudEvent fields. Whoever lacks latchd's key can add,
//! alter, reorder or replay nothing: at worst, by withholding, they make a
//! follower stale.

use latch_core::{EventEnvelope, LogId, Position, RecordedEvent};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::batch_tree::{MAX_BATCH, MAX_PROOF, NodeHash, leaf_hash, root_and_proofs, root_from_proof};
use crate::feed_signing::{
    PublicKey, SigningError, SigningKey, TrustedKeys, batch_message, event_message,
    heartbeat_message,
};
use crate::heartbeat::Heartbeat;
use crate::{CloudEvent, headers};

/// Why a follower refused a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedRejection {
    #[error("unsigned: this follower applies only what latchd signed")]
    Unsigned,
    #[error("not a Latch event: {0}")]
    Malformed(String),
    #[error("the record does not hash to the signed chain hash")]
    HashMismatch,
    #[error(transparent)]
    Signature(#[from] SigningError),
    #[error("from log {found}, but this follower follows log {expected}")]
    OtherLog { expected: LogId, found: LogId },
    #[error("position {found} does not follow {expected}")]
    OutOfOrder { expected: Position, found: Position },
    #[error("position {0} was already applied (a replay)")]
    Replayed(Position),
    #[error("the record at {0} does not continue this follower's chain (its previous hash differs)")]
    BrokenChain(Position),
    #[error("the event's inclusion proof does not fit its batch")]
    BadProof,
    /// Signed by a trusted key, yet it shows another event at `0`, a
    /// position this follower applied (another chain hash there, or an
    /// event after it chained to another). What it applied there may never
    /// have been committed (an HA leader cut off mid-publish: core NATS
    /// subscribers see a publish the stream then refuses); only the stream
    /// can tell which is true.
    #[error("a signed message shows another event at {0}, which this follower applied")]
    Diverged(Position),
}

/// How many recent (position, chain hash) pairs a follower keeps, to tell
/// a copy of an event it applied from another event at that position.
const RECENT_HASHES: usize = 4096;

/// The record as the log stores it (the part a follower reads).
#[derive(Deserialize)]
struct Record<'a> {
    position: Position,
    version: u64,
    prev_hash: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// What a checking follower reads of an event message's payload.
#[derive(Deserialize)]
struct SignedPayload {
    latchrecord: Option<String>,
}

/// `Latch-Hash` etc. for a published event, and its payload.
#[derive(Debug, Clone)]
pub struct SignedEvent {
    pub payload: Vec<u8>,
    pub log_id: String,
    pub hash: String,
    pub signature: String,
    /// `<first>-<last>`: the batch whose Merkle root `signature` covers.
    pub batch: String,
    /// The inclusion proof in the batch (empty for a batch of one).
    pub proof: String,
}

impl SignedEvent {
    /// The headers that go with the payload: `Latch-Log-Id`, `Latch-Hash`,
    /// `Latch-Signature`, `Latch-Batch` and, in a batch of more than one,
    /// `Latch-Proof`.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (headers::LATCH_LOG_ID, self.log_id.as_str()),
            (headers::LATCH_HASH, self.hash.as_str()),
            (headers::LATCH_SIGNATURE, self.signature.as_str()),
            (headers::LATCH_BATCH, self.batch.as_str()),
            (headers::LATCH_PROOF, self.proof.as_str()),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
    }

    /// One of `headers()`, by name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find_map(|(n, value)| (n == name).then_some(value))
    }
}

/// An event as the relay reads it from the log, to be signed.
pub struct BatchEvent {
    pub recorded: RecordedEvent,
    /// The stored record's bytes (`StoredEvent::record()`).
    pub record: String,
    /// Its chain hash: SHA-256 of `record`.
    pub hash: [u8; 32],
}

/// latchd's side: the messages for a batch of consecutive events, with one
/// signature over the batch's Merkle root (see `batch_tree`). All of them
/// must be signed by `key` (a batch never spans a key rotation).
pub fn sign_batch(events: &[BatchEvent], log: LogId, key: &SigningKey) -> Vec<SignedEvent> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Vec::new();
    };
    let (first, last) = (first.recorded.position, last.recorded.position);
    let leaves: Vec<NodeHash> = events
        .iter()
        .map(|e| {
            leaf_hash(&event_message(
                log,
                e.recorded.position,
                e.recorded.envelope.id,
                &e.hash,
            ))
        })
        .collect();
    let (root, proofs) = root_and_proofs(&leaves);
    let signature = key.sign(&batch_message(log, first, last, &root));
    let batch = format!("{first}-{last}");
    let log_id = log.to_string();
    events
        .iter()
        .zip(proofs)
        .map(|(e, proof)| {
            let mut event = CloudEvent::from_recorded(&e.recorded);
            event.latchrecord = Some(e.record.clone());
            SignedEvent {
                payload: serde_json::to_vec(&event).expect("cloud events serialise"),
                log_id: log_id.clone(),
                hash: hex::encode(e.hash),
                signature: signature.clone(),
                batch: batch.clone(),
                proof: proof.iter().map(hex::encode).collect::<Vec<_>>().join(","),
            }
        })
        .collect()
}

/// The stored record an event message carries (`latchrecord`): what an HA
/// standby appends to its own log, byte for byte, once `FeedChain::accept`
/// has checked it.
pub fn signed_record(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<SignedPayload>(payload)
        .ok()?
        .latchrecord
}

/// latchd's side: the message for one event alone (a batch of one).
pub fn sign_event(
    recorded: &RecordedEvent,
    record: &str,
    hash: &[u8; 32],
    log: LogId,
    key: &SigningKey,
) -> SignedEvent {
    let event = BatchEvent {
        recorded: recorded.clone(),
        record: record.to_owned(),
        hash: *hash,
    };
    sign_batch(std::slice::from_ref(&event), log, key)
        .pop()
        .expect("one event, one message")
}

/// The first and last position of the batch an event claims to be in
/// (`Latch-Batch`), and the root its proof (`Latch-Proof`) leads to from
/// `event` (its `event_message`).
fn batch_root(
    position: Position,
    event: &[u8],
    batch: &str,
    proof: &str,
) -> Result<(Position, Position, NodeHash), FeedRejection> {
    let malformed = || FeedRejection::Malformed("Latch-Batch or Latch-Proof".into());
    let (first, last) = batch.split_once('-').ok_or_else(malformed)?;
    let (first, last): (u64, u64) = (
        first.parse().map_err(|_| malformed())?,
        last.parse().map_err(|_| malformed())?,
    );
    if !(first..=last).contains(&position.get()) || last - first >= MAX_BATCH {
        return Err(FeedRejection::BadProof);
    }
    let mut siblings = Vec::new();
    for sibling in proof.split(',').filter(|s| !s.is_empty()) {
        if siblings.len() == MAX_PROOF {
            return Err(FeedRejection::BadProof);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(sibling, &mut bytes).map_err(|_| malformed())?;
        siblings.push(bytes);
    }
    let root = root_from_proof(
        position.get() - first,
        last - first + 1,
        leaf_hash(event),
        &siblings,
    )
    .ok_or(FeedRejection::BadProof)?;
    Ok((Position::new(first), Position::new(last), root))
}

/// Checks the signature an event message carries over `(log, position,
/// event id, chain hash)` (signed with its batch, or alone as streams were
/// before batches), with nothing remembered between messages; returns the
/// key that made it. `header` reads the message's headers. (The relay
/// uses this to tell its own events in the stream from anything else.)
pub fn verify_event_signature<'h>(
    trusted: &TrustedKeys,
    header: impl Fn(&str) -> Option<&'h str>,
    log: LogId,
    position: Position,
    event: latch_core::EventId,
    hash: &[u8; 32],
) -> Result<PublicKey, FeedRejection> {
    let signature = header(headers::LATCH_SIGNATURE).ok_or(FeedRejection::Unsigned)?;
    let message = event_message(log, position, event, hash);
    Ok(match header(headers::LATCH_BATCH) {
        Some(batch) => {
            let proof = header(headers::LATCH_PROOF).unwrap_or("");
            let (first, last, root) = batch_root(position, &message, batch, proof)?;
            trusted.verify(&batch_message(log, first, last, &root), signature)?
        }
        None => trusted.verify(&message, signature)?,
    }
    .clone())
}

/// The log, position and event id an event message's headers name, when
/// its signature (`verify_event_signature`) over them and `Latch-Hash`
/// verifies; `None` for anything else. What the relay and a verifier's
/// catch-up search believe of a stream message without reading its body.
pub fn signed_headers<'h>(
    trusted: &TrustedKeys,
    header: impl Fn(&str) -> Option<&'h str> + Copy,
) -> Option<(LogId, Position, latch_core::EventId)> {
    signed_headers_cached(trusted, header, &mut SignatureCache::default())
}

/// The last batch whose signature verified, for `signed_headers_cached`:
/// the other events of that batch are checked against its root alone (a
/// few SHA-256s instead of an Ed25519 verification each). For readers that
/// see messages out of chain order (an HA standby telling the cluster's
/// events from anything else); a chain follower has `FeedChain`. Use one
/// cache with one set of trusted keys.
#[derive(Debug, Clone, Default)]
pub struct SignatureCache {
    verified: Option<VerifiedBatch>,
}

/// `signed_headers`, remembering the last batch whose signature verified.
pub fn signed_headers_cached<'h>(
    trusted: &TrustedKeys,
    header: impl Fn(&str) -> Option<&'h str> + Copy,
    cache: &mut SignatureCache,
) -> Option<(LogId, Position, latch_core::EventId)> {
    let position = Position::new(header(headers::LATCH_POSITION)?.parse().ok()?);
    let event: latch_core::EventId = header(headers::NATS_MSG_ID)?.parse().ok()?;
    let log: LogId = header(headers::LATCH_LOG_ID)?.parse().ok()?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(header(headers::LATCH_HASH)?, &mut hash).ok()?;
    let Some(batch) = header(headers::LATCH_BATCH) else {
        verify_event_signature(trusted, header, log, position, event, &hash).ok()?;
        return Some((log, position, event));
    };
    let signature = header(headers::LATCH_SIGNATURE)?;
    let message = event_message(log, position, event, &hash);
    let proof = header(headers::LATCH_PROOF).unwrap_or("");
    let (first, last, root) = batch_root(position, &message, batch, proof).ok()?;
    let known = cache.verified.as_ref().is_some_and(|verified| {
        verified.log == log && verified.first == first && verified.last == last && verified.root == root
    });
    if !known {
        let key = trusted
            .verify(&batch_message(log, first, last, &root), signature)
            .ok()?
            .clone();
        cache.verified = Some(VerifiedBatch {
            log,
            first,
            last,
            root,
            key,
        });
    }
    Some((log, position, event))
}

/// latchd's side: signs a heartbeat vouching for `position`, whose chain
/// hash is `hash`.
pub fn sign_heartbeat(heartbeat: &mut Heartbeat, log: LogId, hash: &[u8; 32], key: &SigningKey) {
    heartbeat.log_id = Some(log);
    heartbeat.hash = Some(hex::encode(hash));
    heartbeat.signature = Some(key.sign(&heartbeat_message(
        log,
        heartbeat.position,
        hash,
        heartbeat.time.timestamp_millis(),
        heartbeat.replicated,
    )));
}

/// A follower's side: what it has verified so far.
#[derive(Debug, Clone)]
pub struct FeedChain {
    trusted: TrustedKeys,
    log: Option<LogId>,
    position: Position,
    hash: [u8; 32],
    /// Whether every event must continue the last (position and previous
    /// hash). A live follower of a filtered subject (`latch watch --type`)
    /// sees only some events: it checks signatures, the log and that
    /// positions only grow.
    continuous: bool,
    /// The last batch whose signature verified: further events of it need
    /// only their inclusion proof.
    verified_batch: Option<VerifiedBatch>,
    /// The chain hashes of the last events applied, oldest first (at most
    /// `RECENT_HASHES`), when checking a continuous chain.
    recent: std::collections::VecDeque<(Position, [u8; 32])>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VerifiedBatch {
    log: LogId,
    first: Position,
    last: Position,
    root: NodeHash,
    key: PublicKey,
}

impl FeedChain {
    /// A follower that joins the live tail anywhere and may see only some
    /// events (`latch watch`): each must be signed by a trusted key, of the
    /// first log seen, at a position past the last one shown.
    pub fn live(trusted: TrustedKeys) -> Self {
        Self {
            continuous: false,
            ..Self::from_start(trusted)
        }
    }

    /// A follower reading from the first event. With no trusted keys it
    /// checks nothing and applies what the broker delivers (it logs a
    /// warning at start: the broker's permissions are all it relies on).
    pub fn from_start(trusted: TrustedKeys) -> Self {
        Self {
            trusted,
            log: None,
            position: Position::ZERO,
            hash: [0; 32],
            continuous: true,
            verified_batch: None,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// A follower that starts from a verified snapshot at `position`.
    pub fn from_snapshot(
        trusted: TrustedKeys,
        log: LogId,
        position: Position,
        hash: [u8; 32],
    ) -> Self {
        Self {
            trusted,
            log: Some(log),
            position,
            hash,
            continuous: true,
            verified_batch: None,
            recent: std::collections::VecDeque::new(),
        }
    }

    pub fn is_checking(&self) -> bool {
        !self.trusted.is_empty()
    }

    pub fn trusted(&self) -> &TrustedKeys {
        &self.trusted
    }

    pub fn position(&self) -> Position {
        self.position
    }

    pub fn log(&self) -> Option<LogId> {
        self.log
    }

    /// The chain hash of the last event applied.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The chain hash of the event applied at `position`, if it is one of
    /// the last few thousand (or the one a snapshot started from).
    pub fn hash_at(&self, position: Position) -> Option<[u8; 32]> {
        if position == self.position && position > Position::ZERO {
            return Some(self.hash);
        }
        let first = self.recent.front()?.0;
        let offset = position.get().checked_sub(first.get())?;
        self.recent
            .get(usize::try_from(offset).ok()?)
            .filter(|(at, _)| *at == position)
            .map(|(_, hash)| *hash)
    }

    /// Whether a message signed by a trusted key showing `hash` at
    /// `position` contradicts what this follower applied there.
    fn contradicts(&self, position: Position, hash: &[u8; 32]) -> bool {
        self.continuous
            && self
                .hash_at(position)
                .is_some_and(|applied| applied != *hash)
    }

    /// Checks one event message; on success the chain moves on and the
    /// event (decoded from the signed record) is returned, to be applied.
    /// `header` reads the message's headers.
    pub fn accept<'h>(
        &mut self,
        header: impl Fn(&str) -> Option<&'h str>,
        payload: &[u8],
    ) -> Result<RecordedEvent, FeedRejection> {
        if !self.is_checking() {
            let recorded = crate::decode(payload)
                .map_err(|e| FeedRejection::Malformed(e.to_string()))?;
            self.position = recorded.position;
            return Ok(recorded);
        }
        // Only the signed record counts: the other CloudEvent fields are
        // skipped unread (serde still checks they are JSON).
        let signed: SignedPayload = serde_json::from_slice(payload)
            .map_err(|e| FeedRejection::Malformed(e.to_string()))?;
        let (Some(record), Some(signature), Some(log)) = (
            signed.latchrecord.as_deref(),
            header(headers::LATCH_SIGNATURE),
            header(headers::LATCH_LOG_ID),
        ) else {
            return Err(FeedRejection::Unsigned);
        };
        let log: LogId = log
            .parse()
            .map_err(|_| FeedRejection::Malformed("Latch-Log-Id is not a log id".into()))?;
        if let Some(expected) = self.log
            && expected != log
        {
            return Err(FeedRejection::OtherLog {
                expected,
                found: log,
            });
        }
        let hash: [u8; 32] = Sha256::digest(record.as_bytes()).into();
        if header(headers::LATCH_HASH).is_some_and(|h| h != hex::encode(hash)) {
            return Err(FeedRejection::HashMismatch);
        }
        let parsed: Record<'_> = serde_json::from_str(record)
            .map_err(|e| FeedRejection::Malformed(format!("latchrecord: {e}")))?;
        let envelope: EventEnvelope = serde_json::from_str(parsed.data.get())
            .map_err(|e| FeedRejection::Malformed(format!("latchrecord data: {e}")))?;
        // A copy of an event applied is skipped unverified; another event
        // at a position applied is a replay too, unless a trusted key
        // signed it (checked below).
        let replayed = parsed.position <= self.position;
        if replayed && !self.contradicts(parsed.position, &hash) {
            return Err(FeedRejection::Replayed(parsed.position));
        }
        let key = match header(headers::LATCH_BATCH) {
            Some(batch) => self.verify_in_batch(
                log,
                parsed.position,
                &event_message(log, parsed.position, envelope.id, &hash),
                batch,
                header(headers::LATCH_PROOF).unwrap_or(""),
                signature,
            )?,
            // Signed alone (how streams were published before batches).
            None => self
                .trusted
                .verify(
                    &event_message(log, parsed.position, envelope.id, &hash),
                    signature,
                )?
                .clone(),
        };
        if replayed {
            return Err(FeedRejection::Diverged(parsed.position));
        }
        if self.continuous {
            if parsed.position != self.position.next() {
                return Err(FeedRejection::OutOfOrder {
                    expected: self.position.next(),
                    found: parsed.position,
                });
            }
            if parsed.prev_hash != hex::encode(self.hash) {
                // Signed, next, chained to another event than ours.
                return Err(if self.position > Position::ZERO {
                    FeedRejection::Diverged(self.position)
                } else {
                    FeedRejection::BrokenChain(parsed.position)
                });
            }
            if self.recent.len() == RECENT_HASHES {
                self.recent.pop_front();
            }
            self.recent.push_back((parsed.position, hash));
        }
        self.log = Some(log);
        self.position = parsed.position;
        self.hash = hash;
        // A rotation is signed by the old key and names the new one: from
        // the next event on, only the new key is trusted.
        if let latch_core::Event::SigningKeyRotated { public_key } = &envelope.event
            && let Ok(new_key) = public_key.parse()
        {
            self.trusted.add(new_key);
            self.trusted.remove(&key);
            self.verified_batch = None;
        }
        Ok(RecordedEvent {
            position: parsed.position,
            version: parsed.version,
            envelope,
        })
    }

    /// The key that signed the batch `event` (an `event_message`) claims to
    /// be in: the batch's signature is checked once, later events of the
    /// same batch only against its root.
    fn verify_in_batch(
        &mut self,
        log: LogId,
        position: Position,
        event: &[u8],
        batch: &str,
        proof: &str,
        signature: &str,
    ) -> Result<PublicKey, FeedRejection> {
        let (first, last, root) = batch_root(position, event, batch, proof)?;
        if let Some(verified) = &self.verified_batch
            && verified.log == log
            && verified.first == first
            && verified.last == last
            && verified.root == root
        {
            return Ok(verified.key.clone());
        }
        let key = self
            .trusted
            .verify(&batch_message(log, first, last, &root), signature)?
            .clone();
        self.verified_batch = Some(VerifiedBatch {
            log,
            first,
            last,
            root,
            key: key.clone(),
        });
        Ok(key)
    }

    /// Checks a heartbeat. `Ok(position)` is what it vouches for; a
    /// heartbeat for the position this follower is at must also carry its
    /// chain hash.
    pub fn vouch(&mut self, heartbeat: &Heartbeat) -> Result<Position, FeedRejection> {
        if !self.is_checking() {
            return Ok(heartbeat.position);
        }
        let (Some(log), Some(hash), Some(signature)) = (
            heartbeat.log_id,
            heartbeat.hash.as_deref(),
            heartbeat.signature.as_deref(),
        ) else {
            return Err(FeedRejection::Unsigned);
        };
        if let Some(expected) = self.log
            && expected != log
        {
            return Err(FeedRejection::OtherLog {
                expected,
                found: log,
            });
        }
        let mut hash_bytes = [0u8; 32];
        hex::decode_to_slice(hash, &mut hash_bytes)
            .map_err(|_| FeedRejection::Malformed("heartbeat hash".into()))?;
        self.trusted.verify(
            &heartbeat_message(
                log,
                heartbeat.position,
                &hash_bytes,
                heartbeat.time.timestamp_millis(),
                heartbeat.replicated,
            ),
            signature,
        )?;
        if heartbeat.position == self.position && hash_bytes != self.hash {
            return Err(if self.position > Position::ZERO && self.continuous {
                FeedRejection::Diverged(heartbeat.position)
            } else {
                FeedRejection::BrokenChain(heartbeat.position)
            });
        }
        if heartbeat.position < self.position && self.contradicts(heartbeat.position, &hash_bytes) {
            return Err(FeedRejection::Diverged(heartbeat.position));
        }
        self.log = Some(log);
        Ok(heartbeat.position)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use latch_core::{Actor, AccountId, Event, EventId};

    use super::*;

    /// A tiny log: records as the store writes them, chained.
    struct Log {
        id: LogId,
        hash: [u8; 32],
        position: u64,
    }

    impl Log {
        fn new() -> Self {
            Self {
                id: LogId::new(),
                hash: [0; 32],
                position: 0,
            }
        }

        fn next(&mut self, event: Event, key: &SigningKey) -> SignedEvent {
            let unsigned = self.append(event);
            sign_event(&unsigned.recorded, &unsigned.record, &unsigned.hash, self.id, key)
        }

        fn append(&mut self, event: Event) -> BatchEvent {
            self.position += 1;
            let envelope = EventEnvelope {
                id: EventId::new(),
                at: Utc::now(),
                actor: Actor::System,
                request_id: None,
                idempotency_key_sha256: None,
                event,
            };
            let record = serde_json::json!({
                "position": self.position,
                "stream": "s",
                "version": 1,
                "prev_hash": hex::encode(self.hash),
                "data": envelope,
            })
            .to_string();
            let hash: [u8; 32] = Sha256::digest(record.as_bytes()).into();
            self.hash = hash;
            let recorded = RecordedEvent {
                position: Position::new(self.position),
                version: 1,
                envelope,
            };
            BatchEvent {
                recorded,
                record,
                hash,
            }
        }
    }

    fn disabled(reason: &str) -> Event {
        Event::AccountDisabled {
            account_id: AccountId::new(),
            reason: reason.into(),
        }
    }

    fn accept(chain: &mut FeedChain, signed: &SignedEvent) -> Result<RecordedEvent, FeedRejection> {
        chain.accept(|name| signed.header(name), &signed.payload)
    }

    #[test]
    fn genuine_events_apply_in_order_and_forgeries_do_not() {
        let key = SigningKey::generate().unwrap();
        let mut log = Log::new();
        let mut chain = FeedChain::from_start(TrustedKeys::new([key.public_key()]));
        let first = log.next(disabled("one"), &key);
        let second = log.next(disabled("two"), &key);
        assert!(accept(&mut chain, &first).is_ok());

        // An altered copy of the second: the record no longer hashes to the
        // signed hash.
        let mut altered = SignedEvent {
            payload: String::from_utf8(second.payload.clone())
                .unwrap()
                .replace("two", "TWO")
                .into_bytes(),
            ..second.clone()
        };
        assert_eq!(
            accept(&mut chain, &altered),
            Err(FeedRejection::HashMismatch)
        );
        altered.hash = String::new();
        assert!(accept(&mut chain, &altered).is_err());

        // Signed by someone else's key.
        let forger = SigningKey::generate().unwrap();
        let mut forged_log = Log {
            id: log.id,
            hash: Sha256::digest(b"x").into(),
            position: 1,
        };
        let forged = forged_log.next(disabled("forged"), &forger);
        assert!(matches!(
            accept(&mut chain, &forged),
            Err(FeedRejection::Signature(SigningError::UnknownKey(_)))
        ));

        assert!(accept(&mut chain, &second).is_ok());
        // A replay of the first.
        assert_eq!(
            accept(&mut chain, &first),
            Err(FeedRejection::Replayed(Position::new(1)))
        );
        // Another log signed with the same key.
        let mut other = Log::new();
        let elsewhere = other.next(disabled("elsewhere"), &key);
        assert!(matches!(
            accept(&mut chain, &elsewhere),
            Err(FeedRejection::OtherLog { .. })
        ));
        assert_eq!(chain.position(), Position::new(2));
    }

    #[test]
    fn each_event_of_a_batch_verifies_against_the_batch_s_one_signature() {
        let key = SigningKey::generate().unwrap();
        let mut log = Log::new();
        let batch: Vec<BatchEvent> = (0..5).map(|i| log.append(disabled(&format!("e{i}")))).collect();
        let signed = sign_batch(&batch, log.id, &key);
        assert!(signed.iter().all(|s| s.signature == signed[0].signature));
        assert_eq!(signed[0].header(headers::LATCH_BATCH), Some("1-5"));

        // Each message verifies on its own, in a follower that saw none of
        // the others (a live follower joining mid-batch).
        let mut alone = FeedChain::live(TrustedKeys::new([key.public_key()]));
        assert_eq!(accept(&mut alone, &signed[3]).unwrap().position, Position::new(4));

        let mut chain = FeedChain::from_start(TrustedKeys::new([key.public_key()]));
        accept(&mut chain, &signed[0]).unwrap();
        // Another event's proof, a claimed batch that does not hold the
        // position, a batch one longer, a proof that is not hex: refused.
        let swapped = SignedEvent {
            proof: signed[2].proof.clone(),
            ..signed[1].clone()
        };
        assert!(accept(&mut chain, &swapped).is_err());
        let outside = SignedEvent {
            batch: "3-5".into(),
            ..signed[1].clone()
        };
        assert_eq!(accept(&mut chain, &outside), Err(FeedRejection::BadProof));
        let longer = SignedEvent {
            batch: "1-6".into(),
            ..signed[1].clone()
        };
        assert!(accept(&mut chain, &longer).is_err());
        let garbled = SignedEvent {
            proof: "zz".into(),
            ..signed[1].clone()
        };
        assert!(accept(&mut chain, &garbled).is_err());
        // A forged event carrying the genuine batch's signature and a proof
        // copied from a genuine one.
        let mut forged_log = Log {
            id: log.id,
            hash: chain.hash(),
            position: 1,
        };
        let forged = forged_log.append(disabled("forged"));
        let forged = SignedEvent {
            payload: {
                let mut event = CloudEvent::from_recorded(&forged.recorded);
                event.latchrecord = Some(forged.record.clone());
                serde_json::to_vec(&event).unwrap()
            },
            hash: hex::encode(forged.hash),
            ..signed[1].clone()
        };
        assert!(matches!(
            accept(&mut chain, &forged),
            Err(FeedRejection::Signature(SigningError::BadSignature))
        ));
        for genuine in &signed[1..] {
            accept(&mut chain, genuine).unwrap();
        }
        assert_eq!(chain.position(), Position::new(5));
    }

    #[test]
    fn a_rotation_moves_trust_to_the_new_key() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let mut log = Log::new();
        let mut chain = FeedChain::from_start(TrustedKeys::new([old.public_key()]));
        let rotation = log.next(
            Event::SigningKeyRotated {
                public_key: new.public_key().to_string(),
            },
            &old,
        );
        accept(&mut chain, &rotation).unwrap();
        let mut late_old = Log {
            id: log.id,
            hash: log.hash,
            position: log.position,
        };
        let by_old = late_old.next(disabled("old key"), &old);
        assert!(matches!(
            accept(&mut chain, &by_old),
            Err(FeedRejection::Signature(SigningError::UnknownKey(_)))
        ));
        let by_new = log.next(disabled("new key"), &new);
        assert!(accept(&mut chain, &by_new).is_ok());
    }

    /// An HA leader cut off mid-publish: core subscribers saw its event at
    /// 2 (`phantom`), the stream never took it, and the next leader wrote
    /// another event at 2. Given: a follower applied the phantom. When: a
    /// trusted key's event at 2, its successor, or a heartbeat at 2 shows
    /// the other chain. Then: `Diverged(2)`; copies of what it applied are
    /// replays, and another event at 2 signed by no trusted key is refused
    /// as a forgery, not taken as evidence.
    #[test]
    fn a_signed_event_at_an_applied_position_with_another_hash_is_divergence() {
        let key = SigningKey::generate().unwrap();
        let mut log = Log::new();
        let mut chain = FeedChain::from_start(TrustedKeys::new([key.public_key()]));
        accept(&mut chain, &log.next(disabled("one"), &key)).unwrap();
        let mut cut_off = Log {
            id: log.id,
            hash: log.hash,
            position: log.position,
        };
        let phantom = cut_off.next(disabled("phantom"), &key);
        accept(&mut chain, &phantom).unwrap();
        let true_second = log.next(disabled("true"), &key);
        let true_third = log.next(disabled("after"), &key);

        assert_eq!(
            accept(&mut chain, &phantom).map(|_| ()),
            Err(FeedRejection::Replayed(Position::new(2)))
        );
        assert_eq!(
            accept(&mut chain, &true_second).map(|_| ()),
            Err(FeedRejection::Diverged(Position::new(2)))
        );
        assert_eq!(
            accept(&mut chain, &true_third).map(|_| ()),
            Err(FeedRejection::Diverged(Position::new(2)))
        );
        let forger = SigningKey::generate().unwrap();
        let mut forged_log = Log {
            id: log.id,
            hash: chain.hash_at(Position::new(1)).unwrap(),
            position: 1,
        };
        let forged = forged_log.next(disabled("forged"), &forger);
        assert!(matches!(
            accept(&mut chain, &forged),
            Err(FeedRejection::Signature(_))
        ));
        let mut beat = Heartbeat::new(Position::new(2), Utc::now());
        sign_heartbeat(&mut beat, log.id, &true_second_hash(&true_second), &key);
        assert_eq!(chain.vouch(&beat), Err(FeedRejection::Diverged(Position::new(2))));
        // Nothing moved: the follower is where it was.
        assert_eq!(chain.position(), Position::new(2));
        assert_eq!(chain.hash_at(Position::new(2)), Some(cut_off.hash));
    }

    fn true_second_hash(event: &SignedEvent) -> [u8; 32] {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&event.hash, &mut hash).unwrap();
        hash
    }

    /// The cached check agrees with the uncached one on every message of a
    /// batch, forgeries included, and verifies the batch's signature once.
    #[test]
    fn cached_signature_checks_agree_with_uncached_ones() {
        let key = SigningKey::generate().unwrap();
        let mut log = Log::new();
        let batch: Vec<BatchEvent> = (0..5).map(|i| log.append(disabled(&format!("e{i}")))).collect();
        let signed = sign_batch(&batch, log.id, &key);
        let trusted = TrustedKeys::new([key.public_key()]);
        let mut cache = SignatureCache::default();
        for (event, message) in batch.iter().zip(&signed) {
            let headers = crate::headers::event_headers(&event.recorded, message.headers());
            let header = |name: &str| headers.get(name).map(|v| v.as_str());
            let plain = signed_headers(&trusted, header);
            assert!(plain.is_some());
            assert_eq!(signed_headers_cached(&trusted, header, &mut cache), plain);
        }
        // A forged event claiming the verified batch: its leaf does not lead
        // to the batch's root.
        let mut forged_log = Log { id: log.id, hash: [0; 32], position: 1 };
        let forged = forged_log.append(disabled("forged"));
        let headers = crate::headers::event_headers(&forged.recorded, signed[1].headers());
        let header = |name: &str| headers.get(name).map(|v| v.as_str());
        assert_eq!(signed_headers_cached(&trusted, header, &mut cache), None);
        assert_eq!(signed_headers(&trusted, header), None);
    }

    #[test]
    fn heartbeats_vouch_only_when_signed_for_this_log_and_chain() {
        let key = SigningKey::generate().unwrap();
        let mut log = Log::new();
        let mut chain = FeedChain::from_start(TrustedKeys::new([key.public_key()]));
        let first = log.next(disabled("one"), &key);
        accept(&mut chain, &first).unwrap();
        let mut beat = Heartbeat::new(Position::new(1), Utc::now());
        assert_eq!(chain.vouch(&beat), Err(FeedRejection::Unsigned));
        sign_heartbeat(&mut beat, log.id, &log.hash, &key);
        assert_eq!(chain.vouch(&beat), Ok(Position::new(1)));
        let mut wrong_hash = Heartbeat::new(Position::new(1), Utc::now());
        sign_heartbeat(&mut wrong_hash, log.id, &[9; 32], &key);
        assert_eq!(
            chain.vouch(&wrong_hash),
            Err(FeedRejection::Diverged(Position::new(1)))
        );
        let forger = SigningKey::generate().unwrap();
        let mut forged = Heartbeat::new(Position::new(5), Utc::now());
        sign_heartbeat(&mut forged, log.id, &[1; 32], &forger);
        assert!(chain.vouch(&forged).is_err());
        // Moving the time of a genuine heartbeat breaks its signature.
        let mut moved = beat.clone();
        moved.time += chrono::TimeDelta::seconds(60);
        assert!(chain.vouch(&moved).is_err());
    }
}
