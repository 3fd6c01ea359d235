//! `serve`: latchd's HTTP(S) server, with the limits that keep clients
//! without a token from holding it:
//!
//! - at most `max_connections` open connections, and
//!   `max_connections_per_source` from one address (IPv6: one /64); a
//!   connection beyond either is closed as soon as it is accepted;
//! - a connection must send its first bytes (TLS: after the handshake,
//!   which has its own 10 s limit) and every HTTP/1 request head within
//!   `header_read_timeout`; an idle keep-alive connection is closed after
//!   it too. Bodies have their own limit (`RequestLimits`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::api::SourceKey;

/// Bytes a connection must send within the header read timeout before
/// hyper's own HTTP/1 head timer takes over: the HTTP/2 preface is 24
/// bytes, and until hyper has read them (or a byte that is not the
/// preface) it waits with no timer of its own.
const FIRST_BYTES: usize = 24;

#[derive(Debug, Clone, Copy)]
pub struct HttpServerLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
}

/// Serves `router` on `listener` (HTTPS with `tls`) until `handle` says stop.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    handle: axum_server::Handle<SocketAddr>,
    router: axum::Router,
    limits: HttpServerLimits,
) -> io::Result<()> {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let open = Arc::new(OpenConnections::new(limits));
    match tls {
        Some(tls) => {
            let acceptor = ConnectionCap {
                inner: RustlsAcceptor::new(tls),
                open,
            };
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .handle(handle);
            configure(server.http_builder(), limits);
            server.serve(service).await
        }
        None => {
            let acceptor = ConnectionCap {
                inner: DefaultAcceptor,
                open,
            };
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .handle(handle);
            configure(server.http_builder(), limits);
            server.serve(service).await
        }
    }
}

fn configure(builder: &mut Builder<TokioExecutor>, limits: HttpServerLimits) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(limits.header_read_timeout);
}

/// Who holds the open connections.
struct OpenConnections {
    limits: HttpServerLimits,
    counts: Mutex<Counts>,
    refused: AtomicU64,
    /// When a refusal was last logged (seconds since `started`), so a flood
    /// of refusals is logged once a minute.
    last_warned: AtomicU64,
    started: Instant,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only sources with an open connection: at most `max_connections`.
    by_source: HashMap<SourceKey, usize>,
}

impl OpenConnections {
    fn new(limits: HttpServerLimits) -> Self {
        Self {
            limits,
            counts: Mutex::new(Counts::default()),
            refused: AtomicU64::new(0),
            last_warned: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a connection from `source`, or `None` when it must be
    /// refused.
    fn admit(self: &Arc<Self>, source: SourceKey) -> Option<ConnectionSlot> {
        let mut counts = self.lock();
        let from_source = counts.by_source.get(&source).copied().unwrap_or(0);
        if counts.total >= self.limits.max_connections
            || from_source >= self.limits.max_connections_per_source
        {
            let (total, from_source) = (counts.total, from_source);
            drop(counts);
            self.refused(total, from_source);
            return None;
        }
        counts.total += 1;
        counts.by_source.insert(source, from_source + 1);
        Some(ConnectionSlot {
            open: self.clone(),
            source,
        })
    }

    fn refused(&self, total: usize, from_source: usize) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_secs() + 60;
        let last = self.last_warned.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                open = total,
                open_from_source = from_source,
                max_connections = self.limits.max_connections,
                max_connections_per_source = self.limits.max_connections_per_source,
                refused_so_far = refused,
                "HTTP: connection limit reached; closing new connections (logged at most once a minute)"
            );
        }
    }

    fn release(&self, source: SourceKey) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                counts.by_source.remove(&source);
            }
        }
    }
}

/// An open connection's place; given back when the connection is dropped.
struct ConnectionSlot {
    open: Arc<OpenConnections>,
    source: SourceKey,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.release(self.source);
    }
}

/// Admits a connection (or closes it) before `inner` (TLS) sees it.
#[derive(Clone)]
struct ConnectionCap<A> {
    inner: A,
    open: Arc<OpenConnections>,
}

type Accepting<S, V> = Pin<Box<dyn Future<Output = io::Result<(CappedStream<S>, V)>> + Send>>;

impl<A, S> Accept<TcpStream, S> for ConnectionCap<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = CappedStream<A::Stream>;
    type Service = A::Service;
    type Future = Accepting<A::Stream, A::Service>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let source = match stream.peer_addr() {
            Ok(peer) => SourceKey::of(peer.ip()),
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let Some(slot) = self.open.admit(source) else {
            // Dropping the stream closes the connection.
            return Box::pin(async { Err(io::Error::other("connection limit reached")) });
        };
        let accepting = self.inner.accept(stream, service);
        let timeout = self.open.limits.header_read_timeout;
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                CappedStream {
                    inner: stream,
                    _slot: slot,
                    first_bytes_left: FIRST_BYTES,
                    first_bytes_by: Some(Box::pin(tokio::time::sleep(timeout))),
                },
                service,
            ))
        })
    }
}

/// A connection holding its slot, and failing its reads if its first
/// bytes do not arrive in time.
pub struct CappedStream<S> {
    inner: S,
    _slot: ConnectionSlot,
    first_bytes_left: usize,
    first_bytes_by: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CappedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.first_bytes_left = this.first_bytes_left.saturating_sub(read);
                if this.first_bytes_left == 0 || read == 0 {
                    this.first_bytes_by = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .first_bytes_by
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    this.first_bytes_by = None;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no request in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CappedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
