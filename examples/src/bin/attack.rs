//! Attacks the example `charging-server`, started with its default settings
//! as a child process, the way a hostile peer would, and measures what each
//! attack costs it (resident memory, read from `/proc`) and whether devices
//! still get in. Each row has a limit; the program exits with 1 if any is
//! exceeded. `.ci/run` runs it.
//!
//! ```text
//! cargo run --release -p isml-examples --bin attack
//! ```
//!
//! The attacks:
//! 1. one authenticated peer sends 3,000 pings of 1 MiB and never reads the
//!    pongs;
//! 2. 1,000 peers each send 99.9 % of a 1 MiB hello and hold the socket
//!    open; then 1,000 peers (from 20 addresses) each hold 99.9 % of the
//!    largest hello the server accepts (8 KiB);
//! 3. 10,100 sockets that never say hello, from 101 addresses and then from
//!    one, each re-opened as soon as the server closes it, while 300 devices
//!    (each from an address of its own) connect;
//! 4. a request sent in two fragments.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use isml_examples::charging::v1::StartCharging;
use isml_runtime::client::Client;
use isml_runtime::handshake::{Credentials, Hello};
use isml_runtime::transport::Transport;
use isml_runtime::wire::{ControlOp, Frame, FrameHeader, FrameKind};
use isml_runtime::{Message, TopLevel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "demo-token";
const MIB: u64 = 1024 * 1024;

/// The example server as a child process, killed when dropped.
struct Target {
    child: Child,
    addr: SocketAddr,
}

impl Target {
    fn start() -> Target {
        let exe = std::env::current_exe().expect("own path");
        let server = exe.with_file_name("charging-server");
        let mut child = Command::new(&server)
            .arg("tcp://127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); build it first: cargo build --release -p isml-examples",
                    server.display()
                )
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let addr = loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("a line");
            if let Some(url) = line.strip_prefix("listening on tcp://") {
                break url.trim().parse().expect("an address");
            }
        };
        // Keep draining the server's output so that it never blocks on a pipe.
        std::thread::spawn(move || for _ in lines {});
        Target { child, addr }
    }

    /// Resident memory of the server, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples the server's RSS every 10 ms until stopped; gives the peak.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !s.load(Ordering::Relaxed) {
                if let Some(kb) = std::fs::read_to_string(&path).ok().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                }) {
                    p.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Sampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn hello_frame(device: &str) -> Frame {
    let h = Hello {
        version: 1,
        device_id: device.into(),
        agent: "attack".into(),
        credentials: Credentials::Token(TOKEN.into()),
        types: vec![],
        stream_window: 16,
        services: vec![],
    };
    Frame::new(FrameHeader::control(ControlOp::Hello), h.encode())
}

/// An authenticated raw connection.
async fn authenticated(addr: SocketAddr, device: &str) -> Transport {
    let sock = TcpStream::connect(addr).await.expect("connect");
    let mut t = Transport::from_io(sock, "tcp", addr.to_string(), Some(1 << 24));
    t.send(hello_frame(device)).await.expect("hello");
    let w = t.next().await.expect("welcome").expect("a frame");
    assert_eq!(
        w.header.kind,
        FrameKind::Control(ControlOp::Welcome),
        "not welcomed"
    );
    t
}

/// A socket bound to a loopback source address of its own.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(source, 0))?;
    s.connect(addr).await
}

struct Row {
    attack: String,
    measured: String,
    limit: String,
    ok: bool,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

/// Attack 1: 3,000 unread pings of 1 MiB from one authenticated peer.
async fn ping_flood(target: &Target) -> Row {
    let before = target.rss();
    let sampler = Sampler::start(target.child.id());
    let t = authenticated(target.addr, "pinger").await;
    let (_rx, mut tx, _) = t.split(); // the pongs are never read
    let payload = Bytes::from(vec![0x55u8; (MIB - 1) as usize]);
    let t0 = Instant::now();
    let mut sent = 0;
    for _ in 0..3000 {
        let ping = Frame::new(FrameHeader::control(ControlOp::Ping), payload.clone());
        if tokio::time::timeout(Duration::from_secs(10), tx.send(ping))
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
        sent += 1;
    }
    let elapsed = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = sampler.finish();
    drop(tx);
    let growth = peak.saturating_sub(before);
    Row {
        attack: format!("{sent} unread 1 MiB pings ({elapsed:.1?})"),
        measured: format!("RSS +{}", mib(growth)),
        limit: "<= 64 MiB".into(),
        ok: growth <= 64 * MIB && sent == 3000,
    }
}

/// Attack 2: peers holding most of a hello. `sources` addresses share the
/// peers, `frame` is the hello's announced length.
async fn partial_hellos(target: &Target, peers: usize, sources: u8, frame: usize) -> Row {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss();
    let sampler = Sampler::start(target.child.id());
    let sent = frame * 999 / 1000;
    let mut head = BytesMut::new();
    isml_runtime::wire::varint::put(&mut head, (frame - 1) as u64);
    head.extend_from_slice(&[0x71]); // lead byte of a hello
    let mut data = head.to_vec();
    data.resize(sent, b'h');
    let data = Arc::new(data);
    let mut held = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..peers {
        let source = IpAddr::from([127, 0, 3, 1 + (i % usize::from(sources)) as u8]);
        let data = data.clone();
        let addr = target.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = connect_from(source, addr).await.ok()?;
            // The server may refuse at the length prefix and close.
            let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&data)).await;
            Some(s)
        }));
    }
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = target.rss();
    let peak = sampler.finish();
    let growth = peak.max(now).saturating_sub(before);
    let per_peer = growth / peers as u64;
    drop(held);
    Row {
        attack: format!(
            "{peers} peers hold 99.9 % of a {} hello",
            if frame >= 1 << 20 {
                "1 MiB".to_owned()
            } else {
                format!("{} KiB", frame / 1024)
            }
        ),
        measured: format!("RSS +{} ({} KiB per peer)", mib(growth), per_peer / 1024),
        limit: "<= 16 KiB per peer".into(),
        ok: per_peer <= 16 * 1024,
    }
}

/// Attack 3: 10,100 silent sockets re-opened as fast as they close, while
/// devices connect.
async fn silent_flood(target: &Target, one_address: bool) -> (Row, Row) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let opened = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for n in 0..10_100usize {
        let source = if one_address {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from([127, 0, 1, 1 + (n / 100) as u8])
        };
        let (mut stopped, opened, addr) = (stopped.clone(), opened.clone(), target.addr);
        attackers.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                let Ok(mut s) = connect_from(source, addr).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                let mut b = [0u8; 64];
                // Silent until the server closes it; then at once again.
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        r = s.read(&mut b) => match r {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        },
                    }
                }
            }
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The devices run on a runtime of their own, as they would on their own
    // machines: their latency is the server's, not the attack's queue.
    let url = format!("tcp://{}", target.addr);
    let addr = target.addr;
    let devices = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let mut set = tokio::task::JoinSet::new();
            for worker in 0..10 {
                let url = url.clone();
                set.spawn(async move {
                    let mut out = Vec::new();
                    for i in 0..30 {
                        let t = Instant::now();
                        // Each device from an address of its own, as
                        // devices in the field are.
                        let source = IpAddr::from([127, 0, 2, 1 + (worker * 30 + i) as u8 % 250]);
                        let r = tokio::time::timeout(Duration::from_secs(10), async {
                            let sock = connect_from(source, addr)
                                .await
                                .map_err(|e| e.to_string())?;
                            let t = Transport::from_io(sock, "tcp", addr.to_string(), None);
                            Client::builder(&url)
                                .credentials(Credentials::Token(TOKEN.into()))
                                .device_id(format!("device-{worker}-{i}"))
                                .connect_over(t)
                                .await
                                .map_err(|e| e.to_string())
                        })
                        .await;
                        match r {
                            Ok(Ok(s)) => {
                                out.push(Some(t.elapsed()));
                                s.close("done").await;
                            }
                            _ => out.push(None),
                        }
                        // 300 devices over about 3 s, while the flood goes on.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    out
                });
            }
            let mut all = Vec::new();
            while let Some(r) = set.join_next().await {
                all.extend(r.expect("device task"));
            }
            all
        })
    });
    let results = tokio::task::spawn_blocking(move || devices.join().expect("devices"))
        .await
        .expect("joined");
    let during = t0.elapsed();
    let _ = stop.send(true);
    for a in attackers {
        let _ = a.await;
    }
    let failed = results.iter().filter(|r| r.is_none()).count();
    let mut latencies: Vec<Duration> = results.into_iter().flatten().collect();
    latencies.sort();
    let p = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(Duration::MAX)
    };
    let (p50, p99) = (p(0.50), p(0.99));
    let opened = opened.load(Ordering::Relaxed);
    (
        Row {
            attack: format!(
                "10,100 silent sockets from {}, re-opened ({opened} in {during:.1?})",
                if one_address {
                    "1 address"
                } else {
                    "101 addresses"
                }
            ),
            measured: format!("{} of 300 devices connected", latencies.len()),
            limit: "all 300".into(),
            ok: failed == 0 && latencies.len() == 300,
        },
        Row {
            attack: "  device connect time meanwhile".into(),
            measured: format!("p50 {p50:.1?}, p99 {p99:.1?}"),
            limit: "p99 < 1 s".into(),
            ok: p99 < Duration::from_secs(1),
        },
    )
}

/// Attack 4 (a correctness check): a request in two fragments.
async fn fragmented_request(target: &Target) -> Row {
    let mut t = authenticated(target.addr, "fragments").await;
    let req = StartCharging {
        slot: 3,
        target_soc_percent: 80,
        max_current_ma: Some(16_000),
    }
    .encode_to_vec()
    .expect("encodable");
    let (a, b) = req.split_at(req.len() / 2);
    let h = FrameHeader::request(StartCharging::TYPE_ID, 42);
    for f in [
        Frame::new(h.with_more(true), Bytes::copy_from_slice(a)),
        Frame::new(h, Bytes::copy_from_slice(b)),
        // A ping after it: its pong ends what we wait for.
        Frame::new(
            FrameHeader::control(ControlOp::Ping),
            Bytes::from_static(b"end"),
        ),
    ] {
        t.feed(f).await.expect("written");
    }
    t.flush().await.expect("flushed");
    let mut responses = 0;
    let mut errors = 0;
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(5), t.next()).await {
        match f.header.kind {
            // The example server serves no requests itself (its cabinets
            // do): the one answer is an error response that names the
            // joined request's type.
            FrameKind::Response | FrameKind::Error if f.header.correlation == 42 => {
                responses += 1;
                if f.header.kind == FrameKind::Error {
                    let body =
                        isml_runtime::wire::ErrorBody::decode(&f.payload).expect("an error body");
                    let expected = format!("unknown message type id {}", StartCharging::TYPE_ID);
                    if !body.message.contains(&expected) {
                        errors += 1;
                    }
                }
            }
            FrameKind::Error => errors += 1,
            FrameKind::Control(ControlOp::Pong) => break,
            _ => {}
        }
    }
    Row {
        attack: "a request sent as two fragments".into(),
        measured: format!("{responses} response(s), {errors} unexpected"),
        limit: "exactly 1 response".into(),
        ok: responses == 1 && errors == 0,
    }
}

#[tokio::main]
async fn main() {
    let target = Target::start();
    println!(
        "attacking the example charging-server (pid {}) at {}",
        target.child.id(),
        target.addr
    );
    println!("idle RSS {}", mib(target.rss()));
    let mut rows = Vec::new();
    rows.push(fragmented_request(&target).await);
    rows.push(ping_flood(&target).await);
    rows.push(partial_hellos(&target, 1000, 20, 1 << 20).await);
    rows.push(partial_hellos(&target, 1000, 64, 8 * 1024).await);
    for shared in [false, true] {
        let (a, b) = silent_flood(&target, shared).await;
        rows.push(a);
        rows.push(b);
    }
    println!();
    println!("{:<58} {:<34} {:<20} ok", "attack", "measured", "limit");
    for r in &rows {
        println!(
            "{:<58} {:<34} {:<20} {}",
            r.attack,
            r.measured,
            r.limit,
            if r.ok { "yes" } else { "NO" }
        );
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!();
    println!(
        "attack: {} of {} limits held, final RSS {}",
        rows.len() - failed,
        rows.len(),
        mib(target.rss())
    );
    drop(target);
    if failed > 0 {
        std::process::exit(1);
    }
}
