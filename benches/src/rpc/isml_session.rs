//! The same calls on isml without the RPC layer: a unary call is
//! `Session::request` answered by a request handler, and a server stream is
//! a request whose handler sends every item as a one-way message on the
//! caller's session before replying (the client counts the items in a
//! one-way handler). This was the isml side before the generated services
//! existed; it stays as a reference for what the RPC layer adds. Runtime
//! defaults except keep-alive, which is off on both ends so that no ping
//! lands in a measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use isml_runtime::client::Client;
use isml_runtime::dispatch::{Dispatcher, HandlerError};
use isml_runtime::server::Server;
use isml_runtime::session::Session;
use tokio::sync::Notify;

use super::isml::{ChargeStarted, SlotReading, StartCharging, WatchSlot};
use super::{BenchError, MAX_KWH, SLOT, USER, Unary, reading, reply_to, run_unary};

/// How long the client waits for the rest of a stream's items after the
/// server's reply.
const STREAM_GRACE: Duration = Duration::from_secs(10);

fn item(slot: u32, seq: u64) -> SlotReading {
    let (milliamps, millivolts) = reading(slot, seq);
    SlotReading {
        slot,
        milliamps,
        millivolts,
        seq,
    }
}

/// Stream items received by a client session: how many, and how many were
/// not what the server computes.
#[derive(Debug, Default)]
pub struct Received {
    items: AtomicU64,
    wrong: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Received {
    fn add(&self, r: &SlotReading) {
        if *r != item(r.slot, r.seq) {
            self.wrong.fetch_add(1, Ordering::Relaxed);
        }
        let n = self.items.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
    }
}

/// An isml server on `tcp://127.0.0.1`, on a free port.
#[derive(Debug)]
pub struct IsmlServer {
    server: Server,
    url: String,
}

impl IsmlServer {
    /// Starts the server.
    pub async fn start() -> Result<Self, BenchError> {
        let d = Dispatcher::new()
            .on_request::<StartCharging, ChargeStarted, _, _>(|_ctx, req| {
                let (session_id, accepted) = reply_to(req.slot, &req.user, req.max_kwh);
                std::future::ready(Ok(ChargeStarted {
                    session_id,
                    accepted,
                }))
            })
            .on_request::<WatchSlot, ChargeStarted, _, _>(|ctx, req| async move {
                let session = ctx.session();
                for seq in 0..req.count {
                    session
                        .send(&item(req.slot, seq))
                        .await
                        .map_err(|e| HandlerError::failed(e.to_string()))?;
                }
                Ok(ChargeStarted {
                    session_id: req.count,
                    accepted: true,
                })
            });
        let server = Server::builder()
            .listen("tcp://127.0.0.1:0")
            .dispatcher(d)
            .keepalive(None)
            .start()
            .await?;
        let url = server.urls()[0].clone();
        Ok(Self { server, url })
    }

    /// Opens one session to the server; stream items it receives are counted
    /// in the returned [`Received`].
    pub async fn connect(&self) -> Result<(Session, Arc<Received>), BenchError> {
        let received = Arc::new(Received::default());
        let r = received.clone();
        let d = Dispatcher::new().on::<SlotReading, _, _>(move |_ctx, item| {
            r.add(&item);
            std::future::ready(Ok(()))
        });
        let session = Client::builder(&self.url)
            .keepalive(None)
            .dispatcher(d)
            .connect_session()
            .await?;
        Ok((session, received))
    }

    /// Stops the server.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}

/// One unary call, checked.
async fn start_charging(session: Session) -> Result<(), BenchError> {
    let reply: ChargeStarted = session
        .request(&StartCharging {
            slot: SLOT,
            user: USER.to_string(),
            max_kwh: MAX_KWH,
        })
        .await?;
    if (reply.session_id, reply.accepted) != reply_to(SLOT, USER, MAX_KWH) {
        return Err(BenchError::Mismatch {
            side: "isml",
            what: format!("{reply:?}"),
        });
    }
    Ok(())
}

/// `per_task` unary calls in each of `concurrency` tasks sharing `session`,
/// after `warmup` calls on it.
pub async fn unary(
    session: &Session,
    concurrency: usize,
    per_task: usize,
    warmup: usize,
) -> Result<Unary, BenchError> {
    for _ in 0..warmup {
        start_charging(session.clone()).await?;
    }
    let session = session.clone();
    run_unary(concurrency, per_task, move || {
        start_charging(session.clone())
    })
    .await
}

/// Receives a stream of `count` items and returns items per second, from the
/// call to the last item.
pub async fn stream(session: &Session, received: &Received, count: u64) -> Result<f64, BenchError> {
    received.items.store(0, Ordering::Relaxed);
    received.wrong.store(0, Ordering::Relaxed);
    received.target.store(count, Ordering::Relaxed);
    let t0 = Instant::now();
    let end: ChargeStarted = session.request(&WatchSlot { slot: SLOT, count }).await?;
    // The reply was queued after the last item, so every item is ahead of it
    // on the wire, but their handlers may still be running; a lost item
    // leaves the count short.
    let all = async {
        while received.items.load(Ordering::Relaxed) < count {
            received.done.notified().await;
        }
    };
    if tokio::time::timeout(STREAM_GRACE, all).await.is_err() {
        return Err(BenchError::Mismatch {
            side: "isml stream",
            what: format!(
                "{} of {count} items arrived",
                received.items.load(Ordering::Relaxed)
            ),
        });
    }
    let elapsed = t0.elapsed();
    let (items, wrong) = (
        received.items.load(Ordering::Relaxed),
        received.wrong.load(Ordering::Relaxed),
    );
    if end.session_id != count || items != count || wrong != 0 {
        return Err(BenchError::Mismatch {
            side: "isml stream",
            what: format!(
                "{items} items ({wrong} wrong), server sent {}",
                end.session_id
            ),
        });
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}
