//! The last event of this cluster's log that the replicated stream holds,
//! found by walking back from the stream's last message past anything no
//! latchd of the cluster signed.

use async_nats::jetstream::{self, stream::Stream};
use latch_bus::TrustedKeys;
use latch_core::{LogId, Position};

use super::{HaError, nats};

/// How far back past foreign messages the search looks.
const MOST_SKIPPED: u64 = 4096;

/// A genuine event in the stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamEvent {
    pub log: LogId,
    pub position: Position,
}

/// The stream's last sequence, and its last genuine event (if any).
pub async fn last_event(
    stream: &mut Stream,
    trusted: &TrustedKeys,
) -> Result<(u64, Option<StreamEvent>), HaError> {
    let state = stream.info().await.map_err(nats)?.state.clone();
    if state.messages == 0 {
        return Ok((state.last_sequence, None));
    }
    let lowest = state
        .first_sequence
        .max(state.last_sequence.saturating_sub(MOST_SKIPPED))
        .max(1);
    let mut sequence = state.last_sequence;
    while sequence >= lowest {
        match stream.get_raw_message(sequence).await {
            Ok(message) => {
                let header = |name: &str| message.headers.get(name).map(|v| v.as_str());
                if let Some((log, position, _)) = latch_bus::signed_headers(trusted, header) {
                    return Ok((state.last_sequence, Some(StreamEvent { log, position })));
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) => {}
            Err(error) => return Err(nats(error)),
        }
        sequence -= 1;
    }
    Ok((state.last_sequence, None))
}
