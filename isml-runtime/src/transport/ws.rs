//! WebSocket transport (`ws://host:port/path`) with tokio-tungstenite. Each
//! binary message carries one or more stream-framed frames (§3): what the
//! session writer flushes together leaves as one WebSocket message.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Counted, Transport, TransportError, TransportInfo, WireCounters};
use crate::codec::FrameLimit;
use crate::wire::{Frame, Limits, StreamDecoder, put_stream_frame};

/// Buffered bytes above which a message is sent before accepting more frames.
const MESSAGE_TARGET: usize = 64 * 1024;

/// WebSocket limits: a message carries what one flush produced (up to
/// [`MESSAGE_TARGET`] plus one frame), so nothing larger is ever needed; the
/// WebSocket layer would otherwise buffer messages of up to 64 MiB.
fn ws_config(max_frame: Option<usize>) -> WebSocketConfig {
    let max = max_frame.unwrap_or(Limits::DEFAULT.max_frame) + MESSAGE_TARGET + 16;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

fn ws_error(peer: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Protocol {
        layer: "websocket",
        peer: peer.to_owned(),
        message: e.to_string(),
    }
}

pub(crate) async fn connect(
    addr: &str,
    path: &str,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    let stream = super::tcp::tcp_stream(addr).await?;
    let counters = Arc::new(WireCounters::default());
    let io = Counted {
        io: stream,
        counters: counters.clone(),
    };
    let config = ws_config(max_frame);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{addr}{path}"), io, Some(config))
            .await
            .map_err(|e| ws_error(addr, e))?;
    Ok(transport(ws, addr.to_owned(), counters, max_frame))
}

pub(crate) async fn accept(
    stream: TcpStream,
    peer: String,
    path: String,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    let _ = stream.set_nodelay(true);
    let counters = Arc::new(WireCounters::default());
    let io = Counted {
        io: stream,
        counters: counters.clone(),
    };
    // The callback's signature is tungstenite's; its error is an HTTP response.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() == path {
            Ok(resp)
        } else {
            let mut err = ErrorResponse::new(Some("no isml endpoint at this path".into()));
            *err.status_mut() = StatusCode::NOT_FOUND;
            Err(err)
        }
    };
    let config = ws_config(max_frame);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(io, check, Some(config))
        .await
        .map_err(|e| ws_error(&peer, e))?;
    Ok(transport(ws, peer, counters, max_frame))
}

fn transport<S>(
    ws: WebSocketStream<S>,
    peer: String,
    counters: Arc<WireCounters>,
    max_frame: Option<usize>,
) -> Transport
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let max_frame = max_frame.unwrap_or(Limits::DEFAULT.max_frame);
    let limit = FrameLimit::new(max_frame);
    let (sink, stream) = ws.split();
    let rx = WsFrames {
        ws: stream,
        decoder: StreamDecoder::new(max_frame),
        limit: limit.clone(),
        buf: BytesMut::new(),
        peer: peer.clone(),
        done: false,
    };
    let tx = WsSink {
        ws: sink,
        buf: BytesMut::new(),
        max_frame,
        peer: peer.clone(),
    };
    Transport::new(
        Box::pin(rx),
        Box::pin(tx),
        TransportInfo {
            scheme: "ws",
            peer,
            counters,
            peer_certificates: None,
            receive_limit: Some(limit),
        },
    )
}

struct WsFrames<S> {
    ws: SplitStream<WebSocketStream<S>>,
    decoder: StreamDecoder,
    limit: FrameLimit,
    buf: BytesMut,
    peer: String,
    done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsFrames<S> {
    type Item = Result<Frame, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let max = this.limit.get();
            if max != this.decoder.max_frame() {
                this.decoder.set_max_frame(max);
            }
            match this.decoder.decode(&mut this.buf) {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(source) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(TransportError::Malformed {
                        peer: this.peer.clone(),
                        source,
                    })));
                }
            }
            match ready!(this.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => this.buf.extend_from_slice(&data),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ws_error(
                        &this.peer,
                        "text message received; isml uses binary messages",
                    ))));
                }
                Some(Ok(Message::Close(_))) | None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ws_error(&this.peer, e))));
                }
            }
        }
    }
}

struct WsSink<S> {
    ws: SplitSink<WebSocketStream<S>, Message>,
    buf: BytesMut,
    max_frame: usize,
    peer: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsSink<S> {
    fn poll_send_buf(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(|e| ws_error(&self.peer, e))?;
        let data = self.buf.split().freeze();
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(data))
            .map_err(|e| ws_error(&self.peer, e))?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Frame> for WsSink<S> {
    type Error = TransportError;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>> {
        if self.buf.len() >= MESSAGE_TARGET {
            ready!(self.poll_send_buf(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Frame) -> Result<(), TransportError> {
        let max = self.max_frame;
        put_stream_frame(&mut self.buf, &item.header, &item.payload, max)?;
        Ok(())
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>> {
        ready!(self.poll_send_buf(cx))?;
        let peer = self.peer.clone();
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(|e| ws_error(&peer, e))
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>> {
        ready!(self.as_mut().poll_flush(cx))?;
        let peer = self.peer.clone();
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(|e| ws_error(&peer, e))
    }
}
