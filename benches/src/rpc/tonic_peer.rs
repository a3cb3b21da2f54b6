//! The tonic side: gRPC over HTTP/2 with prost messages, tonic's defaults
//! except TCP_NODELAY, which both ends set (as isml and the floor do).

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::pb::charger_client::ChargerClient;
use super::pb::charger_server::{Charger, ChargerServer};
use super::pb::{ChargeStarted, SlotReading, StartCharging, WatchSlot};
use super::{BenchError, MAX_KWH, SLOT, USER, Unary, reading, reply_to, run_unary};

/// A client of the tonic `Charger` service over one channel.
pub type Client = ChargerClient<Channel>;

/// How the server produces a stream's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// A task sends the items into a bounded channel that the response
    /// streams from: the usual shape of a tonic handler whose items come from
    /// elsewhere, and the one that matches isml's `Sink`.
    Channel,
    /// The response is an iterator turned into a stream: items are made as
    /// HTTP/2 asks for them, with no task and no channel (tonic's best case).
    Iterator,
}

/// Capacity of the channel in [`StreamMode::Channel`] (items).
pub const STREAM_CHANNEL: usize = 1024;

/// The `Charger` service.
#[derive(Debug, Clone, Copy)]
struct Service {
    mode: StreamMode,
}

type ReadingStream = Pin<Box<dyn Stream<Item = Result<SlotReading, Status>> + Send>>;

fn item(slot: u32, seq: u64) -> SlotReading {
    let (milliamps, millivolts) = reading(slot, seq);
    SlotReading {
        slot,
        milliamps,
        millivolts,
        seq,
    }
}

#[tonic::async_trait]
impl Charger for Service {
    async fn start_charging(
        &self,
        req: Request<StartCharging>,
    ) -> Result<Response<ChargeStarted>, Status> {
        let req = req.into_inner();
        let (session_id, accepted) = reply_to(req.slot, &req.user, req.max_kwh);
        Ok(Response::new(ChargeStarted {
            session_id,
            accepted,
        }))
    }

    type WatchSlotStream = ReadingStream;

    async fn watch_slot(
        &self,
        req: Request<WatchSlot>,
    ) -> Result<Response<Self::WatchSlotStream>, Status> {
        let WatchSlot { slot, count } = req.into_inner();
        let stream: ReadingStream = match self.mode {
            StreamMode::Iterator => Box::pin(futures_util::stream::iter(
                (0..count).map(move |seq| Ok(item(slot, seq))),
            )),
            StreamMode::Channel => {
                let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
                tokio::spawn(async move {
                    for seq in 0..count {
                        if tx.send(Ok(item(slot, seq))).await.is_err() {
                            return; // the caller went away
                        }
                    }
                });
                Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|x| (x, rx))
                }))
            }
        };
        Ok(Response::new(stream))
    }
}

/// A tonic server on `127.0.0.1`, on a free port; it stops when dropped.
#[derive(Debug)]
pub struct TonicServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TonicServer {
    /// Starts the server; `mode` says how it produces stream items.
    pub async fn start(mode: StreamMode) -> Result<Self, BenchError> {
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("a literal address"))?
            .with_nodelay(Some(true));
        let addr = incoming.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ChargerServer::new(Service { mode }))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Ok(Self {
            addr,
            stop: Some(stop),
        })
    }

    /// Opens one channel (one HTTP/2 connection) to the server.
    pub async fn connect(&self) -> Result<ChargerClient<Channel>, BenchError> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(ChargerClient::new(channel))
    }
}

impl Drop for TonicServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One unary call, checked.
async fn start_charging(mut client: ChargerClient<Channel>) -> Result<(), BenchError> {
    let reply = client
        .start_charging(StartCharging {
            slot: SLOT,
            user: USER.to_string(),
            max_kwh: MAX_KWH,
        })
        .await?
        .into_inner();
    if (reply.session_id, reply.accepted) != reply_to(SLOT, USER, MAX_KWH) {
        return Err(BenchError::Mismatch {
            side: "tonic",
            what: format!("{reply:?}"),
        });
    }
    Ok(())
}

/// `per_task` unary calls in each of `concurrency` tasks sharing `client`'s
/// channel, after `warmup` calls on it.
pub async fn unary(
    client: &ChargerClient<Channel>,
    concurrency: usize,
    per_task: usize,
    warmup: usize,
) -> Result<Unary, BenchError> {
    for _ in 0..warmup {
        start_charging(client.clone()).await?;
    }
    let client = client.clone();
    run_unary(concurrency, per_task, move || {
        start_charging(client.clone())
    })
    .await
}

/// Receives a stream of `count` items and returns items per second, from the
/// call to the last item.
pub async fn stream(client: &ChargerClient<Channel>, count: u64) -> Result<f64, BenchError> {
    let mut client = client.clone();
    let t0 = Instant::now();
    let mut items = client
        .watch_slot(WatchSlot { slot: SLOT, count })
        .await?
        .into_inner();
    let mut seq = 0;
    while let Some(r) = items.message().await? {
        if r != item(SLOT, seq) {
            return Err(BenchError::Mismatch {
                side: "tonic stream",
                what: format!("item {seq}: {r:?}"),
            });
        }
        seq += 1;
    }
    let elapsed = t0.elapsed();
    if seq != count {
        return Err(BenchError::Mismatch {
            side: "tonic stream",
            what: format!("{seq} items, expected {count}"),
        });
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}
