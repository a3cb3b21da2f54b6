//! Runtime benchmarks over loopback TCP, each next to a raw tokio TCP program
//! moving the same bytes (the floor): one-way throughput, request/response
//! latency, and memory per idle session.
//!
//! Run with `cargo run --release -p isml-examples --bin runtime-bench`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use isml_examples::charging::v1::{ChargeStarted, StartCharging, Variable, VariableValue};
use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::Session;
use isml_runtime::wire::{FrameHeader, StreamDecoder, put_stream_frame};
use isml_runtime::{Message, TopLevel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A `Variable` whose encoded body is exactly `size` bytes.
fn body_of(size: usize) -> Variable {
    let mut blob = size;
    loop {
        let v = Variable {
            value: VariableValue::Blob(Bytes::from(vec![0x5a; blob])),
            unit: None,
        };
        match v.encoded_len() {
            n if n == size => return v,
            n if n > size => blob -= 1,
            _ => blob += 1,
        }
    }
}

fn frame_bytes<M: TopLevel>(header: FrameHeader, m: &M) -> Vec<u8> {
    let payload = m.encode_to_vec().unwrap();
    let mut b = BytesMut::new();
    put_stream_frame(&mut b, &header, &payload, 1 << 20).unwrap();
    b.to_vec()
}

struct Counter {
    n: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Counter {
    fn add(&self, k: u64) {
        let n = self.n.fetch_add(k, Ordering::Relaxed) + k;
        if n >= self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
    }
}

async fn isml_server(counter: Arc<Counter>) -> Server {
    let c = counter.clone();
    let d = Dispatcher::new()
        .on::<Variable, _, _>(move |_ctx, _v| {
            c.add(1);
            std::future::ready(Ok(()))
        })
        .on_request::<StartCharging, ChargeStarted, _, _>(|_ctx, m| {
            std::future::ready(Ok(ChargeStarted {
                slot: m.slot,
                eta_s: Some(60),
                refused: None,
            }))
        });
    Server::builder()
        .listen("tcp://127.0.0.1:0")
        .dispatcher(d)
        .keepalive(None)
        .outbound_queue(4096)
        // Every benchmark client comes from 127.0.0.1.
        .handshake_rate(None)
        .max_unauthenticated_per_address(1024)
        .start()
        .await
        .unwrap()
}

async fn isml_one_way(
    url: &str,
    counter: &Arc<Counter>,
    conns: usize,
    total: u64,
    size: usize,
) -> f64 {
    let msg = body_of(size);
    let mut sessions = Vec::new();
    for _ in 0..conns {
        sessions.push(
            Client::builder(url)
                .keepalive(None)
                .outbound_queue(4096)
                .connect_session()
                .await
                .unwrap(),
        );
    }
    counter.n.store(0, Ordering::Relaxed);
    counter.target.store(total, Ordering::Relaxed);
    let t0 = Instant::now();
    let per = total / conns as u64;
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|s| {
            let msg = msg.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    s.send(&msg).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    while counter.n.load(Ordering::Relaxed) < total {
        counter.done.notified().await;
    }
    let rate = total as f64 / t0.elapsed().as_secs_f64();
    for s in sessions {
        s.close("done").await;
    }
    rate
}

async fn raw_one_way(conns: usize, total: u64, size: usize) -> f64 {
    let frame = frame_bytes(FrameHeader::one_way(12), &body_of(size));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let per = total / conns as u64;
    let server = tokio::spawn(async move {
        let mut readers = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = listener.accept().await.unwrap();
            readers.push(tokio::spawn(async move {
                // Decode frames like the runtime does, so the floor counts frames too.
                let mut buf = BytesMut::with_capacity(64 * 1024);
                let mut dec = StreamDecoder::new(1 << 20);
                let mut n = 0;
                while n < per {
                    if s.read_buf(&mut buf).await.unwrap() == 0 {
                        break;
                    }
                    while dec.decode(&mut buf).unwrap().is_some() {
                        n += 1;
                    }
                    buf.reserve(64 * 1024);
                }
            }));
        }
        for r in readers {
            r.await.unwrap();
        }
    });
    let t0 = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..conns {
        let frame = frame.clone();
        writers.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let batch: Vec<u8> = frame.repeat(64 * 1024 / frame.len() + 1);
            let per_batch = (batch.len() / frame.len()) as u64;
            let mut sent = 0;
            while sent < per {
                let k = per_batch.min(per - sent);
                s.write_all(&batch[..k as usize * frame.len()])
                    .await
                    .unwrap();
                sent += k;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    server.await.unwrap();
    total as f64 / t0.elapsed().as_secs_f64()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn isml_requests(
    url: &str,
    concurrency: usize,
    per_task: usize,
) -> (Duration, Duration, f64) {
    let s: Session = Client::builder(url)
        .keepalive(None)
        .connect_session()
        .await
        .unwrap();
    let req = StartCharging {
        slot: 1,
        target_soc_percent: 80,
        max_current_ma: None,
    };
    for _ in 0..200 {
        let _: ChargeStarted = s.request(&req).await.unwrap();
    }
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let s = s.clone();
            let req = req.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    let _: ChargeStarted = s.request(&req).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let rate = lat.len() as f64 / t0.elapsed().as_secs_f64();
    lat.sort();
    s.close("done").await;
    (pct(&lat, 0.5), pct(&lat, 0.99), rate)
}

async fn raw_requests(concurrency: usize, per_task: usize) -> (Duration, Duration, f64) {
    let req = StartCharging {
        slot: 1,
        target_soc_percent: 80,
        max_current_ma: None,
    };
    let reply = ChargeStarted {
        slot: 1,
        eta_s: Some(60),
        refused: None,
    };
    let req_frame = frame_bytes(FrameHeader::request(5, 1), &req);
    let reply_frame = frame_bytes(FrameHeader::response(7, 1), &reply);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            s.set_nodelay(true).unwrap();
            let reply_frame = reply_frame.clone();
            tokio::spawn(async move {
                let mut buf = BytesMut::with_capacity(4096);
                let mut dec = StreamDecoder::new(1 << 20);
                loop {
                    match s.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    while dec.decode(&mut buf).unwrap().is_some() {
                        if s.write_all(&reply_frame).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    // One connection per concurrent requester: the floor has no multiplexing.
    // Each requester warms up first; the rate counts from the first timed
    // request to the last, like the isml side's.
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let req_frame = req_frame.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = BytesMut::with_capacity(4096);
                let mut dec = StreamDecoder::new(1 << 20);
                let mut lat = Vec::with_capacity(per_task);
                let mut start = Instant::now();
                for i in 0..per_task + 200 {
                    if i == 200 {
                        start = Instant::now();
                    }
                    let t = Instant::now();
                    s.write_all(&req_frame).await.unwrap();
                    loop {
                        if dec.decode(&mut buf).unwrap().is_some() {
                            break;
                        }
                        s.read_buf(&mut buf).await.unwrap();
                    }
                    if i >= 200 {
                        lat.push(t.elapsed());
                    }
                }
                (start, Instant::now(), lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for t in tasks {
        let (start, end, l) = t.await.unwrap();
        first = Some(first.map_or(start, |f| f.min(start)));
        last = Some(last.map_or(end, |e| e.max(end)));
        lat.extend(l);
    }
    let span = last.unwrap() - first.unwrap();
    let rate = lat.len() as f64 / span.as_secs_f64();
    lat.sort();
    (pct(&lat, 0.5), pct(&lat, 0.99), rate)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Resident memory added by `n` idle sessions over the in-memory transport,
/// per session. Both ends live in this process, so each connection counts
/// twice: a client session and a server session, each with its connection
/// task, outbox, read buffer, registry entry, and its direction of the
/// in-memory pipe (whose buffer TCP would keep in the kernel). Everything
/// the process touches counts, allocator slack and page granularity included:
/// an upper bound on the heap the sessions hold.
async fn idle_memory(n: usize) -> f64 {
    let server = Server::builder()
        .listen("mem://bench-idle")
        .keepalive(None)
        .max_connections(n + 1000)
        .start()
        .await
        .unwrap();
    let builder = Client::builder("mem://bench-idle").keepalive(None);
    // Warm up allocator arenas and runtime structures first. The warm-up
    // sessions stay open: closing them would hand their memory to the
    // measured ones and flatter the figure.
    let mut warm = Vec::new();
    for _ in 0..2 {
        let batch =
            futures_util::future::join_all((0..100).map(|_| builder.connect_session())).await;
        warm.extend(batch.into_iter().map(Result::unwrap));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_bytes();
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n / 100 {
        let batch =
            futures_util::future::join_all((0..100).map(|_| builder.connect_session())).await;
        sessions.extend(batch.into_iter().map(Result::unwrap));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes();
    assert!(server.session_count() >= n + warm.len());
    let per_pair = (after.saturating_sub(before)) as f64 / n as f64;
    drop(sessions);
    drop(warm);
    server.shutdown().await;
    per_pair
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale: u64 = if quick { 10 } else { 1 };
    let counter = Arc::new(Counter {
        n: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        done: Notify::new(),
    });
    let server = isml_server(counter.clone()).await;
    let url = server.urls()[0].clone();

    println!("| benchmark (loopback TCP) | isml | raw tokio TCP (floor) | isml / floor |");
    println!("|---|---|---|---|");
    // --requests: only the request/response rows (for profiling them).
    let only_requests = std::env::args().any(|a| a == "--requests");
    let one_way: &[(usize, usize)] = if only_requests {
        &[]
    } else {
        &[(16, 1), (16, 8), (256, 1), (256, 8)]
    };
    for &(size, conns) in one_way {
        let total = if size == 16 { 4_000_000 } else { 1_000_000 } / scale;
        let isml = isml_one_way(&url, &counter, conns, total, size).await;
        let raw = raw_one_way(conns, total, size).await;
        println!(
            "| one-way {size} B bodies, {conns} conn | {:.2} M msg/s | {:.2} M msg/s | {:.2} |",
            isml / 1e6,
            raw / 1e6,
            isml / raw
        );
    }
    let concurrency: &[usize] = if only_requests { &[1] } else { &[1, 64] };
    for &conc in concurrency {
        // Alternate the two sides round by round and take medians, so that a
        // burst of load from other processes does not land on one side only.
        let rounds = 5;
        let per = if conc == 1 { 4_000 } else { 1_000 } / scale as usize;
        let mut isml = Vec::new();
        let mut raw = Vec::new();
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            let a = isml_requests(&url, conc, per).await;
            let b = raw_requests(conc, per).await;
            ratios.push(a.0.as_secs_f64() / b.0.as_secs_f64());
            isml.push(a);
            raw.push(b);
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let us = |v: &[(Duration, Duration, f64)], f: fn(&(Duration, Duration, f64)) -> f64| {
            med(v.iter().map(f).collect())
        };
        println!(
            "| request/response, concurrency {conc}: p50 / p99 (median of {rounds} rounds) | {:.1} / {:.1} us | {:.1} / {:.1} us | {:.2} (p50, median per-round ratio) |",
            us(&isml, |r| r.0.as_secs_f64() * 1e6),
            us(&isml, |r| r.1.as_secs_f64() * 1e6),
            us(&raw, |r| r.0.as_secs_f64() * 1e6),
            us(&raw, |r| r.1.as_secs_f64() * 1e6),
            med(ratios),
        );
        let (rate, rrate) = (us(&isml, |r| r.2), us(&raw, |r| r.2));
        println!(
            "| request/response, concurrency {conc}: requests/s | {:.0} k/s | {:.0} k/s | {:.2} |",
            rate / 1e3,
            rrate / 1e3,
            rate / rrate
        );
    }
    server.shutdown().await;
    if only_requests {
        return;
    }
    let n = if quick { 1_000 } else { 10_000 };
    let pair = idle_memory(n).await;
    println!(
        "| memory per idle session ({n} connections open, in-memory transport, resident-set growth) | {:.1} KiB per session ({:.1} KiB per client+server pair) | - | - |",
        pair / 2.0 / 1024.0,
        pair / 1024.0
    );
}
