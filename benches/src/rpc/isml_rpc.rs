//! The isml side through the generated `Charger` service: `ChargerServer`
//! registered on a `Dispatcher`, `ChargerClient` over one session. Runtime
//! defaults except keep-alive, which is off on both ends so that no ping
//! lands in a measurement.

use std::sync::Arc;
use std::time::Instant;

use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, Sink, Status};
use isml_runtime::server::Server;
use isml_runtime::session::Session;

pub use super::isml::ChargerClient;
use super::isml::{ChargeStarted, Charger, ChargerServer, SlotReading, StartCharging, WatchSlot};
use super::{BenchError, MAX_KWH, SLOT, USER, Unary, reading, reply_to, run_unary};

fn item(slot: u32, seq: u64) -> SlotReading {
    let (milliamps, millivolts) = reading(slot, seq);
    SlotReading {
        slot,
        milliamps,
        millivolts,
        seq,
    }
}

/// The `Charger` service.
struct Service;

impl Charger for Service {
    async fn start_charging(
        &self,
        _call: Call,
        req: StartCharging,
    ) -> Result<ChargeStarted, Status> {
        let (session_id, accepted) = reply_to(req.slot, &req.user, req.max_kwh);
        Ok(ChargeStarted {
            session_id,
            accepted,
        })
    }

    async fn watch_slot(
        &self,
        _call: Call,
        req: WatchSlot,
        out: Sink<SlotReading>,
    ) -> Result<(), Status> {
        // The items are ready together: `send_all` hands them over a run at
        // a time (tonic's best case is the same: an iterator as the stream).
        out.send_all((0..req.count).map(|seq| item(req.slot, seq)))
            .await
            .map_err(|e| e.to_status())
    }
}

/// An isml server on `tcp://127.0.0.1`, on a free port, serving `Charger`.
#[derive(Debug)]
pub struct IsmlServer {
    server: Server,
    url: String,
}

impl IsmlServer {
    /// Starts the server.
    pub async fn start() -> Result<Self, BenchError> {
        let server = Server::builder()
            .listen("tcp://127.0.0.1:0")
            .dispatcher(Dispatcher::new().service(ChargerServer::new(Service)))
            .keepalive(None)
            .start()
            .await?;
        let url = server.urls()[0].clone();
        Ok(Self { server, url })
    }

    /// Opens one session to the server, and a client of the service on it;
    /// `stream_window`: the bytes of items each stream it receives may hold (`None`:
    /// the runtime's default).
    pub async fn connect(
        &self,
        stream_window: Option<u32>,
    ) -> Result<(Session, Arc<ChargerClient>), BenchError> {
        let mut builder = Client::builder(&self.url).keepalive(None);
        if let Some(bytes) = stream_window {
            builder = builder.stream_window(bytes);
        }
        let session = builder.connect_session().await?;
        let client = Arc::new(ChargerClient::new(session.clone()));
        Ok((session, client))
    }

    /// Stops the server.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}

/// One unary call, checked.
async fn start_charging(client: Arc<ChargerClient>) -> Result<(), BenchError> {
    let reply = client
        .start_charging(&StartCharging {
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

/// `per_task` unary calls in each of `concurrency` tasks sharing `client`
/// (one session), after `warmup` calls on it.
pub async fn unary(
    client: &Arc<ChargerClient>,
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
pub async fn stream(client: &ChargerClient, count: u64) -> Result<f64, BenchError> {
    let t0 = Instant::now();
    let mut items = client.watch_slot(&WatchSlot { slot: SLOT, count }).await?;
    let mut seq = 0;
    while let Some(r) = items.next().await {
        let r = r?;
        if r != item(SLOT, seq) {
            return Err(BenchError::Mismatch {
                side: "isml stream",
                what: format!("item {seq}: {r:?}"),
            });
        }
        seq += 1;
    }
    let elapsed = t0.elapsed();
    if seq != count {
        return Err(BenchError::Mismatch {
            side: "isml stream",
            what: format!("{seq} items, expected {count}"),
        });
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}
