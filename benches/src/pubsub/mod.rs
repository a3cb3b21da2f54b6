//! The pub/sub comparison behind `src/bin/pubsub-compare.rs`: the isml
//! broker, mosquitto and rumqttd, each in a child process of its own
//! ([`process`]), driven by one load generator in the bench process (rumqttc
//! clients for MQTT in [`mqtt`], isml clients in [`isml`]).
//!
//! Every run publishes on a topic (a channel for isml) of its own, so nothing
//! left queued by one run is counted in the next. Payloads end with the send
//! time (nanoseconds since [`epoch`]), which the subscriber turns into a
//! latency sample.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use tokio::task::AbortHandle;

pub mod isml;
pub mod mqtt;
pub mod plot;
pub mod process;
mod rumqttd;

pub use process::{BrokerProcess, child_main};

/// The brokers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Broker {
    /// isml's broker (`isml_runtime::server::Server` with channels).
    Isml,
    /// Debian's mosquitto.
    Mosquitto,
    /// The rumqttd crate.
    Rumqttd,
}

impl Broker {
    /// All three, isml first.
    pub const ALL: [Broker; 3] = [Broker::Isml, Broker::Mosquitto, Broker::Rumqttd];

    /// Its name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Broker::Isml => "isml",
            Broker::Mosquitto => "mosquitto",
            Broker::Rumqttd => "rumqttd",
        }
    }
}

/// Delivery guarantee asked of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    /// MQTT QoS 0; for isml, publications queued without waiting for the
    /// broker's answer.
    AtMostOnce,
    /// MQTT QoS 1 (a window of 100 unacknowledged publications, rumqttc's
    /// default); for isml, the same window of publications waiting for the
    /// broker's acceptance.
    AtLeastOnce,
}

impl Qos {
    /// Both.
    pub const ALL: [Qos; 2] = [Qos::AtMostOnce, Qos::AtLeastOnce];

    /// `qos0` or `qos1`.
    pub fn name(self) -> &'static str {
        match self {
            Qos::AtMostOnce => "qos0",
            Qos::AtLeastOnce => "qos1",
        }
    }
}

/// The instant payload timestamps count from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(crate) fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// A payload of `size` bytes (at least 8) ending with the send time.
pub fn payload(size: usize) -> Bytes {
    let size = size.max(8);
    let mut b = BytesMut::with_capacity(size);
    b.put_bytes(0x5a, size - 8);
    b.put_u64_le(now_ns());
    b.freeze()
}

/// What a subscriber does with a publication.
#[derive(Clone, Debug)]
pub enum Sink {
    /// Counts it.
    Count(Arc<AtomicU64>),
    /// Counts it and, while `recording`, keeps its latency in nanoseconds.
    Latency {
        /// Publications received.
        count: Arc<AtomicU64>,
        /// Whether samples are kept now (off during the warm-up).
        recording: Arc<AtomicBool>,
        /// Latencies in nanoseconds.
        samples: Arc<Mutex<Vec<u64>>>,
    },
}

impl Sink {
    /// Records one publication's payload.
    pub fn record(&self, payload: &[u8]) {
        match self {
            Sink::Count(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            Sink::Latency {
                count,
                recording,
                samples,
            } => {
                count.fetch_add(1, Ordering::Relaxed);
                if recording.load(Ordering::Relaxed) && payload.len() >= 8 {
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&payload[payload.len() - 8..]);
                    let sent = u64::from_le_bytes(ts);
                    let lat = now_ns().saturating_sub(sent);
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push(lat);
                }
            }
        }
    }
}

/// How fast a publisher publishes.
#[derive(Clone, Copy, Debug)]
pub enum Plan {
    /// As fast as the client and broker take them.
    Flat,
    /// This many per second, evenly over each millisecond.
    Rate(f64),
}

impl Plan {
    pub(crate) fn pacer(self) -> Pacer {
        Pacer {
            plan: self,
            start: Instant::now(),
            sent: 0,
        }
    }
}

/// Waits between publications according to a [`Plan`].
pub(crate) struct Pacer {
    plan: Plan,
    start: Instant,
    sent: u64,
}

impl Pacer {
    pub(crate) async fn wait(&mut self) {
        self.sent += 1;
        match self.plan {
            Plan::Flat => {
                // Clients whose send does not wait while their queue has room
                // would otherwise hold a worker thread for ever.
                if self.sent.is_multiple_of(256) {
                    tokio::task::yield_now().await;
                }
            }
            Plan::Rate(rate) => loop {
                let due = (self.start.elapsed().as_secs_f64() * rate) as u64;
                if self.sent <= due {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            },
        }
    }
}

/// A client of the load generator; its tasks are aborted, and its connection
/// closed, on drop.
pub struct Handle {
    tasks: Vec<AbortHandle>,
    _client: Box<dyn Any + Send>,
}

impl Handle {
    pub(crate) fn new(tasks: Vec<AbortHandle>, client: impl Any + Send) -> Handle {
        Handle {
            tasks,
            _client: Box::new(client),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How long a throughput or latency run measures, after its warm-up.
pub const MEASURE: Duration = Duration::from_millis(1_000);

static MEASURE_MS: AtomicU64 = AtomicU64::new(MEASURE.as_millis() as u64);

/// How long each run measures: [`MEASURE`], unless [`set_measure`] changed it
/// (single-row runs under a profiler measure longer).
pub fn measure() -> Duration {
    Duration::from_millis(MEASURE_MS.load(Ordering::Relaxed))
}

/// Sets how long each run measures.
pub fn set_measure(d: Duration) {
    MEASURE_MS.store(d.as_millis().max(1) as u64, Ordering::Relaxed);
}
/// The warm-up before a run measures.
pub const WARM_UP: Duration = Duration::from_millis(300);

/// A connection of the load generator to one running broker.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Which broker.
    pub broker: Broker,
    /// Its loopback port.
    pub port: u16,
}

impl Target {
    /// Of a running broker.
    pub fn of(p: &BrokerProcess) -> Target {
        Target {
            broker: p.broker,
            port: p.port,
        }
    }

    async fn subscriber(self, run: u32, id: &str, q: Qos, sink: Sink) -> Result<Handle, String> {
        match self.broker {
            Broker::Isml => isml::subscriber(self.port, id, run, sink).await,
            _ => mqtt::subscriber(self.port, id, &format!("bench/{run}"), q, sink).await,
        }
    }

    async fn publisher(
        self,
        run: u32,
        id: &str,
        q: Qos,
        size: usize,
        plan: Plan,
        stop: Arc<AtomicBool>,
    ) -> Result<Handle, String> {
        match self.broker {
            Broker::Isml => isml::publisher(self.port, id, run, q, size, plan, stop).await,
            _ => {
                let topic = format!("bench/{run}");
                mqtt::publisher(self.port, id, &topic, q, size, plan, stop).await
            }
        }
    }

    /// Delivered publications per second (all subscribers together) with
    /// `pubs` publishers and `subs` subscribers on one topic, publishing as
    /// fast as they can. `run` names the topic (unique per run).
    pub async fn throughput(
        self,
        run: u32,
        pubs: usize,
        subs: usize,
        size: usize,
        q: Qos,
    ) -> Result<f64, String> {
        let delivered = Arc::new(AtomicU64::new(0));
        let counter = delivered.clone();
        let mut clients = self
            .connect_many(subs, move |t, i| {
                let sink = Sink::Count(counter.clone());
                async move { t.subscriber(run, &format!("s{run}-{i}"), q, sink).await }
            })
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        clients.extend(
            self.connect_many(pubs, move |t, i| {
                let stop = stop2.clone();
                async move {
                    let id = format!("p{run}-{i}");
                    t.publisher(run, &id, q, size, Plan::Flat, stop).await
                }
            })
            .await?,
        );
        tokio::time::sleep(WARM_UP).await;
        // For `perf stat` over exactly the measured deliveries (see
        // docs/performance.md): the measurement's start and end on stderr.
        let marks = std::env::var_os("PUBSUB_MARKS").is_some();
        let (c0, t0) = (delivered.load(Ordering::Relaxed), Instant::now());
        if marks {
            eprintln!("measure start");
        }
        tokio::time::sleep(measure()).await;
        let (c1, t1) = (delivered.load(Ordering::Relaxed), Instant::now());
        if marks {
            eprintln!("measure end: {} delivered", c1 - c0);
        }
        stop.store(true, Ordering::Relaxed);
        drop(clients);
        // Let the broker see the connections close before the next run.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
    }

    /// Publish-to-delivery latency percentiles (p50, p99) in microseconds,
    /// one publisher and one subscriber, at `rate` publications per second.
    pub async fn latency(
        self,
        run: u32,
        size: usize,
        q: Qos,
        rate: f64,
    ) -> Result<(f64, f64), String> {
        let recording = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::with_capacity(rate as usize + 1024)));
        let sink = Sink::Latency {
            count: Arc::new(AtomicU64::new(0)),
            recording: recording.clone(),
            samples: samples.clone(),
        };
        let sub = self.subscriber(run, &format!("ls{run}"), q, sink).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = self
            .publisher(
                run,
                &format!("lp{run}"),
                q,
                size,
                Plan::Rate(rate),
                stop.clone(),
            )
            .await?;
        tokio::time::sleep(WARM_UP).await;
        recording.store(true, Ordering::Relaxed);
        tokio::time::sleep(measure()).await;
        recording.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        drop((publisher, sub));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut v = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
        if v.is_empty() {
            return Err(format!("{}: no publication delivered", self.broker.name()));
        }
        v.sort_unstable();
        let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1_000.0;
        Ok((pct(0.50), pct(0.99)))
    }

    /// Connects `n` clients made by `make`, 64 at a time.
    async fn connect_many<F, Fut>(self, n: usize, make: F) -> Result<Vec<Handle>, String>
    where
        F: Fn(Target, usize) -> Fut,
        Fut: Future<Output = Result<Handle, String>> + Send + 'static,
    {
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let permit = sem
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let fut = make(self, i);
            set.spawn(async move {
                let r = fut.await;
                drop(permit);
                r
            });
        }
        let mut out = Vec::with_capacity(n);
        while let Some(r) = set.join_next().await {
            out.push(r.map_err(|e| e.to_string())??);
        }
        Ok(out)
    }

    /// Connects `n` subscribers to one topic and returns them (idle:
    /// nothing is published).
    pub async fn idle_subscribers(self, run: u32, n: usize) -> Result<Vec<Handle>, String> {
        self.connect_many(n, move |t, i| {
            let sink = Sink::Count(Arc::new(AtomicU64::new(0)));
            async move {
                // A broker may reset a connection under a burst of 10,000;
                // each subscriber gets three tries.
                let mut tries = 0;
                loop {
                    let r = t
                        .subscriber(run, &format!("idle-{i}"), Qos::AtMostOnce, sink.clone())
                        .await;
                    tries += 1;
                    match r {
                        Err(e) if tries < 3 => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        r => return r,
                    }
                }
            }
        })
        .await
    }
}
