//! `TokenTable`: every token the state knows, in issue (log) order, with
//! the lookups built from them: by digest (every verifier check), by id,
//! by account and each token's children.
//!
//! Tokens are never removed, so they sit in fixed-size chunks of
//! `CHUNK` and a token's slot is its place in issue order: a table that
//! grows never moves the tokens it holds, and a lookup is a 4-byte slot,
//! where maps keyed by digest held each ~300-byte token in a hash table
//! sized for growth.
//!
//! Only the tokens are written; the lookups are rebuilt when a table is
//! read, which costs less than reading them. In a binary format (latchd's
//! checkpoints are postcard), each chunk is written as bytes of its own,
//! so that a reader decodes the chunks on all its cores at once: the
//! checkpoint every investigation starts from is mostly tokens.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::thread;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Error as _, Serialize, SerializeSeq, Serializer};

use crate::id::{AccountId, TokenId};
use crate::random_key_hasher::RandomKeys;
use crate::sharded_index::ShardedIndex;
use crate::token::Token;
use crate::token_digest::TokenDigest;

/// Tokens a chunk holds (about 20 MB of them): the unit of a read on one
/// core. (Unit tests use small chunks, to run the paths of many chunks
/// over a few hundred tokens.)
const CHUNK: usize = if cfg!(test) { 64 } else { 1 << 16 };

#[derive(Debug, Clone, Default)]
pub(crate) struct TokenTable {
    /// Full chunks of `CHUNK` tokens, then the one being filled.
    chunks: Vec<Vec<Token>>,
    by_digest: ShardedIndex<TokenDigest, u32>,
    by_id: ShardedIndex<TokenId, u32>,
    /// Each account's tokens, in id order.
    by_account: ShardedIndex<AccountId, Vec<u32>>,
    /// The tokens exchanged from each token, in issue order.
    children: HashMap<TokenId, Vec<TokenId>, RandomKeys>,
}

impl TokenTable {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn get(&self, id: TokenId) -> Option<&Token> {
        self.by_id.get(&id).map(|&slot| token_at(&self.chunks, slot))
    }

    pub(crate) fn get_mut(&mut self, id: TokenId) -> Option<&mut Token> {
        let slot = *self.by_id.get(&id)?;
        Some(&mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK])
    }

    pub(crate) fn by_digest(&self, digest: &TokenDigest) -> Option<&Token> {
        self.by_digest.get(digest).map(|&slot| token_at(&self.chunks, slot))
    }

    /// An account's tokens, in id order.
    pub(crate) fn of_account(&self, account: AccountId) -> impl Iterator<Item = &Token> {
        self.by_account
            .get(&account)
            .into_iter()
            .flatten()
            .map(|&slot| token_at(&self.chunks, slot))
    }

    /// The tokens exchanged from `id`, in issue order.
    pub(crate) fn children_of(&self, id: TokenId) -> &[TokenId] {
        self.children.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Every token, in issue order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Token> {
        self.chunks.iter().flatten()
    }

    /// Adds a newly issued token. `decide` never issues a token whose id
    /// or digest is taken; should a log hold one anyway, the first keeps
    /// them and the second is skipped, as `evolve` skips what it cannot
    /// apply.
    pub(crate) fn insert(&mut self, token: Token) {
        if self.by_id.contains_key(&token.id) || self.by_digest.contains_key(&token.digest) {
            return;
        }
        let Ok(slot) = u32::try_from(self.len()) else {
            return;
        };
        if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK) {
            self.chunks.push(Vec::new());
        }
        // A child of a token issued before it only (`decide` exchanges only
        // from a live token): the links never make a cycle to walk forever.
        if let Some(parent) = token.parent.filter(|parent| self.by_id.contains_key(parent)) {
            self.children.entry(parent).or_default().push(token.id);
        }
        self.by_digest.insert_new(token.digest, slot);
        self.by_id.insert_new(token.id, slot);
        index_account(&mut self.by_account, &self.chunks, &token, slot);
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(token);
        }
    }

    /// A table of the tokens in issue order (a human-readable input).
    fn from_tokens(tokens: Vec<Token>) -> Result<Self, &'static str> {
        let mut chunks = Vec::with_capacity(tokens.len().div_ceil(CHUNK));
        let mut tokens = tokens.into_iter().peekable();
        while tokens.peek().is_some() {
            chunks.push(tokens.by_ref().take(CHUNK).collect());
        }
        Self::from_chunks(chunks)
    }

    /// A table of chunks as written (each full but the last), with the
    /// lookups rebuilt; for a large table, half of them on a thread of its
    /// own while this one builds the other half. Two tokens with one id
    /// or one digest mean the bytes are not a table Latch wrote.
    fn from_chunks(chunks: Vec<Vec<Token>>) -> Result<Self, &'static str> {
        let shaped = chunks
            .iter()
            .enumerate()
            .all(|(at, chunk)| chunk.len() == CHUNK || (at + 1 == chunks.len() && !chunk.is_empty()));
        if !shaped {
            return Err("a token table whose chunks are not full");
        }
        let len = chunks.iter().map(Vec::len).sum::<usize>();
        let len = u32::try_from(len).map_err(|_| "a token table of more than 2³² tokens")?;
        let tokens = || (0..).zip(chunks.iter().flatten());
        // Two halves of about equal work, one on a thread of its own: the
        // digests and each account's tokens; the ids and each token's
        // children (which needs the ids).
        let digests_and_accounts = || {
            let by_digest = ShardedIndex::build(len as usize, tokens().map(|(slot, token)| (token.digest, slot)))
                .map_err(|_| "a token table with two tokens of one digest")?;
            let mut by_account = ShardedIndex::default();
            for (slot, token) in tokens() {
                index_account(&mut by_account, &chunks, token, slot);
            }
            Ok::<_, &'static str>((by_digest, by_account))
        };
        let ids_and_children = || {
            let by_id = ShardedIndex::build(len as usize, tokens().map(|(slot, token)| (token.id, slot)))
                .map_err(|_| "a token table with two tokens of one id")?;
            let mut children: HashMap<TokenId, Vec<TokenId>, RandomKeys> = HashMap::default();
            for (slot, token) in tokens() {
                // As `insert`: a child of a token issued before it only.
                if let Some(parent) = token
                    .parent
                    .filter(|parent| by_id.get(parent).is_some_and(|&at| at < slot))
                {
                    children.entry(parent).or_default().push(token.id);
                }
            }
            Ok::<_, &'static str>((by_id, children))
        };
        let (first, second) = if chunks.len() > 1 {
            thread::scope(|scope| {
                let first = thread::Builder::new().spawn_scoped(scope, digests_and_accounts);
                let second = ids_and_children();
                let first = match first {
                    Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    // No thread to be had (a process limit): this one builds it.
                    Err(_) => digests_and_accounts(),
                };
                (first, second)
            })
        } else {
            (digests_and_accounts(), ids_and_children())
        };
        let ((by_digest, by_account), (by_id, children)) = (first?, second?);
        Ok(Self {
            chunks,
            by_digest,
            by_id,
            by_account,
            children,
        })
    }
}

/// Adds `slot` to its account's tokens, keeping them in id order (ids
/// grow with issue order, so this is nearly always a push).
fn index_account(
    by_account: &mut ShardedIndex<AccountId, Vec<u32>>,
    chunks: &[Vec<Token>],
    token: &Token,
    slot: u32,
) {
    let slots = by_account.get_or_default(token.account_id);
    // The last token first: a binary search would touch a dozen tokens
    // spread over the table (a cache miss each) for what is a push.
    if slots.last().is_none_or(|&last| token_at(chunks, last).id < token.id) {
        slots.push(slot);
        return;
    }
    let at = slots.partition_point(|&held| token_at(chunks, held).id < token.id);
    slots.insert(at, slot);
}

/// The token at `slot`.
fn token_at(chunks: &[Vec<Token>], slot: u32) -> &Token {
    &chunks[slot as usize / CHUNK][slot as usize % CHUNK]
}

impl PartialEq for TokenTable {
    /// The same tokens in the same order: the lookups follow from them.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for TokenTable {}

impl Serialize for TokenTable {
    /// Human-readable: the tokens in issue order. Binary: each chunk as
    /// bytes of its own (postcard), encoded on all cores.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.collect_seq(self.iter());
        }
        let encoded = on_all_cores(&self.chunks, |chunk: &Vec<Token>| postcard::to_stdvec(chunk))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(S::Error::custom)?;
        let mut seq = serializer.serialize_seq(Some(encoded.len()))?;
        for bytes in &encoded {
            seq.serialize_element(&ChunkBytes(bytes))?;
        }
        seq.end()
    }
}

/// A chunk's encoding, written as bytes (not as a sequence of numbers).
struct ChunkBytes<'a>(&'a [u8]);

impl Serialize for ChunkBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for TokenTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let tokens = Vec::<Token>::deserialize(deserializer)?;
            return TokenTable::from_tokens(tokens).map_err(de::Error::custom);
        }
        let encoded = Vec::<EncodedChunk<'de>>::deserialize(deserializer)?;
        let chunks = on_all_cores(&encoded, |bytes: &EncodedChunk<'de>| {
            postcard::from_bytes::<Chunk>(&bytes.0).map(|chunk| chunk.0)
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(de::Error::custom)?;
        TokenTable::from_chunks(chunks).map_err(de::Error::custom)
    }
}

/// A chunk's bytes as the input holds them: borrowed where it can
/// (serde's own `Cow` always copies).
struct EncodedChunk<'de>(Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for EncodedChunk<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = EncodedChunk<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("the bytes of a token chunk")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Self::Value, E> {
                Ok(EncodedChunk(Cow::Borrowed(bytes)))
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
                Ok(EncodedChunk(Cow::Owned(bytes.to_vec())))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Self::Value, E> {
                Ok(EncodedChunk(Cow::Owned(bytes)))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// One chunk's tokens, read into a vector of exactly their number (up to
/// `CHUNK`; serde's own would grow it by doubling from a capped guess).
struct Chunk(Vec<Token>);

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChunkVisitor;
        impl<'de> Visitor<'de> for ChunkVisitor {
            type Value = Chunk;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a chunk of tokens")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Chunk, A::Error> {
                let mut tokens = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(CHUNK));
                while let Some(token) = seq.next_element::<Token>()? {
                    if tokens.len() == CHUNK {
                        return Err(de::Error::invalid_length(CHUNK + 1, &self));
                    }
                    tokens.push(token);
                }
                Ok(Chunk(tokens))
            }
        }
        deserializer.deserialize_seq(ChunkVisitor)
    }
}

/// `work` applied to each item, the items split into as many contiguous
/// parts as there are cores, each part on a thread of its own (or on this
/// one when none can be had); the results in the items' order.
fn on_all_cores<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let work = &work;
    let part_of = move |part: &[T]| part.iter().map(work).collect::<Vec<R>>();
    thread::scope(|scope| {
        let running: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| (part, thread::Builder::new().spawn_scoped(scope, move || part_of(part))))
            .collect();
        running
            .into_iter()
            .flat_map(|(part, spawned)| match spawned {
                Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No thread to be had (a process limit): this one does its part.
                Err(_) => part_of(part),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::actor::Actor;
    use crate::permission_set::PermissionSet;

    fn token(id: u128, account: u128, parent: Option<u128>) -> Token {
        Token {
            id: TokenId::from_uuid(Uuid::from_u128(id)),
            account_id: AccountId::from_uuid(Uuid::from_u128(account)),
            name: format!("token-{id}"),
            scopes: PermissionSet::parse(["certificates:read"]).unwrap(),
            digest: TokenDigest::of(&format!("secret-{id}")),
            issued_at: Utc.timestamp_opt(1_700_000_000 + id as i64, 0).unwrap(),
            issued_by: Actor::System,
            expires_at: None,
            allowed_cidrs: Vec::new(),
            revoked: None,
            rotated_from: None,
            rotated_to: None,
            parent: parent.map(|p| TokenId::from_uuid(Uuid::from_u128(p))),
            trust_policy: None,
            expiring_noted: false,
            expired_noted: false,
            rotation_due_noted: false,
            reuse_detected_at: None,
            version: 1,
        }
    }

    fn id(n: u128) -> TokenId {
        TokenId::from_uuid(Uuid::from_u128(n))
    }

    fn account(n: u128) -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(n))
    }

    fn ids<'a>(tokens: impl Iterator<Item = &'a Token>) -> Vec<TokenId> {
        tokens.map(|t| t.id).collect()
    }

    /// More than a chunk: the chunked paths (several chunks, decoded on
    /// several threads, lookups rebuilt on two) all run.
    fn large_table() -> TokenTable {
        let mut table = TokenTable::default();
        for n in 1..=(3 * CHUNK as u128 + 10) {
            table.insert(token(n, n % 7, (n % 5 == 0).then(|| n - 1)));
        }
        table
    }

    fn assert_lookups_agree(table: &TokenTable, other: &TokenTable) {
        assert_eq!(table.len(), other.len());
        for token in table.iter() {
            assert_eq!(other.get(token.id), Some(token));
            assert_eq!(other.by_digest(&token.digest), Some(token));
            assert_eq!(ids(other.of_account(token.account_id)), ids(table.of_account(token.account_id)));
            assert_eq!(other.children_of(token.id), table.children_of(token.id));
        }
    }

    #[test]
    fn tokens_are_found_by_id_digest_account_and_parent() {
        let mut table = TokenTable::default();
        // Issued out of id order (another leader's clock): the account
        // still lists its tokens by id.
        table.insert(token(30, 1, None));
        table.insert(token(10, 1, None));
        table.insert(token(20, 2, Some(30)));
        table.insert(token(40, 1, Some(30)));
        assert_eq!(table.len(), 4);
        assert_eq!(ids(table.iter()), [id(30), id(10), id(20), id(40)]);
        assert_eq!(ids(table.of_account(account(1))), [id(10), id(30), id(40)]);
        assert_eq!(ids(table.of_account(account(2))), [id(20)]);
        assert_eq!(table.children_of(id(30)), [id(20), id(40)]);
        assert_eq!(table.by_digest(&TokenDigest::of("secret-20")).map(|t| t.id), Some(id(20)));
        assert!(table.get(id(99)).is_none());
        table.get_mut(id(10)).unwrap().version = 7;
        assert_eq!(table.get(id(10)).unwrap().version, 7);
    }

    #[test]
    fn a_parent_is_linked_only_when_issued_before_its_child() {
        // Its own parent, and the parent of a token issued before it: no
        // link either way (read back too), so no walk of descendants loops.
        let mut table = TokenTable::default();
        table.insert(token(1, 1, Some(1)));
        table.insert(token(2, 1, Some(3)));
        table.insert(token(3, 1, Some(2)));
        table.insert(token(4, 1, Some(3)));
        assert!(table.children_of(id(1)).is_empty());
        assert_eq!(table.children_of(id(2)), [id(3)]);
        assert_eq!(table.children_of(id(3)), [id(4)]);
        let read: TokenTable = postcard::from_bytes(&postcard::to_stdvec(&table).unwrap()).unwrap();
        for n in 1..=4 {
            assert_eq!(read.children_of(id(n)), table.children_of(id(n)));
        }
    }

    #[test]
    fn a_second_token_with_a_known_id_or_digest_is_skipped() {
        let mut table = TokenTable::default();
        table.insert(token(1, 1, None));
        let mut same_id = token(1, 2, None);
        same_id.digest = TokenDigest::of("another");
        table.insert(same_id);
        let mut same_digest = token(2, 2, None);
        same_digest.digest = TokenDigest::of("secret-1");
        table.insert(same_digest);
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(id(1)).unwrap().account_id, account(1));
        assert!(table.get(id(2)).is_none());
        assert_eq!(table.of_account(account(2)).count(), 0);
    }

    #[test]
    fn a_large_table_round_trips_in_chunks_and_as_json() {
        let table = large_table();
        assert_eq!(table.chunks.len(), 4);
        let bytes = postcard::to_stdvec(&table).unwrap();
        let read: TokenTable = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, table);
        assert_lookups_agree(&table, &read);
        // Growing a table read back carries on in its last chunk.
        let mut read = read;
        read.insert(token(1_000_000, 3, Some(5)));
        assert_eq!(read.chunks.len(), 4);
        assert_eq!(read.children_of(id(5)).last(), Some(&id(1_000_000)));

        let json = serde_json::to_string(&table).unwrap();
        let read: TokenTable = serde_json::from_str(&json).unwrap();
        assert_eq!(read, table);
        assert_lookups_agree(&table, &read);
    }

    fn encode_chunks(chunks: &[Vec<Token>]) -> Vec<u8> {
        let encoded: Vec<Vec<u8>> = chunks.iter().map(|c| postcard::to_stdvec(c).unwrap()).collect();
        postcard::to_stdvec(&encoded.iter().map(|b| ChunkBytes(b)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn bytes_latch_never_writes_are_refused() {
        let table = large_table();
        let chunks = table.chunks.clone();
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&chunks)).is_ok());

        // Two tokens with one digest, or one id: lookups would disagree.
        // (Added to the last chunk, which has room: the table's shape is
        // right, so only the lookups can refuse them.)
        let last = chunks.len() - 1;
        let mut fresh = chunks.clone();
        let mut copy = fresh[1][0].clone();
        copy.id = id(9_999_999);
        copy.digest = TokenDigest::of("fresh");
        fresh[last].push(copy);
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&fresh)).is_ok());
        let mut twice = chunks.clone();
        let mut copy = twice[1][0].clone();
        copy.id = id(9_999_999);
        twice[last].push(copy);
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&twice)).is_err());
        let mut twice = chunks.clone();
        let mut copy = twice[1][0].clone();
        copy.digest = TokenDigest::of("fresh");
        twice[last].push(copy);
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&twice)).is_err());

        // A short chunk before the last: slots would not be places.
        let mut short = chunks.clone();
        short[0].pop();
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&short)).is_err());
        // A chunk longer than a chunk.
        let mut long = chunks.clone();
        let spill = long.pop().unwrap();
        long[0].extend(spill);
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&long)).is_err());
        // An empty last chunk, and bytes that are not tokens at all.
        let mut empty = chunks;
        empty.push(Vec::new());
        assert!(postcard::from_bytes::<TokenTable>(&encode_chunks(&empty)).is_err());
        let garbage = postcard::to_stdvec(&vec![ChunkBytes(b"not tokens")]).unwrap();
        assert!(postcard::from_bytes::<TokenTable>(&garbage).is_err());
    }
}
