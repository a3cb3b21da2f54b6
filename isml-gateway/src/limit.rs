//! A bound on open HTTP connections: the listener accepts the next
//! connection only when one of `max` places is free, and a connection gives
//! its place back when it closes. Beyond the bound, newcomers wait in the
//! kernel's backlog instead of costing memory.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Limited<L> {
    inner: L,
    places: Arc<Semaphore>,
}

impl<L> Limited<L> {
    pub(crate) fn new(inner: L, max: usize) -> Self {
        Limited {
            inner,
            places: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

/// A connection holding its place.
pub(crate) struct Held<T> {
    io: T,
    _place: OwnedSemaphorePermit,
}

impl<L: Listener<Addr = SocketAddr>> Listener for Limited<L> {
    type Io = Held<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let Ok(place) = self.places.clone().acquire_owned().await else {
            // The semaphore is never closed.
            return std::future::pending().await;
        };
        let (io, addr) = self.inner.accept().await;
        (Held { io, _place: place }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Held<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Held<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The client's address of a connection, as connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

impl<L: Listener<Addr = SocketAddr>>
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Limited<L>>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Limited<L>>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}
