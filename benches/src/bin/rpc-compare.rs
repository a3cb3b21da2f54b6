//! isml RPC against tonic (gRPC over HTTP/2, prost messages), side by side in
//! one run on loopback TCP, with the raw TCP floor beside them: unary latency
//! at concurrency 1, unary requests/s from 64 concurrent callers sharing one
//! connection, and a server stream of small items. Both sides serve the same
//! `Charger` service with the same messages (`schemas/rpcbench.isml` and
//! `schemas/rpcbench.proto`) from the same process, round after round in
//! alternating order, and each ratio is the median of the per-round ratios.
//! The last line sums it up:
//!
//! `rpc: unary c64 req/s isml/tonic X.XXx, p50 c1 isml/tonic Y.YYx, p50 c1 isml/floor Z.ZZx, stream items/s isml/tonic W.WWx`
//!
//! The stream ratio is against the faster of tonic's two ways of producing a
//! stream (a handler task feeding a channel, or an iterator). The isml side
//! is the generated `Charger` service; a row of plain `Session::request`
//! calls (no RPC layer) shows what that layer costs.
//!
//! `cargo run --release -p isml-benches --bin rpc-compare`
//!
//! For a profiler, `-- --profile ROW` runs one side's row alone for about ten
//! seconds (ROW: `isml-c1`, `isml-c64`, `isml-stream`, `session-c1`,
//! `session-c64`, `session-stream`, `tonic-c1`, `tonic-c64`, `tonic-stream`,
//! `tonic-stream-iter`), e.g. under
//! `perf record -g`. `RPC_COMPARE_STREAM_WINDOW=N` sets the isml client's
//! stream window (bytes; the runtime's default otherwise), to try what the
//! window does to the stream row.

use std::process::ExitCode;
use std::time::Duration;

use isml_benches::rpc::isml::{ChargeStarted, StartCharging};
use isml_benches::rpc::tonic_peer::{StreamMode, TonicServer};
use isml_benches::rpc::{BenchError, Unary, floor, isml_rpc, isml_session, tonic_peer};
use isml_runtime::TopLevel;
use isml_runtime::wire::FrameHeader;

/// Rounds of every measurement; each ratio is the median over them.
const ROUNDS: usize = 5;
/// Unary calls per round at concurrency 1, on each side.
const C1_CALLS: usize = 3_000;
/// Concurrent callers sharing one connection.
const CONCURRENCY: usize = 64;
/// Calls per caller per round at concurrency 64.
const C64_PER_CALLER: usize = 200;
/// Items of the server stream.
const STREAM_ITEMS: u64 = 1_000_000;
/// Calls made before each timed batch.
const WARMUP_CALLS: usize = 200;
/// The whole run gives up after this long.
const RUN_LIMIT: Duration = Duration::from_secs(110);

#[derive(Default)]
struct Rounds {
    isml_c1: Vec<Unary>,
    session_c1: Vec<Unary>,
    tonic_c1: Vec<Unary>,
    floor_c1: Vec<Unary>,
    isml_c64: Vec<Unary>,
    session_c64: Vec<Unary>,
    tonic_c64: Vec<Unary>,
    isml_stream: Vec<f64>,
    tonic_stream_channel: Vec<f64>,
    tonic_stream_iter: Vec<f64>,
    r_c64: Vec<f64>,
    r_p50_tonic: Vec<f64>,
    r_p50_floor: Vec<f64>,
    r_stream: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The servers and a connection to each, shared by the rounds.
struct Peers {
    isml_server: isml_rpc::IsmlServer,
    isml_session: isml_runtime::session::Session,
    isml: std::sync::Arc<isml_rpc::ChargerClient>,
    plain_server: isml_session::IsmlServer,
    plain: isml_runtime::session::Session,
    plain_received: std::sync::Arc<isml_session::Received>,
    _tonic_servers: (TonicServer, TonicServer),
    tonic: tonic_peer::Client,
    tonic_iter: tonic_peer::Client,
}

impl Peers {
    async fn start() -> Result<Self, BenchError> {
        let isml_server = isml_rpc::IsmlServer::start().await?;
        let window = match std::env::var("RPC_COMPARE_STREAM_WINDOW") {
            Ok(v) => Some(v.parse().map_err(|_| {
                BenchError::Usage(format!("RPC_COMPARE_STREAM_WINDOW={v:?}: not a number"))
            })?),
            Err(_) => None,
        };
        let (isml_session, isml) = isml_server.connect(window).await?;
        let plain_server = isml_session::IsmlServer::start().await?;
        let (plain, plain_received) = plain_server.connect().await?;
        let tonic_channel = TonicServer::start(StreamMode::Channel).await?;
        let tonic_iter_server = TonicServer::start(StreamMode::Iterator).await?;
        let tonic = tonic_channel.connect().await?;
        let tonic_iter = tonic_iter_server.connect().await?;
        Ok(Self {
            isml_server,
            isml_session,
            isml,
            plain_server,
            plain,
            plain_received,
            _tonic_servers: (tonic_channel, tonic_iter_server),
            tonic,
            tonic_iter,
        })
    }

    async fn stop(self) {
        self.isml_session.close("done").await;
        self.plain.close("done").await;
        self.isml_server.shutdown().await;
        self.plain_server.shutdown().await;
    }
}

async fn run() -> Result<(), BenchError> {
    let p = Peers::start().await?;

    // Warm-up: connections, allocator arenas, both sides' buffers.
    isml_rpc::unary(&p.isml, CONCURRENCY, 50, 1_000).await?;
    isml_session::unary(&p.plain, CONCURRENCY, 50, 1_000).await?;
    tonic_peer::unary(&p.tonic, CONCURRENCY, 50, 1_000).await?;
    isml_rpc::stream(&p.isml, STREAM_ITEMS / 10).await?;
    tonic_peer::stream(&p.tonic, STREAM_ITEMS / 10).await?;
    tonic_peer::stream(&p.tonic_iter, STREAM_ITEMS / 10).await?;

    // The floor moves frames of the sizes isml's own call and reply frames
    // had on the wire, as counted by the session.
    let before = p.isml_session.stats();
    isml_rpc::unary(&p.isml, 1, 1_000, 0).await?;
    let after = p.isml_session.stats();
    let calls = (after.frames_out - before.frames_out).max(1);
    let req_size = ((after.bytes_out - before.bytes_out) as f64 / calls as f64).round() as usize;
    let reply_size = ((after.bytes_in - before.bytes_in) as f64 / calls as f64).round() as usize;
    let floor_req = floor::frame_of_size(FrameHeader::request(StartCharging::TYPE_ID, 1), req_size)
        .ok_or_else(|| BenchError::Frame(format!("no request frame of {req_size} bytes")))?;
    let floor_reply =
        floor::frame_of_size(FrameHeader::response(ChargeStarted::TYPE_ID, 1), reply_size)
            .ok_or_else(|| BenchError::Frame(format!("no reply frame of {reply_size} bytes")))?;

    let mut r = Rounds::default();
    for round in 0..ROUNDS {
        // Alternate which side goes first, so neither always follows the other.
        let isml_first = round % 2 == 0;
        let (a, b) = if isml_first {
            let a = isml_rpc::unary(&p.isml, 1, C1_CALLS, WARMUP_CALLS).await?;
            (
                a,
                tonic_peer::unary(&p.tonic, 1, C1_CALLS, WARMUP_CALLS).await?,
            )
        } else {
            let b = tonic_peer::unary(&p.tonic, 1, C1_CALLS, WARMUP_CALLS).await?;
            (
                isml_rpc::unary(&p.isml, 1, C1_CALLS, WARMUP_CALLS).await?,
                b,
            )
        };
        let f = floor::ping_pong(
            floor_req.clone(),
            floor_reply.clone(),
            C1_CALLS,
            WARMUP_CALLS,
        )
        .await?;
        let plain = isml_session::unary(&p.plain, 1, C1_CALLS, WARMUP_CALLS).await?;
        r.r_p50_tonic
            .push(a.p50.as_secs_f64() / b.p50.as_secs_f64());
        r.r_p50_floor
            .push(a.p50.as_secs_f64() / f.p50.as_secs_f64());
        r.isml_c1.push(a);
        r.tonic_c1.push(b);
        r.floor_c1.push(f);
        r.session_c1.push(plain);

        let (a, b) = if isml_first {
            let a = isml_rpc::unary(&p.isml, CONCURRENCY, C64_PER_CALLER, WARMUP_CALLS).await?;
            let b = tonic_peer::unary(&p.tonic, CONCURRENCY, C64_PER_CALLER, WARMUP_CALLS).await?;
            (a, b)
        } else {
            let b = tonic_peer::unary(&p.tonic, CONCURRENCY, C64_PER_CALLER, WARMUP_CALLS).await?;
            let a = isml_rpc::unary(&p.isml, CONCURRENCY, C64_PER_CALLER, WARMUP_CALLS).await?;
            (a, b)
        };
        let plain =
            isml_session::unary(&p.plain, CONCURRENCY, C64_PER_CALLER, WARMUP_CALLS).await?;
        r.r_c64.push(a.rate / b.rate);
        r.isml_c64.push(a);
        r.tonic_c64.push(b);
        r.session_c64.push(plain);

        let (a, b, c) = if isml_first {
            let a = isml_rpc::stream(&p.isml, STREAM_ITEMS).await?;
            let b = tonic_peer::stream(&p.tonic, STREAM_ITEMS).await?;
            let c = tonic_peer::stream(&p.tonic_iter, STREAM_ITEMS).await?;
            (a, b, c)
        } else {
            let c = tonic_peer::stream(&p.tonic_iter, STREAM_ITEMS).await?;
            let b = tonic_peer::stream(&p.tonic, STREAM_ITEMS).await?;
            let a = isml_rpc::stream(&p.isml, STREAM_ITEMS).await?;
            (a, b, c)
        };
        r.r_stream.push(a / b.max(c));
        r.isml_stream.push(a);
        r.tonic_stream_channel.push(b);
        r.tonic_stream_iter.push(c);
    }
    p.stop().await;
    print_table(&r, req_size, reply_size);
    Ok(())
}

fn print_table(r: &Rounds, req_size: usize, reply_size: usize) {
    let m = |v: &[Unary], f: fn(&Unary) -> f64| median(v.iter().map(f).collect());
    let p50 = |u: &Unary| us(u.p50);
    let p99 = |u: &Unary| us(u.p99);
    let rate = |u: &Unary| u.rate / 1e3;
    println!(
        "isml RPC vs tonic 0.14, loopback TCP, one process; median of {ROUNDS} rounds in alternating order \
         (ratio = median of per-round ratios); load average at the end: {}\n",
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    );
    println!(
        "| row | isml (generated service) | tonic | raw TCP floor | isml/tonic | target | isml Session::request (no RPC layer) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| unary c1 p50 | {:.1} us | {:.1} us | {:.1} us | {:.2}x (isml/floor {:.2}x) | <= 0.2x (floor <= 1.3x) | {:.1} us |",
        m(&r.isml_c1, p50),
        m(&r.tonic_c1, p50),
        m(&r.floor_c1, p50),
        median(r.r_p50_tonic.clone()),
        median(r.r_p50_floor.clone()),
        m(&r.session_c1, p50),
    );
    println!(
        "| unary c1 p99 | {:.1} us | {:.1} us | {:.1} us | {:.2}x | | {:.1} us |",
        m(&r.isml_c1, p99),
        m(&r.tonic_c1, p99),
        m(&r.floor_c1, p99),
        m(&r.isml_c1, p99) / m(&r.tonic_c1, p99),
        m(&r.session_c1, p99),
    );
    println!(
        "| unary c1 calls/s | {:.1} k/s | {:.1} k/s | {:.1} k/s | {:.2}x | | {:.1} k/s |",
        m(&r.isml_c1, rate),
        m(&r.tonic_c1, rate),
        m(&r.floor_c1, rate),
        m(&r.isml_c1, rate) / m(&r.tonic_c1, rate),
        m(&r.session_c1, rate),
    );
    println!(
        "| unary c{CONCURRENCY}, one connection: calls/s | {:.1} k/s | {:.1} k/s | - | {:.2}x | >= 5x | {:.1} k/s |",
        m(&r.isml_c64, rate),
        m(&r.tonic_c64, rate),
        median(r.r_c64.clone()),
        m(&r.session_c64, rate),
    );
    println!(
        "| unary c{CONCURRENCY}, one connection: p50 / p99 | {:.0} / {:.0} us | {:.0} / {:.0} us | - | | | {:.0} / {:.0} us |",
        m(&r.isml_c64, p50),
        m(&r.isml_c64, p99),
        m(&r.tonic_c64, p50),
        m(&r.tonic_c64, p99),
        m(&r.session_c64, p50),
        m(&r.session_c64, p99),
    );
    let ms = |v: &[f64]| median(v.to_vec()) / 1e6;
    println!(
        "| server stream of {} items: items/s | {:.2} M/s | {:.2} M/s (channel), {:.2} M/s (iterator) | - | {:.2}x (vs the faster) | >= 1.5x | - |",
        STREAM_ITEMS,
        ms(&r.isml_stream),
        ms(&r.tonic_stream_channel),
        ms(&r.tonic_stream_iter),
        median(r.r_stream.clone()),
    );
    println!(
        "\nisml frames on the wire: call {req_size} B, reply {reply_size} B (the floor sends the same sizes)"
    );
    println!(
        "rpc: unary c64 req/s isml/tonic {:.2}x, p50 c1 isml/tonic {:.2}x, p50 c1 isml/floor {:.2}x, stream items/s isml/tonic {:.2}x",
        median(r.r_c64.clone()),
        median(r.r_p50_tonic.clone()),
        median(r.r_p50_floor.clone()),
        median(r.r_stream.clone()),
    );
}

/// Runs one row of one side over and over for about ten seconds.
async fn profile(row: &str) -> Result<(), BenchError> {
    let p = Peers::start().await?;
    let t0 = std::time::Instant::now();
    let mut rounds = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        match row {
            "isml-c1" => {
                isml_rpc::unary(&p.isml, 1, C1_CALLS, 0).await?;
            }
            "isml-c64" => {
                isml_rpc::unary(&p.isml, CONCURRENCY, C64_PER_CALLER, 0).await?;
            }
            "isml-stream" => {
                isml_rpc::stream(&p.isml, STREAM_ITEMS).await?;
            }
            "session-c1" => {
                isml_session::unary(&p.plain, 1, C1_CALLS, 0).await?;
            }
            "session-c64" => {
                isml_session::unary(&p.plain, CONCURRENCY, C64_PER_CALLER, 0).await?;
            }
            "session-stream" => {
                isml_session::stream(&p.plain, &p.plain_received, STREAM_ITEMS).await?;
            }
            "tonic-c1" => {
                tonic_peer::unary(&p.tonic, 1, C1_CALLS, 0).await?;
            }
            "tonic-c64" => {
                tonic_peer::unary(&p.tonic, CONCURRENCY, C64_PER_CALLER, 0).await?;
            }
            "tonic-stream" => {
                tonic_peer::stream(&p.tonic, STREAM_ITEMS).await?;
            }
            "tonic-stream-iter" => {
                tonic_peer::stream(&p.tonic_iter, STREAM_ITEMS).await?;
            }
            _ => return Err(BenchError::Usage(format!("unknown row {row:?}"))),
        }
        rounds += 1;
    }
    println!(
        "{row}: {rounds} rounds in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    p.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = async {
        match args.as_slice() {
            [] => run().await,
            [flag, row] if flag == "--profile" => profile(row).await,
            _ => Err(BenchError::Usage(
                "usage: rpc-compare [--profile ROW]".into(),
            )),
        }
    };
    match tokio::time::timeout(RUN_LIMIT, run).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("rpc-compare: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("rpc-compare: gave up after {} s", RUN_LIMIT.as_secs());
            ExitCode::FAILURE
        }
    }
}
