//! Noticing connections on which nothing moves, and request bodies that arrive too slowly.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// When a connection last moved a byte, and whether it was handed to an application (upgraded).
#[derive(Clone)]
pub(crate) struct Activity(Arc<ActivityState>);

struct ActivityState {
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last_ms: AtomicU64,
    upgraded: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self(Arc::new(ActivityState {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
        }))
    }

    fn touch(&self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The connection now belongs to the application that upgraded it.
    pub(crate) fn upgraded(&self) {
        self.0.upgraded.store(true, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit` (never, after an upgrade).
    pub(crate) async fn idle(&self, limit: Duration) {
        loop {
            if self.0.upgraded.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            let last = self.0.start + Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A TCP stream that records its [`Activity`], and holds its place in the connection budget for
/// as long as the socket lives: an upgraded connection (a WebSocket tunnel) outlives hyper's
/// connection future, and must go on counting against the caps.
pub(crate) struct Watched {
    pub(crate) stream: TcpStream,
    pub(crate) activity: Activity,
    pub(crate) _admission: crate::limits::Admission,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?;
        if written > 0 {
            self.activity.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            self.activity.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The request body did not arrive within the body-read deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(crate) struct BodyTimedOut;

/// A request body with a deadline: it starts the first time the handler has to wait for the
/// client, and does not restart, so a body dripped a byte at a time cannot hold a handler for
/// longer than the deadline.
pub(crate) struct DeadlineBody {
    inner: hyper::body::Incoming,
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        limit: Duration,
        expired: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner,
            limit,
            sleep: None,
            expired,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = this.limit;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
