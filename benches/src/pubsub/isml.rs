//! The isml side: the broker (an `isml_runtime::Server` with channels, in the
//! re-executed bench) and the load generator's isml clients.
//!
//! Payloads are `bench.Blob` messages whose `data` is the payload, so that
//! the bytes on a channel decode as its type, as the broker may check. Each
//! run uses channel id `run`; the broker serves ids 1 to [`CHANNELS`].
//!
//! QoS 0 is [`Session::try_publish_raw`] (queued, no answer awaited; when the
//! outbound queue is full, that publication goes through
//! [`Session::publish_raw`], which waits for room and for the answer: the API
//! has no unacknowledged publish that waits for room); QoS 1 is
//! [`Session::publish_raw`], the broker's acceptance awaited, with 100
//! publications in flight at most (rumqttc's window). Deliveries to isml
//! subscribers are the same in both: in order over the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use isml_runtime::pubsub::{ChannelInfo, PublishError};
use isml_runtime::session::SendError;
use isml_runtime::{Client, Message as _, Server, Session, TopLevel as _};

use super::{Handle, Plan, Qos, Sink};
use crate::bench::{AnyMessage, Blob};

/// Channel ids the broker serves (one per run).
pub const CHANNELS: u32 = 512;

/// Runs the isml broker on `127.0.0.1:port` until the process exits.
/// With `stats`, it prints its counters on stderr every second.
pub(crate) fn run_broker(port: u16, stats: bool) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isml broker: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let mut b = Server::builder()
            .listen(format!("tcp://127.0.0.1:{port}"))
            .types(AnyMessage::TYPES)
            // The comparison opens 10,000 connections from one address at
            // once: the per-address admission limits meant for the open
            // internet are lifted, as mosquitto and rumqttd have none.
            .handshake_rate(None)
            .max_unauthenticated(16_384)
            .max_unauthenticated_per_address(16_384)
            .max_connections(20_000);
        for id in 1..=CHANNELS {
            b = b.channel_info(ChannelInfo {
                id,
                name: format!("bench.run{id}"),
                type_id: Blob::TYPE_ID,
                fingerprint: Blob::fingerprint(),
                retain: false,
                keyed: false,
            });
        }
        match b.start().await {
            Ok(server) => {
                if stats {
                    report_stats(server).await;
                }
                std::future::pending::<()>().await
            }
            Err(e) => {
                eprintln!("isml broker: {e}");
                std::process::exit(1);
            }
        }
    });
}

/// Prints, every second, what changed in the broker's counters: per channel
/// (published, delivered at once, dropped), and over all subscribers
/// (delivered, dropped, queued now, the largest queue in bytes).
async fn report_stats(server: Server) {
    let mut last: std::collections::HashMap<u32, (u64, u64, u64)> = Default::default();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        for c in server.broker_stats().channels {
            let now = (c.published, c.delivered, c.dropped);
            let before = last.insert(c.id, now).unwrap_or_default();
            if now != before {
                eprintln!(
                    "    isml broker: channel {} +{} published, +{} delivered at once, +{} dropped, {} subscribers",
                    c.id,
                    now.0 - before.0,
                    now.1 - before.1,
                    now.2 - before.2,
                    c.subscribers
                );
            }
        }
        let (mut n, mut delivered, mut dropped, mut queued, mut max_bytes) = (0, 0, 0, 0, 0);
        for s in server.sessions() {
            if let Some(st) = server.subscriber_stats(s.id())
                && st.subscriptions > 0
            {
                n += 1;
                delivered += st.delivered;
                dropped += st.dropped;
                queued += st.queued;
                max_bytes = max_bytes.max(st.max_queued_bytes);
            }
        }
        if n > 0 {
            eprintln!(
                "    isml broker: {n} subscribers: {delivered} delivered, {dropped} dropped, {queued} queued, largest queue {max_bytes} B"
            );
        }
    }
}

async fn connect(port: u16, id: &str) -> Result<Session, String> {
    Client::builder(format!("tcp://127.0.0.1:{port}"))
        .device_id(id)
        .types(AnyMessage::TYPES)
        .connect_session()
        .await
        .map_err(|e| format!("isml client {id}: {e}"))
}

/// `bench.Blob` payloads, made in reused buffers: `publish_raw` copies a
/// payload into its frame and drops it, so a buffer is free again by the
/// next publication and nothing is allocated per publication.
#[derive(Default)]
struct Blobs {
    data: BytesMut,
    out: BytesMut,
}

impl Blobs {
    /// The next payload: a `Blob` whose `data` is `size` bytes ending with
    /// the send time (the last field: the send time stays the last 8 bytes).
    fn next(&mut self, size: usize) -> Bytes {
        let size = size.max(8);
        self.data.reserve(size);
        self.data.put_bytes(0x5a, size - 8);
        self.data.put_u64_le(super::now_ns());
        let blob = Blob {
            data: self.data.split().freeze(),
        };
        self.out.reserve(blob.encoded_len() + 16);
        match blob.encode(&mut self.out) {
            Ok(()) => self.out.split().freeze(),
            Err(_) => blob.data,
        }
    }
}

/// A subscriber to channel `channel` that records into `sink`.
pub(crate) async fn subscriber(
    port: u16,
    id: &str,
    channel: u32,
    sink: Sink,
) -> Result<Handle, String> {
    let session = connect(port, id).await?;
    let mut sub = session
        .subscribe_raw(channel, None)
        .await
        .map_err(|e| format!("isml subscribe: {e}"))?;
    let task = tokio::spawn(async move {
        while let Some(p) = sub.next().await {
            sink.record(&p.payload);
        }
    });
    Ok(Handle::new(vec![task.abort_handle()], session))
}

/// A publisher to channel `channel` that starts at once and runs until `stop`.
pub(crate) async fn publisher(
    port: u16,
    id: &str,
    channel: u32,
    q: Qos,
    size: usize,
    plan: Plan,
    stop: Arc<AtomicBool>,
) -> Result<Handle, String> {
    let session = connect(port, id).await?;
    let s = session.clone();
    let task = tokio::spawn(async move {
        let mut pacer = plan.pacer();
        let mut blobs = Blobs::default();
        match q {
            Qos::AtMostOnce => {
                while !stop.load(Ordering::Relaxed) {
                    pacer.wait().await;
                    let payload = blobs.next(size);
                    match s.try_publish_raw(channel, None, payload.clone()) {
                        Ok(()) => {}
                        // A full outbound queue: this one waits for room
                        // (and for the broker's answer), as rumqttc's
                        // publish waits for room in its request channel.
                        Err(PublishError::Send(SendError::QueueFull { .. })) => {
                            if s.publish_raw(channel, None, payload).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
            Qos::AtLeastOnce => {
                let mut inflight = FuturesUnordered::new();
                while !stop.load(Ordering::Relaxed) {
                    while inflight.len() >= 100 {
                        if let Some(Err(_)) = inflight.next().await {
                            return;
                        }
                    }
                    pacer.wait().await;
                    let s = s.clone();
                    let payload = blobs.next(size);
                    inflight.push(async move { s.publish_raw(channel, None, payload).await });
                    // Lets the futures already pushed make progress.
                    while let Some(Some(r)) = futures_util::FutureExt::now_or_never(inflight.next())
                    {
                        if r.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    Ok(Handle::new(vec![task.abort_handle()], session))
}
