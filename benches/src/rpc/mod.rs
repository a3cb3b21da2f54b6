//! The pieces of `rpc-compare`: one service, `Charger` (a unary call and a
//! server stream), served and called by isml and by tonic on loopback TCP,
//! plus the raw TCP floor.
//!
//! - [`isml_rpc`]: the isml server and client of the generated `Charger`
//!   service;
//! - [`isml_session`]: the same calls without the RPC layer (a request
//!   handler and `Session::request`), to show what that layer costs;
//! - [`tonic_peer`]: the tonic (gRPC over HTTP/2, prost messages) server and
//!   client;
//! - [`floor`]: request/response ping-pong over plain tokio TCP with frames of
//!   the sizes isml put on the wire.
//!
//! Every side answers the same calls with the same values (see
//! [`reply_to`] and [`reading`]), and the clients check what they receive, so
//! a side that skipped work would fail rather than look fast.

pub mod floor;
pub mod isml_rpc;
pub mod isml_session;
pub mod tonic_peer;

use std::time::{Duration, Instant};

/// isml types generated from `schemas/rpcbench.isml`.
pub mod isml {
    isml_runtime::include_schema!("bench.rpc.v1");
}

/// prost messages and tonic client and server generated from
/// `schemas/rpcbench.proto` (the same messages as [`isml`]).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/tonic/bench.rpc.v1.rs"));
}

/// What went wrong in a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A socket of the floor or the tonic server failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The isml server did not start.
    #[error("isml server: {0}")]
    IsmlServer(#[from] isml_runtime::server::ServerError),
    /// The isml client did not connect.
    #[error("isml connect: {0}")]
    IsmlConnect(#[from] isml_runtime::client::ConnectError),
    /// An isml request failed.
    #[error("isml request: {0}")]
    IsmlRequest(#[from] isml_runtime::session::RequestError),
    /// An isml RPC call failed.
    #[error("isml call: {0}")]
    IsmlCall(#[from] isml_runtime::rpc::CallError),
    /// An isml message could not be sent.
    #[error("isml send: {0}")]
    IsmlSend(#[from] isml_runtime::session::SendError),
    /// A frame of the floor could not be encoded or decoded.
    #[error("frame: {0}")]
    Frame(String),
    /// The tonic channel could not connect.
    #[error("tonic transport: {0}")]
    TonicTransport(#[from] tonic::transport::Error),
    /// A tonic call failed.
    #[error("tonic call: {0}")]
    TonicStatus(#[from] tonic::Status),
    /// A benchmark task panicked or was cancelled.
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The command line asked for something that does not exist.
    #[error("{0}")]
    Usage(String),
    /// A peer answered something other than what the service computes.
    #[error("wrong answer from {side}: {what}")]
    Mismatch {
        /// Which side answered.
        side: &'static str,
        /// What differed.
        what: String,
    },
}

/// The session id the service answers to a `StartCharging` of `slot` and
/// `max_kwh`, and whether it accepts it (a non-empty user): the same on
/// every side.
pub fn reply_to(slot: u32, user: &str, max_kwh: u32) -> (u64, bool) {
    (
        1_000_000 + u64::from(slot) * 1_000 + u64::from(max_kwh),
        !user.is_empty(),
    )
}

/// The fields of stream item `seq` of slot `slot`: (milliamps, millivolts).
pub fn reading(slot: u32, seq: u64) -> (u32, u32) {
    let s = (seq % 1_000) as u32;
    (16_000 + s + slot, 230_000 + s * 3)
}

/// The unary request every side sends.
pub const SLOT: u32 = 3;
/// The user name in the unary request.
pub const USER: &str = "user-0042";
/// The energy limit in the unary request.
pub const MAX_KWH: u32 = 40;

/// Latencies and rate of a batch of unary calls.
#[derive(Debug, Clone, Copy)]
pub struct Unary {
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Calls completed per second over the batch.
    pub rate: f64,
}

impl Unary {
    /// Summarises `lat` (one entry per call) measured over `elapsed`.
    pub fn from_latencies(mut lat: Vec<Duration>, elapsed: Duration) -> Self {
        lat.sort_unstable();
        let rate = lat.len() as f64 / elapsed.as_secs_f64();
        Self {
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
            rate,
        }
    }
}

/// The `p` percentile (0.0 ..= 1.0) of sorted `v`; zero when `v` is empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `per_task` calls of `call` in each of `concurrency` tasks that share
/// whatever `call` captures (one session, one channel), and returns the
/// latencies and the rate from the first call to the last.
pub async fn run_unary<F, Fut>(
    concurrency: usize,
    per_task: usize,
    call: F,
) -> Result<Unary, BenchError>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    call().await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, BenchError>(lat)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(concurrency * per_task);
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(Unary::from_latencies(lat, t0.elapsed()))
}
