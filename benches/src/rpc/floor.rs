//! The raw TCP floor: what request/response costs with nothing but tokio,
//! sockets and the frame decoder. One connection per requester (no
//! multiplexing), TCP_NODELAY on, the server writes a fixed reply frame for
//! every request frame it decodes.
//!
//! The ping-pong loop is the one of `examples/src/bin/runtime-bench.rs`
//! (`raw_requests`), copied rather than shared: the examples crate is a set
//! of binaries with no library to put it in, and a dependency between the
//! examples and the benches would build tonic into the examples. Here the
//! frames are made to measure: the sizes isml's own request and reply frames
//! had on the wire (see [`frame_of_size`]).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use isml_runtime::wire::{FrameHeader, StreamDecoder, put_stream_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{BenchError, Unary};

/// Largest frame the floor decodes.
const MAX_FRAME: usize = 1 << 20;

fn frame_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Frame(e.to_string())
}

/// A stream frame with `header` that is exactly `size` bytes long on the
/// wire (header, length prefix and a filler payload); `None` if no payload
/// length gives that size (smaller than an empty frame, or over
/// `MAX_FRAME`).
pub fn frame_of_size(header: FrameHeader, size: usize) -> Option<Vec<u8>> {
    if size > MAX_FRAME {
        return None;
    }
    // The length prefixes are varints: try payload lengths from the largest
    // that could fit down to zero.
    (0..=size).rev().find_map(|payload| {
        let mut b = BytesMut::new();
        put_stream_frame(&mut b, &header, &vec![0x5a; payload], MAX_FRAME).ok()?;
        (b.len() == size).then(|| b.to_vec())
    })
}

/// Ping-pong of `request` and `reply` frames over loopback TCP: `warmup`
/// then `count` round trips on one connection, one at a time.
pub async fn ping_pong(
    request: Vec<u8>,
    reply: Vec<u8>,
    count: usize,
    warmup: usize,
) -> Result<Unary, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut dec = StreamDecoder::new(MAX_FRAME);
        loop {
            if s.read_buf(&mut buf).await? == 0 {
                return Ok::<_, BenchError>(());
            }
            while dec.decode(&mut buf).map_err(frame_error)?.is_some() {
                s.write_all(&reply).await?;
            }
        }
    });
    // The requester is a task on the runtime's workers, as isml's and
    // tonic's callers are (`run_unary`): run from the future `block_on`
    // drives, each wake would go through the main thread's parker instead.
    let client = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut dec = StreamDecoder::new(MAX_FRAME);
        let mut lat = Vec::with_capacity(count);
        let mut start = Instant::now();
        for i in 0..warmup + count {
            if i == warmup {
                start = Instant::now();
            }
            let t = Instant::now();
            s.write_all(&request).await?;
            while dec.decode(&mut buf).map_err(frame_error)?.is_none() {
                if s.read_buf(&mut buf).await? == 0 {
                    return Err(BenchError::Frame("the floor's server closed".into()));
                }
            }
            if i >= warmup {
                lat.push(t.elapsed());
            }
        }
        Ok::<_, BenchError>((lat, start.elapsed()))
    });
    let (lat, elapsed): (_, Duration) = client.await??;
    server.await??;
    Ok(Unary::from_latencies(lat, elapsed))
}
