//! The cluster bench behind `src/bin/cluster-compare.rs`: publications from
//! a publisher on one node to a subscriber on another node of a cluster
//! over NATS, against both on one server alone. The servers run in the
//! bench process (`isml_runtime::Server`, the second pair joined to a
//! `nats-server -js` child), the clients are the pub/sub bench's isml
//! clients over loopback TCP: the same payloads (`bench.Blob`, the send time
//! in the last 8 bytes), publishers and measurement windows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isml_runtime::TopLevel as _;
use isml_runtime::cluster::NatsCluster;
use isml_runtime::pubsub::ChannelInfo;
use isml_runtime::server::Server;

use crate::bench::{AnyMessage, Blob};
use crate::pubsub::isml::{publisher, subscriber};
use crate::pubsub::{MEASURE, Plan, Qos, Sink, WARM_UP};

/// Channel ids the servers serve (one per run).
const CHANNELS: u32 = 64;

/// Where a run's publisher and subscriber connect.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The publisher's server port.
    pub publisher: u16,
    /// The subscriber's server port.
    pub subscriber: u16,
}

/// A server for the bench: `CHANNELS` channels of `bench.Blob`, on a free
/// loopback port; in `cluster` when given.
pub async fn server(cluster: Option<NatsCluster>) -> Result<(Server, u16), String> {
    let mut b = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::TYPES);
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
    if let Some(c) = cluster {
        b = b.cluster(c);
    }
    let server = b.start().await.map_err(|e| e.to_string())?;
    let port = server.urls()[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("no port")?;
    Ok((server, port))
}

/// Waits until a subscriber on `route` receives what a publisher sends
/// (the subscription reaches the publisher's node asynchronously).
async fn ready(route: Route, run: u32, q: Qos) -> Result<(), String> {
    let count = Arc::new(AtomicU64::new(0));
    let sub = subscriber(
        route.subscriber,
        &format!("probe-s{run}"),
        run,
        Sink::Count(count.clone()),
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let publ = publisher(
        route.publisher,
        &format!("probe-p{run}"),
        run,
        q,
        16,
        Plan::Rate(200.0),
        stop.clone(),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while count.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            return Err("no publication crossed nodes".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    drop((publ, sub));
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Delivered publications per second, one publisher, one subscriber.
pub async fn throughput(route: Route, run: u32, size: usize, q: Qos) -> Result<f64, String> {
    let delivered = Arc::new(AtomicU64::new(0));
    let sub = subscriber(
        route.subscriber,
        &format!("s{run}"),
        run,
        Sink::Count(delivered.clone()),
    )
    .await?;
    ready(route, run, q).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let publ = publisher(
        route.publisher,
        &format!("p{run}"),
        run,
        q,
        size,
        Plan::Flat,
        stop.clone(),
    )
    .await?;
    tokio::time::sleep(WARM_UP).await;
    let (c0, t0) = (delivered.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(MEASURE).await;
    let (c1, t1) = (delivered.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    drop((publ, sub));
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

/// Publish-to-delivery latency (p50, p99) in microseconds at `rate` per second.
pub async fn latency(
    route: Route,
    run: u32,
    size: usize,
    q: Qos,
    rate: f64,
) -> Result<(f64, f64), String> {
    let recording = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink::Latency {
        count: Arc::new(AtomicU64::new(0)),
        recording: recording.clone(),
        samples: samples.clone(),
    };
    let sub = subscriber(route.subscriber, &format!("ls{run}"), run, sink).await?;
    ready(route, run, q).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let publ = publisher(
        route.publisher,
        &format!("lp{run}"),
        run,
        q,
        size,
        Plan::Rate(rate),
        stop.clone(),
    )
    .await?;
    tokio::time::sleep(WARM_UP).await;
    recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(MEASURE).await;
    recording.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    drop((publ, sub));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut v = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    if v.is_empty() {
        return Err("no publication delivered".into());
    }
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1_000.0;
    Ok((pct(0.50), pct(0.99)))
}
