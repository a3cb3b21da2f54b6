//! A fleet of 50 simulated charging cabinets talking to one server for a few
//! seconds: 49 over TCP, one over a serial line (a real pseudo-terminal pair,
//! COBS + CRC-32C framing). Cabinets send telemetry and report a fault
//! through the server's `Fleet` service; the server calls each cabinet's
//! `Charger` service (start and stop charging, measuring the round trip, and
//! now and then a `watch_slot` stream it cancels after a few readings).
//!
//! The server republishes each report on the retained `telemetry` channel
//! and each cabinet's uptime on the keyed `variables` channel; a dashboard
//! subscribes to both and prints what it received per channel.
//!
//! Run with `cargo run --release -p isml-examples --bin fleet-demo` (add
//! `-- --seconds 10` for a longer run).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use isml_examples::cabinet::{Cabinet, SLOTS};
use isml_examples::charging::v1::{
    AnyMessage, ChargerClient, Fault, FaultCode, FaultTicket, Fleet, FleetClient, FleetServer,
    MeterReading, StartCharging, StatusReport, StopCharging, UploadSummary, Variable,
    VariableValue, WatchSlot, channels,
};
use isml_examples::common::{Severity, Timestamp};
use isml_runtime::client::{Backoff, Client};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, Status, Streaming};
use isml_runtime::server::Server;
use isml_runtime::session::Session;
use isml_runtime::transport::serial::PtyPair;

const CABINETS: usize = 50;
const TELEMETRY_PERIOD: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Tally {
    telemetry: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Watch streams opened, items received on them, and streams cancelled.
    streams: AtomicU64,
    stream_items: AtomicU64,
    cancelled: AtomicU64,
    /// Calls the cabinets made on the server's `Fleet` service.
    fault_reports: AtomicU64,
}

/// The server's side of the `Fleet` service: fault tickets.
struct Tickets(Arc<Tally>);

impl Fleet for Tickets {
    async fn report_fault(&self, _call: Call, _req: Fault) -> Result<FaultTicket, Status> {
        let n = self.0.fault_reports.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(FaultTicket { ticket: n as u32 })
    }

    async fn upload_readings(
        &self,
        _call: Call,
        mut req: Streaming<MeterReading>,
    ) -> Result<UploadSummary, Status> {
        let mut summary = UploadSummary::default();
        while let Some(r) = req.next().await {
            summary.readings += 1;
            summary.total_wh += r?.energy_wh;
        }
        Ok(summary)
    }
}

fn fault() -> Fault {
    Fault {
        code: FaultCode::DoorStuck,
        severity: Severity::Warning,
        message: "door 2 does not close".into(),
        slot: Some(2),
        raised_at: Timestamp { millis: 0 },
    }
}

/// A dashboard: subscribes to `telemetry` and `variables` and prints, per
/// channel, how many publications arrived and at what rate.
async fn dashboard(
    url: String,
    seconds: u64,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = Client::builder(&url)
        .device_id("dashboard")
        .connect()
        .await?;
    let mut telemetry = client.subscribe::<channels::Telemetry>().await?;
    let mut variables = client.subscribe::<channels::Variables>().await?;
    let (mut t, mut v, mut retained) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let until = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => break,
            Some(p) = telemetry.next() => { t += 1; retained += u64::from(p.retained); }
            Some(p) = variables.next() => { v += 1; retained += u64::from(p.retained); }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "dashboard: telemetry {t} publications ({:.0}/s), variables {v} ({:.0}/s), {retained} retained on subscribing, {} dropped",
        t as f64 / secs,
        v as f64 / secs,
        telemetry.dropped() + variables.dropped()
    );
    client.close("done").await;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Calls every cabinet's `Charger` service until `until`; returns latencies.
async fn commander(session: Session, tally: Arc<Tally>, until: Instant) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut n = 0u32;
    let cabinet = ChargerClient::new(&session);
    while Instant::now() < until && !session.is_closed() {
        let slot = (n % u32::from(SLOTS)) as u8;
        if n % 25 == 12 {
            watch(&cabinet, slot, &tally).await;
        }
        let t0 = Instant::now();
        let ok = if n.is_multiple_of(2) {
            cabinet
                .start_charging(&StartCharging {
                    slot,
                    target_soc_percent: 90,
                    max_current_ma: Some(16_000),
                })
                .await
                .is_ok()
        } else {
            cabinet
                .stop_charging(&StopCharging { slot, reason: None })
                .await
                .is_ok()
        };
        if ok {
            latencies.push(t0.elapsed());
            tally.requests.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.failures.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
        // Pace each cabinet at about 50 commands a second.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// Watches a slot for three readings, then drops the stream: the cabinet's
/// handler sees its `send` fail and ends.
async fn watch(cabinet: &ChargerClient, slot: u8, tally: &Tally) {
    let Ok(mut readings) = cabinet
        .watch_slot(&WatchSlot {
            slot,
            interval_ms: 100,
        })
        .await
    else {
        tally.failures.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tally.streams.fetch_add(1, Ordering::Relaxed);
    for _ in 0..3 {
        match readings.next().await {
            Some(Ok(_)) => {
                tally.stream_items.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                tally.failures.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    drop(readings);
    tally.cancelled.fetch_add(1, Ordering::Relaxed);
}

fn per_message(bytes: u64, frames: u64) -> f64 {
    if frames == 0 {
        0.0
    } else {
        bytes as f64 / frames as f64
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    // The server: TCP on a free port, and the slave end of a pty pair as its serial port.
    let pty = PtyPair::open()?;
    let serial_url = pty.url(115_200);
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    // Set once the server runs: its handler republishes what cabinets report.
    let broker: Arc<std::sync::OnceLock<Server>> = Arc::default();
    let b = broker.clone();
    let dispatcher = Dispatcher::new()
        .service(FleetServer::new(Tickets(tally.clone())))
        .on::<StatusReport, _, _>(move |ctx, report| {
            let (t, b) = (t.clone(), b.clone());
            async move {
                t.telemetry.fetch_add(1, Ordering::Relaxed);
                if let Some(server) = b.get() {
                    let uptime = Variable {
                        value: VariableValue::Int(report.uptime_s as i64),
                        unit: Some("s".into()),
                    };
                    let key = format!("{}.uptime", ctx.session().device_id());
                    let _ = server.try_publish::<channels::Telemetry>(&report);
                    let _ = server
                        .publish_keyed::<channels::Variables>(&key, &uptime)
                        .await;
                }
                Ok(())
            }
        });
    let server = Server::builder()
        .channel::<channels::Telemetry>()
        .channel::<channels::Variables>()
        .listen("tcp://127.0.0.1:0")
        .listen(&serial_url)
        .types(AnyMessage::TYPES)
        .dispatcher(dispatcher)
        .keepalive(Some(Duration::from_secs(5)))
        // The whole simulated fleet connects from 127.0.0.1 at once; in the
        // field each cabinet has an address of its own.
        .handshake_rate(None)
        .max_unauthenticated_per_address(1024)
        .start()
        .await?;
    let tcp_url = server.urls()[0].clone();
    println!("server on {tcp_url} and {serial_url}");
    let _ = broker.set(server.clone());
    let dashboard = tokio::spawn(dashboard(tcp_url.clone(), seconds));

    // 49 cabinets over TCP, one over the serial line (the pty master).
    let mut cabinets = Vec::new();
    for i in 1..CABINETS {
        let cab = Cabinet::new(format!("CAB-{i:03}"));
        let client = Client::builder(&tcp_url)
            .device_id(format!("cab-{i:03}"))
            .types(AnyMessage::TYPES)
            .dispatcher(cab.dispatcher())
            .reconnect(Backoff::default())
            .connect()
            .await?;
        let session = client.wait_session().await?;
        tokio::spawn(cab.clone().report(session, TELEMETRY_PERIOD));
        FleetClient::new(&client).report_fault(&fault()).await?;
        cabinets.push((client, cab));
    }
    let serial_cab = Cabinet::new("CAB-SERIAL");
    let serial_session = Client::builder(&serial_url)
        .device_id("cab-serial")
        .types(AnyMessage::TYPES)
        .dispatcher(serial_cab.dispatcher())
        .connect_over(pty.into_transport(None)?)
        .await?;
    tokio::spawn(
        serial_cab
            .clone()
            .report(serial_session.clone(), TELEMETRY_PERIOD),
    );
    FleetClient::new(&serial_session)
        .report_fault(&fault())
        .await?;

    // The server commands every cabinet for the run's duration.
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    // The cabinets only: the dashboard's session serves no `Charger`.
    for s in server.find(|s| s.device_id().starts_with("cab-")) {
        let serial = s.scheme() == "serial";
        let h = tokio::spawn(commander(s, tally.clone(), until));
        tasks.push((serial, h));
    }
    let progress = {
        let tally = tally.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let e = started.elapsed().as_secs_f64();
                print!(
                    "\r{e:5.1} s | {} sessions | {} telemetry | {} requests answered | {} failed   ",
                    server.session_count(),
                    tally.telemetry.load(Ordering::Relaxed),
                    tally.requests.load(Ordering::Relaxed),
                    tally.failures.load(Ordering::Relaxed),
                );
                let _ = std::io::stdout().flush();
            }
        })
    };
    let (mut tcp_lat, mut serial_lat) = (Vec::new(), Vec::new());
    for (serial, h) in tasks {
        let l = h.await?;
        if serial {
            serial_lat.extend(l)
        } else {
            tcp_lat.extend(l)
        }
    }
    progress.abort();
    println!();
    dashboard.await?.map_err(|e| e.to_string())?;

    // Wire statistics, from the server's side of each session.
    let sessions = server.find(|s| s.device_id().starts_with("cab-"));
    let (mut tcp, mut ser) = ([0u64; 4], [0u64; 4]);
    for s in &sessions {
        let st = s.stats();
        let acc = if s.scheme() == "serial" {
            &mut ser
        } else {
            &mut tcp
        };
        acc[0] += st.frames_in;
        acc[1] += st.bytes_in;
        acc[2] += st.frames_out;
        acc[3] += st.bytes_out;
    }
    let n_serial = sessions.iter().filter(|s| s.scheme() == "serial").count();
    tcp_lat.sort();
    serial_lat.sort();
    let elapsed = started.elapsed().as_secs_f64();
    let telemetry = tally.telemetry.load(Ordering::Relaxed);
    let requests = tally.requests.load(Ordering::Relaxed);
    let failures = tally.failures.load(Ordering::Relaxed);

    println!();
    println!(
        "| {:<27} | tcp            | serial (pty)   |",
        format!("fleet-demo, {seconds} s")
    );
    println!("|-----------------------------|----------------|----------------|");
    println!(
        "| sessions                    | {:>14} | {:>14} |",
        sessions.len() - n_serial,
        n_serial
    );
    println!(
        "| frames in / out (server)    | {:>14} | {:>14} |",
        format!("{} / {}", tcp[0], tcp[2]),
        format!("{} / {}", ser[0], ser[2])
    );
    println!(
        "| wire bytes per frame in     | {:>14.1} | {:>14.1} |",
        per_message(tcp[1], tcp[0]),
        per_message(ser[1], ser[0])
    );
    println!(
        "| wire bytes per frame out    | {:>14.1} | {:>14.1} |",
        per_message(tcp[3], tcp[2]),
        per_message(ser[3], ser[2])
    );
    println!(
        "| requests answered           | {:>14} | {:>14} |",
        tcp_lat.len(),
        serial_lat.len()
    );
    println!(
        "| request latency p50         | {:>11.0} us | {:>11.0} us |",
        percentile(&tcp_lat, 0.5).as_secs_f64() * 1e6,
        percentile(&serial_lat, 0.5).as_secs_f64() * 1e6
    );
    println!(
        "| request latency p99         | {:>11.0} us | {:>11.0} us |",
        percentile(&tcp_lat, 0.99).as_secs_f64() * 1e6,
        percentile(&serial_lat, 0.99).as_secs_f64() * 1e6
    );
    println!();
    let streams = tally.streams.load(Ordering::Relaxed);
    let cancelled = tally.cancelled.load(Ordering::Relaxed);
    let fault_reports = tally.fault_reports.load(Ordering::Relaxed);
    println!("| rpc                         | all sessions   |");
    println!("|-----------------------------|----------------|");
    println!(
        "| server -> cabinet calls     | {:>14} |",
        tcp_lat.len() + serial_lat.len()
    );
    println!("| cabinet -> server calls     | {fault_reports:>14} |");
    println!("| watch streams opened        | {streams:>14} |");
    println!(
        "| stream items received       | {:>14} |",
        tally.stream_items.load(Ordering::Relaxed)
    );
    println!("| streams cancelled by caller | {cancelled:>14} |");
    println!();
    println!(
        "{telemetry} telemetry reports and {requests} requests in {elapsed:.1} s ({:.0} messages/s), {failures} failed",
        (telemetry + 2 * requests) as f64 / elapsed
    );

    for (client, _) in &cabinets {
        client.close("demo over").await;
    }
    serial_session.close("demo over").await;
    server.shutdown().await;
    if sessions.len() != CABINETS
        || failures > 0
        || telemetry == 0
        || serial_lat.is_empty()
        || fault_reports != CABINETS as u64
        || streams == 0
        || cancelled != streams
    {
        eprintln!("fleet-demo: something went wrong (see above)");
        std::process::exit(1);
    }
    Ok(())
}
