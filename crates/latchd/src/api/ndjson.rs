//! Streamed response bodies: what a blocking producer writes (an export,
//! a replayed state, a token's story) goes to the client as it is written,
//! never collected. A client that goes away makes the next write fail, so
//! the producer stops.

use axum::response::{IntoResponse, Response};
use serde::Serialize;

const CONTENT_TYPE: &str = "application/x-ndjson";

/// Runs `produce` on a blocking thread, streaming what it writes as an
/// `application/x-ndjson` body. An error part way is logged and cuts the
/// body short (the status is already sent), which NDJSON readers see as a
/// missing closing line or a read error.
pub fn stream(
    produce: impl FnOnce(&mut dyn std::io::Write) -> Result<(), String> + Send + 'static,
) -> Response {
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter(sender.clone()));
        let result = produce(&mut out)
            .and_then(|()| std::io::Write::flush(&mut out).map_err(|e| e.to_string()));
        if let Err(error) = result {
            tracing::warn!(%error, "a streamed response failed part way");
            let _ = sender.blocking_send(Err(std::io::Error::other(error)));
        }
    });
    let body = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    (
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// Writes `value` as one NDJSON line; `false` once the client is gone.
pub fn line(out: &mut dyn std::io::Write, value: &impl Serialize) -> bool {
    serde_json::to_writer(&mut *out, value).is_ok() && out.write_all(b"\n").is_ok()
}

/// Hands written bytes to the response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
