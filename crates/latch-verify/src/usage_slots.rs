//! `UsageSlots`: the uses a verifier accepted since its last report, kept
//! per token in arrays indexed by the token's `TokenSlot` in the view.
//!
//! Counting a use is a few relaxed atomic operations on one 16-byte cell
//! (no lock, no map, no allocation once the cell's chunk exists), so a
//! verifier that sees a million distinct tokens between two reports pays
//! no more per check than one that sees ten. Cells come in chunks of 4,096
//! tokens, allocated the first time a token in the chunk is used: memory
//! follows the tokens in use, not the tokens that exist.
//!
//! Times are whole seconds since the verifier started, and a use that races
//! with a report may land in the next one: usage is for operators (when and
//! from where was this token last used?), never for access decisions.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};
use latch_bus::TokenUse;
use latch_core::{AccountId, TokenSlot, VerifierView};

const CHUNK: usize = 4096;
/// `from` of a cell whose last source is IPv6 (kept in `v6_from`).
const FROM_V6: u32 = u32::MAX;

/// One token's uses since the last report. `count` 0: unused.
#[derive(Default)]
struct Cell {
    count: AtomicU32,
    /// Seconds since `started` (+1, so 0 means unset).
    first: AtomicU32,
    last: AtomicU32,
    /// 0: no source known; an IPv4 address; `FROM_V6`.
    from: AtomicU32,
}

type Chunk = Box<[Cell]>;

pub(crate) struct UsageSlots {
    started: DateTime<Utc>,
    chunks: Vec<OnceLock<Chunk>>,
    v6_from: Mutex<HashMap<u32, Ipv6Addr>>,
}

impl UsageSlots {
    pub(crate) fn new(started: DateTime<Utc>) -> Self {
        Self {
            started,
            chunks: Vec::new(),
            v6_from: Mutex::new(HashMap::new()),
        }
    }

    /// Makes room for slots `0..tokens` (the view grew).
    pub(crate) fn cover(&mut self, tokens: usize) {
        let needed = tokens.div_ceil(CHUNK);
        if self.chunks.len() < needed {
            self.chunks.resize_with(needed, OnceLock::new);
        }
    }

    /// Counts one accepted use of the token in `slot`.
    pub(crate) fn record(&self, slot: TokenSlot, now: DateTime<Utc>, source: Option<IpAddr>) {
        let Some(chunk) = self.chunks.get(slot.index() / CHUNK) else {
            return; // the view grew and `cover` has not run yet: best effort
        };
        let cell = &chunk.get_or_init(new_chunk)[slot.index() % CHUNK];
        let second = self.second_of(now);
        if cell.count.fetch_add(1, Ordering::Relaxed) == 0 {
            cell.first.store(second, Ordering::Relaxed);
        }
        // Plain loads and stores, not read-modify-writes: a racing check may
        // leave `last` a second behind, which usage reporting tolerates.
        if cell.last.load(Ordering::Relaxed) < second {
            cell.last.store(second, Ordering::Relaxed);
        }
        match source.map(|ip| ip.to_canonical()) {
            None => {}
            Some(IpAddr::V4(v4)) => {
                let v4 = u32::from(v4);
                if cell.from.load(Ordering::Relaxed) != v4 {
                    cell.from.store(v4, Ordering::Relaxed);
                }
            }
            Some(IpAddr::V6(v6)) => {
                let index = slot.index() as u32;
                self.v6_from
                    .lock()
                    .expect("usage v6 lock")
                    .insert(index, v6);
                cell.from.store(FROM_V6, Ordering::Relaxed);
            }
        }
    }

    /// Takes the uses recorded in chunk `chunk` (resetting them), with the
    /// token and account each belongs to by `view`. `None` past the last
    /// chunk. Taken a chunk at a time so that a reporter holds the
    /// verifier's read lock only briefly.
    pub(crate) fn take_chunk(
        &self,
        chunk: usize,
        view: &VerifierView,
    ) -> Option<Vec<(AccountId, TokenUse)>> {
        let cells = self.chunks.get(chunk)?;
        let Some(cells) = cells.get() else {
            return Some(Vec::new());
        };
        let mut taken = Vec::new();
        for (offset, cell) in cells.iter().enumerate() {
            if cell.count.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let index = chunk * CHUNK + offset;
            let count = cell.count.swap(0, Ordering::Relaxed);
            let first = cell.first.swap(0, Ordering::Relaxed);
            let last = cell.last.swap(0, Ordering::Relaxed);
            let from = cell.from.swap(0, Ordering::Relaxed);
            let Some((token_id, account_id)) = view.token_in_slot(TokenSlot::from_index(index))
            else {
                continue;
            };
            let last_from = match from {
                0 => None,
                FROM_V6 => self
                    .v6_from
                    .lock()
                    .expect("usage v6 lock")
                    .remove(&(index as u32))
                    .map(IpAddr::V6),
                v4 => Some(IpAddr::V4(v4.into())),
            };
            let last_at = self.time_of(last);
            taken.push((
                account_id,
                TokenUse {
                    token_id,
                    count: u64::from(count),
                    first_at: if first == 0 {
                        last_at
                    } else {
                        self.time_of(first)
                    }
                    .min(last_at),
                    last_at,
                    last_from,
                },
            ));
        }
        Some(taken)
    }

    fn second_of(&self, now: DateTime<Utc>) -> u32 {
        let seconds = (now - self.started)
            .num_seconds()
            .clamp(0, i64::from(u32::MAX - 1));
        seconds as u32 + 1
    }

    fn time_of(&self, second: u32) -> DateTime<Utc> {
        self.started + TimeDelta::seconds(i64::from(second.saturating_sub(1)))
    }
}

fn new_chunk() -> Chunk {
    (0..CHUNK).map(|_| Cell::default()).collect()
}
